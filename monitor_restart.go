package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// replaceBackoff is how long a failed or refused replacement waits before
// the next attempt.
const replaceBackoff = time.Second

// atAddr is a machine seen at one address: health checks of a target dial the
// target, even if the machine has moved since it was listed.
type atAddr struct {
	Machine
	addr string
}

func (m atAddr) Addr() string { return m.addr }

// Unwrap returns the machine.
func (m atAddr) Unwrap() Machine { return m.Machine }

// lostMachine is a routed machine gone for good, to be replaced.
type lostMachine struct {
	addr string
	id   string
	spec MachineSpec
	old  Machine // nil when the backend no longer lists it
	why  string
}

// move is a routed machine found at a new address after a restart.
type move struct {
	from, to string
	mc       Machine
}

// follow reconciles the desired targets with the machines listed: it learns
// which machine serves each address, moves a target to the new address of a
// restarted machine (held out until it passes its checks), reports restarts,
// and returns the machines gone for good that are to be replaced now (when
// replace is true), and the events to emit.
func (m *Monitor) follow(ctx context.Context, byAddr, byID map[string]Machine, replace bool) ([]lostMachine, []Event) {
	m.mu.Lock()
	lost, events, moved := m.followLocked(byAddr, byID, replace)
	m.mu.Unlock()
	if moved {
		_ = m.apply(ctx)
	}
	return lost, events
}

// followLocked is follow's bookkeeping, with m.mu held; moved reports that
// targets moved, to be applied.
func (m *Monitor) followLocked(byAddr, byID map[string]Machine, replace bool) (lost []lostMachine, events []Event, moved bool) {
	m.initLocked()
	if m.ids == nil {
		m.ids, m.specs, m.restarts = map[string]string{}, map[string]MachineSpec{}, map[string]int{}
		m.gone, m.replacing, m.retryAt = map[string]int{}, map[string]bool{}, map[string]time.Time{}
	}
	now := m.now()
	var moves []move
	for a := range m.desired {
		mc := byAddr[a]
		id := ""
		if mc != nil {
			id = mc.ID()
			m.ids[a], m.specs[id] = id, mc.Spec()
			n := RestartsOf(mc)
			if prev, seen := m.restarts[id]; seen && n > prev {
				events = append(events, m.restartEvent(mc, a, n, "restarted by the backend"))
			}
			m.restarts[id] = n
		} else {
			var known bool
			if id, known = m.ids[a]; !known {
				continue // never seen: not a machine of this app, the deployer owns it
			}
			if mc = byID[id]; mc != nil {
				if to := mc.Addr(); to != "" && to != a {
					if _, taken := m.desired[to]; !taken {
						moves = append(moves, move{from: a, to: to, mc: mc})
					}
					delete(m.gone, a)
					continue
				}
			}
		}
		if !replace {
			continue // only a replacement needs to know whether it is gone
		}
		why := ""
		if mc == nil {
			why = "gone from the backend"
		} else if st := mc.State(); st == StateStopped || st == StateDestroyed {
			why = "stopped, with no restart to come"
		}
		if why == "" {
			delete(m.gone, a)
			continue
		}
		m.gone[a]++
		spec, ok := m.specs[id]
		if !ok || m.gone[a] < 2 || m.replacing[a] || now.Before(m.retryAt[a]) {
			continue
		}
		m.replacing[a] = true
		lost = append(lost, lostMachine{addr: a, id: id, spec: spec, old: mc, why: why})
	}
	for _, mv := range moves {
		w := m.desired[mv.from]
		m.forgetLocked(mv.from)
		m.desired[mv.to] = w
		m.down[mv.to] = true // until it passes its checks
		m.ids[mv.to] = mv.mc.ID()
		n, prev := RestartsOf(mv.mc), m.restarts[mv.mc.ID()]
		m.restarts[mv.mc.ID()] = n
		if n == 0 || n > prev { // not announced yet by its count
			events = append(events, m.restartEvent(mv.mc, mv.to, n, "restarted at a new address (was "+mv.from+"); back in traffic once healthy"))
		}
	}
	return lost, events, len(moves) > 0
}

