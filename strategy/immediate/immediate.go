// Package immediate is the fastest deploy strategy: stop every old machine,
// start every new one, and route to each as soon as its app answers
// (deploy.DefaultCheck: an HTTP response of any status, or a TCP connection
// the app keeps open), with no health wait. The app is down between the two;
// Result.Downtime reports that window, from the moment the old machines left
// traffic to the moment a new machine that had answered a request was routed.
package immediate

import (
	"context"
	"sync"
	"time"

	"github.com/cutover/deploy"
)

// Strategy is an immediate deploy. Its zero value is ready to use.
type Strategy struct{}

// Name returns "immediate".
func (Strategy) Name() string { return "immediate" }

// Deploy stops r.Old, then starts r.Count machines of r.Spec and routes each
// once its app answers.
func (Strategy) Deploy(ctx context.Context, r *deploy.Rollout) error {
	var down time.Time
	if len(r.Old) > 0 {
		down = r.Clock().Now()
		if err := r.Retire(ctx, r.Old...); err != nil {
			return err
		}
	}
	news, err := r.LaunchNew(ctx, deploy.LaunchOptions{NoWait: true})
	if err != nil {
		return err
	}
	// Route each machine as soon as it answers, not in launch order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan error, len(news))
	var mu sync.Mutex
	routed := false
	for _, m := range news {
		go func() {
			if err := r.WaitReady(ctx, m); err != nil {
				ready <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			err := r.AddRoutes(ctx, 1, m)
			if err == nil && !routed && !down.IsZero() {
				r.SetDowntime(r.Clock().Now().Sub(down)) // it answered a request, and now takes traffic
			}
			routed = routed || err == nil
			ready <- err
		}()
	}
	var first error
	for range news {
		if err := <-ready; err != nil && first == nil {
			first = err
			cancel() // the others' waits end too: the deploy failed
		}
	}
	return first
}
