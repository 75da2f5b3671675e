// Package immediate is the fastest deploy strategy: stop every old machine,
// start every new one, and route to each as soon as it listens, with no health
// wait. The app is down between the two; the result reports that window.
package immediate

import (
	"context"
	"time"

	"github.com/cutover/deploy"
)

// Strategy is an immediate deploy. Its zero value is ready to use.
type Strategy struct{}

// Name returns "immediate".
func (Strategy) Name() string { return "immediate" }

// Deploy stops r.Old, then starts r.Count machines of r.Spec and routes them
// once they accept connections.
func (Strategy) Deploy(ctx context.Context, r *deploy.Rollout) error {
	var down time.Time
	if len(r.Old) > 0 {
		down = time.Now()
		if err := r.Retire(ctx, r.Old...); err != nil {
			return err
		}
	}
	news, err := r.LaunchNew(ctx, r.Count, 0, true)
	if err != nil {
		return err
	}
	for _, m := range news {
		if err := listening(ctx, r, m); err != nil {
			return err
		}
		if err := r.AddRoutes(ctx, 1, m); err != nil {
			return err
		}
		if !down.IsZero() && m == news[0] {
			r.SetDowntime(time.Since(down))
		}
	}
	return nil
}

// listening waits, within the wait timeout, until m accepts connections.
func listening(ctx context.Context, r *deploy.Rollout, m deploy.Machine) error {
	ctx, cancel := context.WithTimeout(ctx, r.WaitTimeout)
	defer cancel()
	if err := deploy.WaitHealthy(ctx, m, deploy.DialCheck{}); err != nil {
		return &deploy.PhaseError{Machine: m.ID(), Phase: "listen", Err: err}
	}
	return nil
}
