package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Rollout is what a Strategy works with: the app, the new spec, the current
// machines, and methods to act through. The Deployer builds one per deploy.
// The backend and the router are reached only through its methods, which
// emit events and track what was created and routed, so that the Deployer
// can undo a failed deploy whatever the strategy did.
type Rollout struct {
	App         string
	Spec        MachineSpec   // the new version
	Count       int           // how many machines of Spec to end with
	Old         []Machine     // the machines serving before the deploy
	Health      HealthChecker // nil: DefaultCheck
	WaitTimeout time.Duration // per machine health wait, as the Deployer resolved it (never 0)

	backend Backend      // creates machines
	router  Router       // moves traffic
	logger  hclog.Logger // never nil
	clock   Clock        // never nil: Deployer.Clock, or RealClock
	emit    func(Event)

	routeMu sync.Mutex // serializes routing changes, so the router sees them in the order recorded

	mu       sync.Mutex
	routes   map[string]int     // addr -> weight, as last set on the Router
	byAddr   map[string]Machine // addr -> machine, for events
	oldIDs   map[string]bool    // IDs of Old
	created  []Machine
	gone     map[string]bool // machine IDs destroyed during the rollout
	moved    bool            // traffic reached a new machine or left an old one
	downtime time.Duration
	restore  *Release // set by Recover: the release to restore on undo
}

// newRollout returns a Rollout ready for a Strategy. onEvent may be nil.
// routes is the router's current target set; nil means every old machine at
// weight 1.
func (d *Deployer) newRollout(spec MachineSpec, count int, old []Machine, hc HealthChecker, routes map[string]int, onEvent func(Event)) *Rollout {
	r := &Rollout{
		App: spec.App, Spec: spec, Count: count, Old: old,
		backend: d.Backend, router: d.Router, Health: hc, logger: hclog.NewNullLogger(), clock: d.clock(),
		emit:   onEvent,
		routes: map[string]int{}, byAddr: map[string]Machine{}, gone: map[string]bool{}, oldIDs: map[string]bool{},
	}
	for _, m := range old {
		r.byAddr[m.Addr()] = m
		r.oldIDs[m.ID()] = true
		if routes == nil {
			r.routes[m.Addr()] = 1
		}
	}
	for a, w := range routes {
		r.routes[a] = w
	}
	return r
}

// Logger returns the deploy's logger (a null logger when the Deployer has none).
func (r *Rollout) Logger() hclog.Logger { return r.logger }

// Clock returns the deploy's clock (Deployer.Clock, or RealClock): a
// strategy that pauses or times anything reads time through it, so that a
// test with a fake clock controls it.
func (r *Rollout) Clock() Clock { return r.clock }

// Emit sends an event to the deploy's watchers, stamped with time and app.
func (r *Rollout) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = r.Clock().Now()
	}
	if e.App == "" {
		e.App = r.App
	}
	if r.emit != nil {
		r.emit(e)
	}
}

func (r *Rollout) emitFor(t EventType, m Machine, msg string, err error) {
	s := m.Spec()
	r.Emit(Event{Type: t, Machine: m.ID(), Version: s.Version, Addr: m.Addr(), Message: msg, Err: err})
}

// Launch creates and starts one machine of spec. A machine that fails to start
// is destroyed. The returned machine is tracked for cleanup.
func (r *Rollout) Launch(ctx context.Context, spec MachineSpec) (Machine, error) {
	m, err := r.backend.Create(ctx, spec)
	if err != nil {
		return nil, phaseErr(nil, "create", err)
	}
	r.mu.Lock()
	r.created = append(r.created, m)
	r.mu.Unlock()
	r.emitFor(MachineCreated, m, "", nil)
	if err := m.Start(ctx); err != nil {
		r.destroy(context.WithoutCancel(ctx), m)
		return nil, phaseErr(m, "start", err)
	}
	r.mu.Lock()
	r.byAddr[m.Addr()] = m
	r.mu.Unlock()
	r.emitFor(MachineStarted, m, "", nil)
	return m, nil
}

// LaunchOptions say how LaunchNew launches. The zero value launches the
// rollout's Count machines all at once and waits for each to be healthy.
type LaunchOptions struct {
	Count    int  // machines to launch; 0 means the rollout's Count
	Parallel int  // machines started at once; 0 means all
	NoWait   bool // return once started, without waiting for health checks
}

