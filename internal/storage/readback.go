package storage

import (
	"context"
	"errors"
	"log/slog"

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
// API do it: every configured storage that can read, in the config file's
// order; one whose read fails, or whose answer is not a JSON object (a
// storage module's get raises then in conserver), is logged and passed
// over, since a later one may have the vCon. Storages that cannot read (no
// Getter) are skipped. It returns ErrNotFound when none has it, and an
// empty answer counts as none.
func ReadBack(ctx context.Context, stores []Named, uuid string, log *slog.Logger) (data []byte, from string, err error) {
	for _, s := range stores {
		g, ok := s.Storage.(Getter)
		if !ok {
			continue
		}
		data, err := g.Get(ctx, uuid)
		switch {
		case err == nil && len(data) > 0:
			if _, perr := vcon.Parse(data); perr != nil {
				// The parse error quotes no content: it is not logged.
				log.Warn("read-through: storage holds a document that is not a vCon", "storage", s.Name, "uuid", uuid)
				continue
			}
			return data, s.Name, nil
		case err == nil, errors.Is(err, ErrNotFound):
		case ctx.Err() != nil:
			return nil, "", ctx.Err()
		default:
			log.Warn("read-through: storage read failed", "storage", s.Name, "uuid", uuid, "error", err)
		}
	}
	return nil, "", ErrNotFound
}
