package mem

import (
	"context"
	"sync"
	"time"

	"github.com/cutover/deploy"
)

// DefaultRestartDelay is how long a machine that exited on its own stays down
// before the backend restarts it, when Backend.RestartDelay is 0 (Docker's
// first restart delay).
const DefaultRestartDelay = 100 * time.Millisecond

// Restarts returns how many times the backend restarted the machine after its
// process exited on its own (deploy.RestartReporter).
func (m *Machine) Restarts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restarts
}

var _ deploy.RestartReporter = (*Machine)(nil)

// maybeRestartLocked schedules a restart of a machine whose run just ended
// with code, as the spec's restart policy says: only a serving machine (not a
// command override) that exited on its own (not by Stop or Destroy), while
// the backend is open. Until the restart it is StateStarting, as Docker's
// "restarting". m.mu is held.
func (m *Machine) maybeRestartLocked(code int) {
	if m.stopAsked || m.state != deploy.StateStopped || len(commandLine(m.spec)) > 0 || m.b.NoListen {
		return
	}
	if !m.spec.Restart.Restarts(code, m.restarts) {
		return
	}
	delay := m.b.RestartDelay
	if delay <= 0 {
		delay = DefaultRestartDelay
	}
	m.state = deploy.StateStarting
	m.restartTimer = time.AfterFunc(delay, m.restart)
}

// cancelRestartLocked cancels a pending restart; it reports whether one was
// pending (the machine is then stopped). m.mu is held.
func (m *Machine) cancelRestartLocked() bool {
	if m.restartTimer == nil {
		return false
	}
	m.restartTimer.Stop()
	m.restartTimer = nil
	if m.state == deploy.StateStarting {
		m.state = deploy.StateStopped
	}
	return true
}

// restart begins a new run of the machine, as a restart policy does: the app
// listens on a fresh loopback port (after its ListenAfter fault), its
// image's app is made anew (RegisterPerMachine), and its behaviour faults are
// read again, as at Start (a machine that crashes after a delay crashes again). Its ID stays; its Addr changes, as a Docker
// container's ephemeral host port does.
func (m *Machine) restart() {
	h, _, err := m.newRun() // a new process: a new instance of the app
	m.b.mu.Lock()
	closed := m.b.closed
	m.b.mu.Unlock()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restartTimer == nil || m.stopAsked || m.state != deploy.StateStarting {
		return // cancelled meanwhile
	}
	m.restartTimer = nil
	if err != nil || closed {
		m.state = deploy.StateStopped
		return
	}
	// Behaviour faults are read again, as at Start: those injected since apply.
	m.b.mu.Lock()
	m.fault = m.b.faultsForLocked(m.spec.Image, m.id, m.nth)
	m.b.mu.Unlock()
	f := m.fault
	ln, res, err := m.listenLocked(f)
	if err != nil {
		m.state = deploy.StateStopped
		return
	}
	// A new run: a new exit to wait for.
	m.restarts++
	m.killed = false
	m.timers = nil
	m.exitOnce = sync.Once{}
	m.exited = make(chan struct{})
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.serversLocked(h)
	m.state = deploy.StateStarted
	m.bg.Add(1)
	go m.serve(runCtx, ln, res, f)
	m.armFaultsLocked(f)
}
