package deploy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Monitor keeps checking the machines that take traffic after a deploy. It is
// a Router placed between a Deployer and the real router: the Deployer sets
// the targets it wants; the Monitor passes on those targets minus the ones
// failing their checks, and adds a target back once it passes again. When
// every target fails, it keeps them all (better some answers than none).
//
// Set Router, Backend, App and Health, give it to the Deployer as its Router,
// and call Run in a goroutine.
//
// Machines that come back: a routed machine whose backend restarts it (its
// spec's Restart policy) is followed to its new address and readmitted once
// it passes Passes checks (MachineRestarted, then MachineHealthy). With
// Replace set, a routed machine gone for good (removed, or stopped with no
// restart to come) is replaced by Run with a new machine of the same spec,
// which takes its place in traffic once healthy (MachineReplaced), so the
// app keeps its count.
type Monitor struct {
	Router  Router        // the router that carries traffic, such as a proxy
	Backend Backend       // to find the machine behind each address
	App     string        // the app whose machines are checked
	Health  HealthChecker // nil: DefaultCheck
	// Interval between rounds of checks; 0 means the checker's policy interval.
	Interval time.Duration
	// Failures in a row that take a target out of traffic; 0 means 2.
	Failures int
	// Passes in a row that bring it back; 0 means the checker's threshold.
	Passes int
	// OnEvent receives MachineUnhealthy when a target leaves, MachineHealthy
	// when it returns, MachineRestarted and MachineReplaced. It is called
	// from Run's goroutines, one event at a time.
	OnEvent func(Event)

	// Replace makes Run replace a routed machine gone for good (seen so in
	// two rounds in a row) with a new machine of its spec; false leaves it out
	// of traffic, as before.
	Replace bool
	// Lock, when set, is held while a machine is replaced, so that a
	// replacement never races a deploy: set it to the Deployer's Lock. While
	// it fails (a deploy runs) the replacement waits for a later round.
	Lock func(ctx context.Context, app string) (unlock func(), err error)
	// ReplaceTimeout bounds a replacement's health wait; 0 means DefaultWaitTimeout.
	ReplaceTimeout time.Duration
	// Clock paces the rounds and a replacement's health wait; nil means real time.
	Clock Clock

	applyMu sync.Mutex // serializes changes to the real router; held across its SetTargets
	mu      sync.Mutex // guards the fields below; never held across a call out
	desired map[string]int
	fails   map[string]int
	passes  map[string]int
	down    map[string]bool

	ids       map[string]string      // desired address -> ID of the machine seen there
	specs     map[string]MachineSpec // machine ID -> its spec, to replace it when gone
	restarts  map[string]int         // machine ID -> restart count last seen
	gone      map[string]int         // desired address -> rounds in a row its machine was gone for good
	replacing map[string]bool        // desired address -> a replacement runs
	retryAt   map[string]time.Time   // desired address -> no replacement before
	evmu      sync.Mutex             // one OnEvent call at a time
}

// SetTargets records the targets the caller wants and applies them, minus the
// ones currently failing their checks. It returns once removed targets drained.
func (m *Monitor) SetTargets(ctx context.Context, targets map[string]int) error {
	m.mu.Lock()
	m.desired = copyWeights(targets)
	// Forget the state of targets no longer wanted: every target ever checked
	// has a fails entry (down and passes are subsets), not only the ones down.
	for a := range m.fails {
		if _, ok := targets[a]; !ok {
			delete(m.down, a)
			delete(m.fails, a)
			delete(m.passes, a)
		}
	}
	for a := range m.ids {
		if _, ok := targets[a]; !ok {
			delete(m.ids, a)
			delete(m.gone, a)
			delete(m.retryAt, a)
		}
	}
	m.mu.Unlock()
	return m.apply(ctx)
}

// Targets returns the targets last set by the caller (the desired set).
func (m *Monitor) Targets() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copyWeights(m.desired)
}

// Down returns the addresses currently held out of traffic.
func (m *Monitor) Down() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for a := range m.down {
		out = append(out, a)
	}
	return out
}

var _ RouterWrapper = (*Monitor)(nil)

// Unwrap returns the real router, so that strategies can find its optional
// abilities (see RouterWrapper).
func (m *Monitor) Unwrap() Router { return m.Router }

// apply passes the desired targets, minus those down, to the real router, and
// returns once removed targets drained. m.mu must not be held: apply holds
// m.applyMu across the router's SetTargets, so changes reach it in order, and
// m.mu only to read the current state, so that Targets, Down and SetTargets'
// bookkeeping never wait for a drain.
func (m *Monitor) apply(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	eff := make(map[string]int, len(m.desired))
	for a, w := range m.desired {
		if !m.down[a] {
			eff[a] = w
		}
	}
	if len(eff) == 0 && len(m.desired) > 0 {
		eff = copyWeights(m.desired) // all failing: fail open
	}
	m.mu.Unlock()
	return m.Router.SetTargets(ctx, eff)
}

