package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPortNotPublished means a machine does not publish the port asked for.
var ErrPortNotPublished = errors.New("port not published")

// PortAddresser is implemented by machines that publish ports besides the
// app's (MachineSpec.Ports), such as a health check's own port.
type PortAddresser interface {
	// AddrOf returns the host:port that reaches port of the machine, once
	// started, or an error wrapping ErrPortNotPublished.
	AddrOf(port int) (string, error)
}

// AddrOf returns the host:port that reaches port of m: its Addr for 0 or the
// spec's Port, else what the machine (or a machine it wraps, through an
// Unwrap() Machine method) publishes for it.
func AddrOf(m Machine, port int) (string, error) {
	if port == 0 || port == m.Spec().Port {
		return m.Addr(), nil
	}
	if pa, ok := machineAs[PortAddresser](m); ok {
		return pa.AddrOf(port)
	}
	return "", fmt.Errorf("machine %s: port %d: %w (the backend publishes only the app port)", m.ID(), port, ErrPortNotPublished)
}

// DefaultStartupWindow is how long a machine that serves no traffic must
// keep running after its start to count as started (StaysRunning's default).
const DefaultStartupWindow = 3 * time.Second

// StaysRunning is the readiness check of a machine that serves nothing (a
// worker), as fly waits for one: it passes once the machine has been started
// and has not exited for For (DefaultStartupWindow when 0). WaitHealthy
// reports an exit within that window as ErrExited at once.
type StaysRunning struct {
	For time.Duration
}

// Check passes while m is started.
func (StaysRunning) Check(_ context.Context, m Machine) error {
	if st := m.State(); st != StateStarted {
		return fmt.Errorf("machine is %s, not started", st)
	}
	return nil
}

// Policy waits For before the first check, then polls every 100ms.
func (s StaysRunning) Policy() HealthPolicy {
	w := s.For
	if w <= 0 {
		w = DefaultStartupWindow
	}
	return HealthPolicy{GracePeriod: w, Interval: 100 * time.Millisecond}
}

// machineAs finds the optional interface T on m or on a machine it wraps
// (through an Unwrap() Machine method, as backend/retry's machines have).
func machineAs[T any](m Machine) (T, bool) {
	for m != nil {
		if t, ok := m.(T); ok {
			return t, true
		}
		u, ok := m.(interface{ Unwrap() Machine })
		if !ok {
			break
		}
		m = u.Unwrap()
	}
	var zero T
	return zero, false
}