// LaunchNew launches machines of the new spec in parallel, as o says, and
// waits for each to be healthy unless o.NoWait. On any failure it returns the
// first error; machines it started stay tracked for cleanup.
func (r *Rollout) LaunchNew(ctx context.Context, o LaunchOptions) ([]Machine, error) {
	n := o.Count
	if n <= 0 {
		n = r.Count
	}
	parallel, noWait := o.Parallel, o.NoWait
	if parallel <= 0 || parallel > n {
		parallel = n
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([]Machine, n)
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			m, err := r.Launch(ctx, r.Spec)
			if err == nil && !noWait {
				err = r.WaitHealthy(ctx, m)
			}
			if err != nil {
				errs[i] = err
				if ctx.Err() == nil {
					cancel(&siblingFailed{err: err})
				}
				return
			}
			out[i] = m
		}()
	}
	wg.Wait()
	// Report the root cause, not the cancellations it caused in siblings.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

// WaitHealthy waits, within the rollout's wait timeout, until m passes its
// health checks, and emits MachineHealthy or MachineUnhealthy.
func (r *Rollout) WaitHealthy(ctx context.Context, m Machine) error {
	if err := waitHealthy(ctx, r.Clock(), m, r.Health, r.WaitTimeout); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrExited) {
			// Not the machine's doing: the deploy was cancelled, or a sibling
			// failed. It is not reported unhealthy.
			return phaseErr(m, "health", &cutShort{cause: context.Cause(ctx), err: ctx.Err()})
		}
		r.emitFor(MachineUnhealthy, m, "", err)
		return phaseErr(m, "health", err)
	}
	r.emitFor(MachineHealthy, m, "", nil)
	return nil
}

// WaitReady waits, within the rollout's wait timeout, until m's app answers
// (DefaultCheck, whatever the rollout's health checks), with no event: the
// readiness a strategy that skips health checks still needs before it routes.
func (r *Rollout) WaitReady(ctx context.Context, m Machine) error {
	if err := waitHealthy(ctx, r.Clock(), m, DefaultCheck{}, r.WaitTimeout); err != nil {
		return phaseErr(m, "ready", err)
	}
	return nil
}

// waitTimeout returns the first positive of ts, or DefaultWaitTimeout.
func waitTimeout(ts ...time.Duration) time.Duration {
	for _, t := range ts {
		if t > 0 {
			return t
		}
	}
	return DefaultWaitTimeout
}

// currentRoutes returns a copy of the target set last given to the router.
func (r *Rollout) currentRoutes() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copyWeights(r.routes)
}

// Route replaces the router's target set with weights, keyed by machine.
// It emits MachineRouted for machines whose weight changed and MachineDraining
// for machines that left, and returns once those have drained.
func (r *Rollout) Route(ctx context.Context, weights map[Machine]int) error {
	next := make(map[string]int, len(weights))
	for m, w := range weights {
		next[m.Addr()] = w
	}
	return r.routeAddrs(ctx, func(map[string]int) map[string]int { return next })
}

// routeAddrs sets the target set edit returns, given a copy of the current
// one. Routing changes are serialized by r.routeMu, so edits are not lost and
// the router sees them in order; r.mu is held only to read and record state,
// never while events go out or the router drains.
func (r *Rollout) routeAddrs(ctx context.Context, edit func(cur map[string]int) map[string]int) error {
	if r.Spec.NoService {
		return nil // the machines serve no traffic: nothing to route or drain
	}
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	next := edit(r.currentRoutes())
	r.mu.Lock()
	prev := r.routes
	var events []Event
	for a, w := range next {
		if pw, ok := prev[a]; ok && pw == w {
			continue
		}
		if m := r.byAddr[a]; m != nil {
			if !r.isOld(m) && w > 0 {
				r.moved = true
			}
			events = append(events, Event{Type: MachineRouted, Machine: m.ID(), Version: m.Spec().Version, Addr: m.Addr(), Weight: w})
		}
	}
	for a := range prev {
		if _, ok := next[a]; !ok {
			if m := r.byAddr[a]; m != nil {
				events = append(events, Event{Type: MachineDraining, Machine: m.ID(), Version: m.Spec().Version, Addr: m.Addr()})
			}
		}
	}
	r.mu.Unlock()
	for _, e := range events {
		r.Emit(e)
	}
	err := r.router.SetTargets(ctx, copyWeights(next))
	r.mu.Lock()
	r.routes = copyWeights(next)
	r.mu.Unlock()
	if err != nil {
		return phaseErr(nil, "route", err)
	}
	return nil
}

func (r *Rollout) isOld(m Machine) bool { return r.oldIDs[m.ID()] }

// unroute removes machines from traffic, keeping every other target as it is,
// and returns once they have drained.
func (r *Rollout) unroute(ctx context.Context, ms ...Machine) error {
	return r.routeAddrs(ctx, func(next map[string]int) map[string]int {
		for _, m := range ms {
			delete(next, m.Addr())
		}
		return next
	})
}