// Run checks every desired target each interval until ctx ends, and returns ctx's error.
func (m *Monitor) Run(ctx context.Context) error {
	if m.Router == nil || m.Backend == nil {
		return errors.New("monitor: Router and Backend must be set")
	}
	hc := m.Health
	if hc == nil {
		hc = DefaultCheck{}
	}
	pol := PolicyOf(hc)
	interval := m.Interval
	if interval <= 0 {
		interval = pol.Interval
	}
	// Each round runs in an AfterFunc of the clock, which arms the next one:
	// rounds never overlap, and a fake clock runs a round as it advances.
	clock := clockOr(m.Clock)
	var bg sync.WaitGroup
	var mu sync.Mutex // held by a round; Run returns only once none runs
	var t Timer
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		m.round(ctx, hc, interval, &bg)
		t.Reset(interval)
	}
	mu.Lock()
	t = clock.AfterFunc(interval, tick)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	t.Stop()
	mu.Unlock()
	bg.Wait() // replacements end with ctx
	return ctx.Err()
}

// Round runs one round of checks now. It follows restarted machines to their
// new addresses but replaces none (only Run does).
func (m *Monitor) Round(ctx context.Context, hc HealthChecker, timeout time.Duration) {
	m.round(ctx, hc, timeout, nil)
}

// round runs one round; with bg, it starts the replacements it decides.
func (m *Monitor) round(ctx context.Context, hc HealthChecker, timeout time.Duration, bg *sync.WaitGroup) {
	if hc == nil {
		hc = DefaultCheck{}
	}
	if len(m.Targets()) == 0 {
		return
	}
	ms, err := m.Backend.List(ctx, m.App)
	if err != nil {
		return // the backend is unreachable: change nothing
	}
	byAddr := make(map[string]Machine, len(ms))
	byID := make(map[string]Machine, len(ms))
	for _, mc := range ms {
		if a := mc.Addr(); a != "" {
			byAddr[a] = mc
		}
		byID[mc.ID()] = mc
	}
	lost, events := m.follow(ctx, byAddr, byID, bg != nil && m.Replace)
	m.emit(events...)
	if bg != nil {
		for _, l := range lost {
			bg.Add(1)
			go func() {
				defer bg.Done()
				m.replace(ctx, hc, l)
			}()
		}
	}
	want := m.Targets()
	results := make(map[string]error, len(want))
	var rmu sync.Mutex
	var wg sync.WaitGroup
	for a := range want {
		mc := byAddr[a]
		if mc == nil {
			continue // not a machine of this app (or gone): the deployer owns it
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, max(timeout, time.Second))
			defer cancel()
			// The target's address, not the machine's latest: a machine
			// restarted elsewhere meanwhile fails here, and is followed there.
			err := hc.Check(cctx, atAddr{mc, a})
			rmu.Lock()
			results[a] = err
			rmu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	m.record(ctx, results, byAddr, PolicyOf(hc).Threshold)
}

// record counts the round's results; threshold is the checker's, for Passes 0.
func (m *Monitor) record(ctx context.Context, results map[string]error, byAddr map[string]Machine, threshold int) {
	failures := m.Failures
	if failures <= 0 {
		failures = 2
	}
	passes := m.Passes
	if passes <= 0 {
		passes = threshold
	}
	m.mu.Lock()
	m.initLocked()
	changed := false
	var events []Event
	for a, err := range results {
		if _, ok := m.desired[a]; !ok {
			continue // removed while we checked
		}
		mc := byAddr[a]
		ev := Event{Time: m.now(), App: m.App, Machine: mc.ID(), Version: mc.Spec().Version, Addr: a}
		if err != nil {
			m.passes[a] = 0
			if m.fails[a]++; m.fails[a] >= failures && !m.down[a] {
				m.down[a], changed = true, true
				ev.Type, ev.Err, ev.Message = MachineUnhealthy, err, "left traffic"
				events = append(events, ev)
			}
			continue
		}
		m.fails[a] = 0
		if m.down[a] {
			if m.passes[a]++; m.passes[a] >= passes {
				delete(m.down, a)
				changed = true
				ev.Type, ev.Message = MachineHealthy, "back in traffic"
				events = append(events, ev)
			}
		}
	}
	m.mu.Unlock()
	if changed {
		_ = m.apply(ctx)
	}
	m.emit(events...)
}

func (m *Monitor) now() time.Time { return clockOr(m.Clock).Now() }

func (m *Monitor) emit(events ...Event) {
	if m.OnEvent == nil {
		return
	}
	m.evmu.Lock()
	defer m.evmu.Unlock()
	for _, e := range events {
		m.OnEvent(e)
	}
}

func copyWeights(in map[string]int) map[string]int {
	out := make(map[string]int, len(in))
	for a, w := range in {
		out[a] = w
	}
	return out
}

// initLocked makes the health bookkeeping's maps; m.mu is held.
func (m *Monitor) initLocked() {
	if m.fails == nil {
		m.fails, m.passes, m.down = map[string]int{}, map[string]int{}, map[string]bool{}
	}
}