func (m *Monitor) restartEvent(mc Machine, addr string, n int, msg string) Event {
	if n > 0 {
		msg = fmt.Sprintf("%s (restart %d)", msg, n)
	}
	return Event{Type: MachineRestarted, Time: m.now(), App: m.App, Machine: mc.ID(), Version: mc.Spec().Version, Addr: addr, Message: msg}
}

// forgetLocked drops a desired address and everything known about it. m.mu is held.
func (m *Monitor) forgetLocked(a string) {
	delete(m.desired, a)
	delete(m.down, a)
	delete(m.fails, a)
	delete(m.passes, a)
	delete(m.ids, a)
	delete(m.gone, a)
	delete(m.retryAt, a)
}

// replace creates, starts and health-checks a new machine of l's spec; once
// healthy it takes l's place in traffic and l's machine is destroyed.
func (m *Monitor) replace(ctx context.Context, hc HealthChecker, l lostMachine) {
	retry := func() {
		m.mu.Lock()
		m.retryAt[l.addr] = m.now().Add(replaceBackoff)
		m.mu.Unlock()
	}
	defer func() {
		m.mu.Lock()
		delete(m.replacing, l.addr)
		m.mu.Unlock()
	}()
	if m.Lock != nil {
		unlock, err := m.Lock(ctx, m.App)
		if err != nil {
			retry() // a deploy runs: it decides what serves
			return
		}
		defer unlock()
	}
	m.mu.Lock()
	_, wanted := m.desired[l.addr]
	m.mu.Unlock()
	if !wanted {
		return
	}
	fail := func(nm Machine, err error) {
		ev := Event{Type: MachineUnhealthy, Time: m.now(), App: m.App, Version: l.spec.Version, Err: err,
			Message: fmt.Sprintf("replacement of %s (%s) failed", l.id, l.why)}
		if nm != nil {
			ev.Machine, ev.Addr = nm.ID(), nm.Addr()
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = nm.Destroy(dctx)
			cancel()
		}
		if ctx.Err() == nil {
			m.emit(ev)
		}
		retry()
	}
	nm, err := m.Backend.Create(ctx, l.spec)
	if err != nil {
		fail(nil, fmt.Errorf("create: %w", err))
		return
	}
	if err := nm.Start(ctx); err != nil {
		fail(nm, fmt.Errorf("start: %w", err))
		return
	}
	err = waitHealthy(ctx, clockOr(m.Clock), nm, hc, waitTimeout(m.ReplaceTimeout))
	if err != nil {
		fail(nm, fmt.Errorf("health: %w", err))
		return
	}
	m.mu.Lock()
	w, still := m.desired[l.addr]
	if still {
		m.forgetLocked(l.addr)
		a := nm.Addr()
		m.desired[a] = w
		m.fails[a] = 0
		m.ids[a], m.specs[nm.ID()], m.restarts[nm.ID()] = nm.ID(), nm.Spec(), RestartsOf(nm)
	}
	m.mu.Unlock()
	if !still { // the deployer moved on meanwhile
		fail(nm, errors.New("no longer wanted"))
		return
	}
	err = m.apply(ctx)
	m.emit(Event{Type: MachineReplaced, Time: m.now(), App: m.App, Machine: nm.ID(), Version: nm.Spec().Version, Addr: nm.Addr(), Err: err,
		Message: fmt.Sprintf("replaces %s (%s)", l.id, l.why)})
	if l.old != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if derr := l.old.Destroy(dctx); derr == nil || errors.Is(derr, ErrNotFound) {
			m.mu.Lock()
			delete(m.specs, l.id)
			delete(m.restarts, l.id)
			m.mu.Unlock()
		}
		cancel()
	}
}
