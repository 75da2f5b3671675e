package mem

import (
	"errors"
	"time"
)

// ErrInjected is the error returned by an injected backend call failure with no Err of its own.
var ErrInjected = errors.New("injected fault")

// Op names a backend call that can be made to fail.
type Op string

// Backend calls a Fault can fail.
const (
	OpCreate  Op = "create"
	OpStart   Op = "start"
	OpStop    Op = "stop"
	OpDestroy Op = "destroy"
	OpList    Op = "list"
)

// Fault describes injected misbehaviour. The selector fields choose the
// machines it applies to; zero selectors match every machine. Behaviour faults
// are read when a machine starts; Op faults when the call is made.
type Fault struct {
	// Selectors.
	Image   string // machines of this image
	Nth     int    // with Image: only the Nth machine created from it (1-based)
	Machine string // one machine, by ID

	// Behaviour.
	BootDelay    time.Duration // the app listens only after this delay
	NeverListen  bool          // the app never listens (a boot that never ends)
	CloseConns   bool          // the app accepts every connection and closes it at once, serving nothing
	FailStart    bool          // Start fails and the machine exits with code 1
	CrashAfter   time.Duration // crash (connections reset, exit 1) this long after start
	ExitAfter    time.Duration // exit on its own this long after start, with ExitCode
	ExitCode     int           // for ExitAfter
	Unhealthy    bool          // the health endpoint answers 503
	HealthPath   string        // the health endpoint; default "/health"
	SlowShutdown time.Duration // the app ignores the stop signal this long (killed at the stop timeout)

	// Backend call errors.
	Op        Op    // the call to fail
	Err       error // the error; nil means ErrInjected
	Transient bool  // wrap deploy.ErrTransient so callers may retry
	Times     int   // fail this many calls, then succeed; 0 fails every call
}

type faultState struct {
	Fault
	used int
}

func (f *faultState) matches(image, id string, nth int) bool {
	if f.Machine != "" && f.Machine != id {
		return false
	}
	if f.Image != "" && f.Image != image {
		return false
	}
	if f.Nth > 0 && f.Nth != nth {
		return false
	}
	return true
}

// merge returns f with the behaviour set in g added.
func (f Fault) merge(g Fault) Fault {
	f.BootDelay = max(f.BootDelay, g.BootDelay)
	f.FailStart = f.FailStart || g.FailStart
	f.NeverListen = f.NeverListen || g.NeverListen
	f.CloseConns = f.CloseConns || g.CloseConns
	if g.CrashAfter > 0 {
		f.CrashAfter = g.CrashAfter
	}
	if g.ExitAfter > 0 {
		f.ExitAfter, f.ExitCode = g.ExitAfter, g.ExitCode
	}
	f.Unhealthy = f.Unhealthy || g.Unhealthy
	if g.HealthPath != "" {
		f.HealthPath = g.HealthPath
	}
	f.SlowShutdown = max(f.SlowShutdown, g.SlowShutdown)
	return f
}
