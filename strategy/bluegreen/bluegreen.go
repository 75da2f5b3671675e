// Package bluegreen deploys by starting every new machine, waiting until all
// are healthy, and moving all traffic to them in one atomic switch. Old
// machines then drain, stop and are destroyed. If any new machine fails, the
// new ones are destroyed and the old ones never stopped serving.
//
// With a Gate, the deploy holds once the new machines are healthy and waits
// for Promote (switch) or Abort (destroy the new machines), called from
// anywhere, so that a deploy can happen first and the switch later.
package bluegreen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cutover/deploy"
)

// Defaults for zero fields.
const (
	DefaultParallel    = 8
	DefaultHoldTimeout = time.Hour
)

// ErrNotHeld is returned by Gate.Promote and Gate.Abort once a decision was taken.
var ErrNotHeld = errors.New("bluegreen: a decision was already taken")

// Strategy is a blue-green deploy. Its zero value starts up to 8 machines at
// a time and switches as soon as all are healthy.
type Strategy struct {
	Parallel    int           // machines started at once; 0 means DefaultParallel
	Gate        *Gate         // non-nil: hold before the switch until Promote or Abort
	HoldTimeout time.Duration // how long to hold before aborting; 0 means DefaultHoldTimeout
}

var _ deploy.Validator = Strategy{}

// Validate reports a negative Parallel or HoldTimeout, with an error wrapping
// deploy.ErrInvalid; Deployer.Deploy calls it before it takes the app's lock.
func (s Strategy) Validate() error {
	switch {
	case s.Parallel < 0:
		return fmt.Errorf("bluegreen: %w: Parallel %d: want 0 (the default, %d) or more", deploy.ErrInvalid, s.Parallel, DefaultParallel)
	case s.HoldTimeout < 0:
		return fmt.Errorf("bluegreen: %w: HoldTimeout %s: want 0 (the default, %s) or more", deploy.ErrInvalid, s.HoldTimeout, DefaultHoldTimeout)
	}
	return nil
}

// Name returns "bluegreen".
func (Strategy) Name() string { return "bluegreen" }

// Deploy starts r.Count new machines, waits for all to be healthy, optionally
// holds, switches all traffic at once, then retires the old machines.
func (s Strategy) Deploy(ctx context.Context, r *deploy.Rollout) error {
	parallel := s.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	news, err := r.LaunchNew(ctx, deploy.LaunchOptions{Parallel: parallel})
	if err != nil {
		return err
	}
	if s.Gate != nil {
		if err := s.hold(ctx, r); err != nil {
			return err
		}
	}
	next := make(map[deploy.Machine]int, len(news))
	for _, m := range news {
		next[m] = 1
	}
	if err := r.Route(ctx, next); err != nil { // the one switch; old machines drain
		return err
	}
	return r.Retire(ctx, r.Old...)
}

func (s Strategy) hold(ctx context.Context, r *deploy.Rollout) error {
	timeout := s.HoldTimeout
	if timeout <= 0 {
		timeout = DefaultHoldTimeout
	}
	r.Emit(deploy.Event{Type: deploy.DeployHeld, Version: r.Spec.Version, Message: fmt.Sprintf("%d new machines healthy; waiting up to %s for promote or abort", r.Count, timeout)})
	s.Gate.held()
	t := r.Clock().NewTimer(timeout)
	defer t.Stop()
	select {
	case promote := <-s.Gate.decision:
		if !promote {
			return fmt.Errorf("bluegreen: %w while held", deploy.ErrAborted)
		}
		return nil
	case <-t.C():
		return fmt.Errorf("bluegreen: %w: no promote within the hold timeout %s", deploy.ErrAborted, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Gate holds a blue-green deploy before its switch. Create it with NewGate;
// use one Gate per deploy.
type Gate struct {
	once     sync.Once
	decision chan bool
	heldOnce sync.Once
	isHeld   chan struct{}
}

// NewGate returns a Gate waiting for a decision.
func NewGate() *Gate {
	return &Gate{decision: make(chan bool, 1), isHeld: make(chan struct{})}
}

// Held is closed once the deploy holds: new machines are healthy and unrouted.
func (g *Gate) Held() <-chan struct{} { return g.isHeld }

func (g *Gate) held() { g.heldOnce.Do(func() { close(g.isHeld) }) }

// Promote lets the held deploy switch traffic. Called before the deploy holds,
// the deploy switches as soon as its machines are healthy.
func (g *Gate) Promote() error { return g.decide(true) }

// Abort makes the held deploy destroy its new machines and fail with deploy.ErrAborted.
func (g *Gate) Abort() error { return g.decide(false) }

func (g *Gate) decide(promote bool) error {
	err := ErrNotHeld
	g.once.Do(func() {
		g.decision <- promote
		err = nil
	})
	return err
}
