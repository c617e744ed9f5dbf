package links

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.sampler", newSampler) }

// sampler keeps a share of the vCons and halts the rest.
type sampler struct {
	method string
	value  float64
	// seed, when set, makes each vCon's decision a function of (seed, uuid):
	// reproducible across runs and restarts, yet different from vCon to
	// vCon (conserver re-seeds per call and so decides the same for all).
	seed    string
	seeded  bool
	now     func() time.Time
	uniform func() float64
}

func newSampler(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	method := o.String("method", "percentage")
	value := o.Float("value", 50)
	s := &sampler{method: method, value: value, now: time.Now, uniform: rand.Float64}
	switch method {
	case "percentage":
		if value < 0 || value > 100 {
			o.Failf("value", "percentage must be between 0 and 100, got %v", value)
		}
	case "rate":
		if value <= 0 {
			o.Failf("value", "rate must be a positive number of seconds, got %v", value)
		}
	case "modulo", "time_based":
		if value < 1 || value != math.Trunc(value) {
			o.Failf("value", "%s needs a whole number of at least 1, got %v", method, value)
		}
	default:
		o.Failf("method", "unknown method %q (known: percentage, rate, modulo, time_based)", method)
	}
	if o.Has("seed") {
		// A seed is text, but YAML reads an unquoted 42 as a number.
		switch seed := o.Raw("seed").(type) {
		case string:
			s.seed = seed
		case int, int64, float64:
			s.seed = strconv.FormatFloat(o.Float("seed", 0), 'f', -1, 64)
		default:
			o.Fail("seed", "a string or a number")
		}
		s.seeded = true
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sampler) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	uuid := v.UUID()
	if uuid == "" {
		return Result{}, errors.New("sampler: vCon has no uuid")
	}
	if s.keep(uuid) {
		return Continue, nil
	}
	return Halted, nil
}

func (s *sampler) keep(uuid string) bool {
	switch s.method {
	case "percentage":
		return s.draw(uuid)*100 < s.value
	case "rate":
		// conserver keeps when an exponential draw with mean `value` is at
		// most 1, i.e. with probability 1 - e^(-1/value).
		return s.draw(uuid) < -math.Expm1(-1/s.value)
	case "modulo":
		// The same hash as conserver, so a migrated chain keeps the same vCons.
		sum := sha256.Sum256([]byte(uuid))
		n, _ := strconv.ParseUint(hex.EncodeToString(sum[:4]), 16, 64)
		return n%uint64(s.value) == 0
	case "time_based":
		return s.now().Unix()%int64(s.value) == 0
	}
	return false
}

// draw returns a number in [0, 1).
func (s *sampler) draw(uuid string) float64 {
	if !s.seeded {
		return s.uniform()
	}
	h := sha256.New()
	h.Write([]byte(s.seed))
	h.Write([]byte{0})
	h.Write([]byte(uuid))
	return float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53)
}