// AddRoutes adds machines to traffic at weight w, keeping every other target.
func (r *Rollout) AddRoutes(ctx context.Context, w int, ms ...Machine) error {
	return r.routeAddrs(ctx, func(next map[string]int) map[string]int {
		for _, m := range ms {
			next[m.Addr()] = w
		}
		return next
	})
}

// MaxParallelStops bounds how many machines Retire stops at once.
const MaxParallelStops = 8

// Retire takes machines out of traffic together (waiting for them to drain),
// then stops and destroys them concurrently, at most MaxParallelStops at a
// time, so that one slow graceful shutdown does not delay the others.
func (r *Rollout) Retire(ctx context.Context, ms ...Machine) error {
	if len(ms) == 0 {
		return nil
	}
	if err := r.unroute(ctx, ms...); err != nil {
		return err
	}
	for _, m := range ms {
		if r.isOld(m) {
			r.mu.Lock()
			r.moved = true
			r.mu.Unlock()
		}
	}
	errs := make([]error, len(ms))
	sem := make(chan struct{}, MaxParallelStops)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = errors.Join(r.stop(ctx, m), r.destroy(ctx, m))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop stops a machine without destroying it, emitting MachineStopped with
// its exit status (such as "exit code 0 (stopped)" or "exit code 137 (killed
// after stop timeout)") when the backend reports it.
func (r *Rollout) stop(ctx context.Context, m Machine) error {
	if err := m.Stop(ctx); err != nil && !errors.Is(err, ErrNotFound) {
		return phaseErr(m, "stop", err)
	}
	msg := ""
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if st, err := m.Wait(wctx); err == nil {
		msg = st.String()
	}
	cancel()
	r.emitFor(MachineStopped, m, msg, nil)
	return nil
}

func (r *Rollout) destroy(ctx context.Context, m Machine) error {
	if err := m.Destroy(ctx); err != nil && !errors.Is(err, ErrNotFound) {
		return phaseErr(m, "destroy", err)
	}
	r.mu.Lock()
	r.gone[m.ID()] = true
	r.mu.Unlock()
	r.emitFor(MachineDestroyed, m, "", nil)
	return nil
}

// SetDowntime records a window in which no machine served, for the result.
func (r *Rollout) SetDowntime(d time.Duration) {
	r.mu.Lock()
	r.downtime = d
	r.mu.Unlock()
}

// createdAlive returns the machines this rollout created that are not destroyed.
func (r *Rollout) createdAlive() []Machine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Machine
	for _, m := range r.created {
		if !r.gone[m.ID()] {
			out = append(out, m)
		}
	}
	return out
}

// oldAlive returns the old machines not destroyed by this rollout.
func (r *Rollout) oldAlive() []Machine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Machine
	for _, m := range r.Old {
		if !r.gone[m.ID()] {
			out = append(out, m)
		}
	}
	return out
}

// trafficMoved reports whether traffic reached a new machine or an old machine was retired.
func (r *Rollout) trafficMoved() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.moved
}

// checkAlive fails when a machine the rollout created exited before the deploy
// ended (say it crashed after it took traffic), so the deploy is rolled back,
// even if its restart policy brought it back.
func (r *Rollout) checkAlive(ctx context.Context) error {
	for _, m := range r.createdAlive() {
		st := m.State()                // first: it may bring the restart count up to date
		if n := RestartsOf(m); n > 0 { // it crashed, and its restart policy brought it back
			return phaseErr(m, "serve", fmt.Errorf("%w after it started: restarted %d time(s) by its restart policy", ErrExited, n))
		}
		if st != StateStarted {
			reason := string(st)
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			if es, err := m.Wait(wctx); err == nil {
				reason = es.String()
			}
			cancel()
			return phaseErr(m, "serve", fmt.Errorf("%w after it started: %s", ErrExited, reason))
		}
	}
	return nil
}

// cutShort is the error of a wait that ended because its context did: err is
// the context's error, cause why it ended (context.Cause).
type cutShort struct{ cause, err error }

func (e *cutShort) Error() string {
	if e.cause == nil || e.cause == e.err {
		return "wait cut short: " + e.err.Error()
	}
	return "wait cut short: " + e.cause.Error()
}

func (e *cutShort) Unwrap() []error { return []error{e.err, e.cause} }

// siblingFailed is why LaunchNew stops the machines still starting: another
// one failed. It wraps context.Canceled, so the root cause is told apart.
type siblingFailed struct{ err error }

func (e *siblingFailed) Error() string {
	var pe *PhaseError
	if errors.As(e.err, &pe) && pe.Machine != "" {
		return "stopped because machine " + pe.Machine + " failed"
	}
	return "stopped because another machine failed"
}

func (e *siblingFailed) Unwrap() error { return context.Canceled }
