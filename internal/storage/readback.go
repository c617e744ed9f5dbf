package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Named is a storage under its config name.
type Named struct {
	Name    string
	Storage Storage
}

// ReadBack reads the vCon uuid from the first of stores that has it, in
// their order, and says which one that was. It is the read-through of a
// body Redis no longer holds, as conserver's VconRedis.get_vcon and its
// API do it: every configured storage that can read (a Getter), in the
// config file's order. One whose read fails, or whose answer is not a
// JSON object (a storage module's get raises then in conserver), is
// passed over, since a later one may have the vCon.
//
// It returns ErrNotFound only when every storage that can read said it
// has no such vCon (an empty answer counts as none). When none had it and
// some failed, the error names each failing storage instead: the vCon may
// well be in one of them, and a caller that dead-letters must not say
// "not found" about a storage that could not be asked. The error is
// Permanent when every failure is (a document that is not a vCon stays
// one however often it is read).
func ReadBack(ctx context.Context, stores []Named, uuid string) (data []byte, from string, err error) {
	var failed []error
	permanent := true
	for _, s := range stores {
		g, ok := s.Storage.(Getter)
		if !ok {
			continue
		}
		data, err := g.Get(ctx, uuid)
		switch {
		case err == nil && len(data) > 0:
			if _, perr := vcon.Parse(data); perr != nil {
				// perr is not kept: a decoder's message can quote the
				// document.
				failed = append(failed, fmt.Errorf("storage %s holds a document under the vCon's uuid that is not a JSON object", s.Name))
				continue
			}
			return data, s.Name, nil
		case err == nil, errors.Is(err, ErrNotFound):
		case ctx.Err() != nil:
			return nil, "", ctx.Err()
		default:
			failed = append(failed, fmt.Errorf("storage %s: %w", s.Name, err))
			permanent = permanent && IsPermanent(err)
		}
	}
	if len(failed) == 0 {
		return nil, "", ErrNotFound
	}
	err = errors.Join(failed...)
	if permanent {
		err = Permanent(err)
	}
	return nil, "", err
}
