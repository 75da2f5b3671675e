// Package rolling is the default deploy strategy: replace machines a few at a
// time, surge first. Each new machine takes traffic only after its health
// checks pass; then as many old machines leave traffic, drain, stop and are
// destroyed. At no point does the app serve with fewer healthy machines.
package rolling

import (
	"context"
	"fmt"
	"math"

	"github.com/cutover/deploy"
)

// Strategy is a rolling deploy. Its zero value replaces one machine at a time.
type Strategy struct {
	// MaxUnavailable is how many machines are replaced at once: a count (1, 2, ...)
	// or, below 1, a fraction of the machine count (0.33 of 6 is 2; at least 1).
	// 0 means 1. Negative, NaN, fractional counts and counts over the machine
	// count are errors wrapping deploy.ErrInvalid.
	MaxUnavailable float64
}

// Name returns "rolling".
func (Strategy) Name() string { return "rolling" }

// BatchSize resolves MaxUnavailable for n machines.
func (s Strategy) BatchSize(n int) (int, error) {
	v := s.MaxUnavailable
	n = max(n, 1)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return 0, fmt.Errorf("rolling: %w: max_unavailable %v: want a count >= 1 or a fraction in (0, 1)", deploy.ErrInvalid, v)
	case v == 0:
		return 1, nil
	case v < 1:
		return max(1, int(math.Floor(v*float64(n)))), nil
	case v != math.Trunc(v):
		return 0, fmt.Errorf("rolling: %w: max_unavailable %v: a count must be whole", deploy.ErrInvalid, v)
	case v > float64(n):
		return 0, fmt.Errorf("rolling: %w: max_unavailable %v is more than the %d machines", deploy.ErrInvalid, v, n)
	}
	return int(v), nil
}

var _ deploy.Validator = Strategy{}

// Validate reports a MaxUnavailable that no machine count makes valid
// (negative, NaN, infinite, a fractional count), with an error wrapping
// deploy.ErrInvalid; Deployer.Deploy calls it before it takes the app's lock.
// A count over the machine count is found at deploy time (BatchSize).
func (s Strategy) Validate() error {
	_, err := s.BatchSize(math.MaxInt)
	return err
}

// Deploy replaces r.Old with r.Count machines of r.Spec, a batch at a time;
// a first deploy (no r.Old) starts all its machines at once.
func (s Strategy) Deploy(ctx context.Context, r *deploy.Rollout) error {
	batch, err := s.BatchSize(max(len(r.Old), r.Count))
	if err != nil {
		return err
	}
	if len(r.Old) == 0 {
		batch = r.Count // a first deploy: nothing serves to keep up, start all at once
	}
	old := r.Old
	for made := 0; made < r.Count; {
		k := min(batch, r.Count-made)
		news, err := r.LaunchNew(ctx, deploy.LaunchOptions{Count: k})
		if err != nil {
			return err
		}
		if err := r.AddRoutes(ctx, 1, news...); err != nil {
			return err
		}
		made += k
		j := min(k, len(old))
		if err := r.Retire(ctx, old[:j]...); err != nil {
			return err
		}
		old = old[j:]
	}
	if len(old) > 0 { // the app shrinks
		return r.Retire(ctx, old...)
	}
	return nil
}
