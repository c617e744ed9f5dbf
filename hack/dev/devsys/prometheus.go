package devsys

import (
	"context"
	"errors"
)

func (s *System) startPrometheus(ctx context.Context) error {
	return errors.New("not wired yet")
}
