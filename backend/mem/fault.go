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
// are read each time a machine starts (a restart by its restart policy
// included); Op faults when the call is made. Faults that match one machine
// add up: every flag applies, ListenAfter and IgnoreStopFor take the longest,
// and CrashAfter, ExitAfter and HealthPath the last injected.
type Fault struct {
	// Selectors.
	Image   string // machines of this image
	Nth     int    // only the Nth machine created from its image (1-based); usually with Image
	Machine string // one machine, by ID

	// Behaviour. Durations count from each start of the machine. Until the
	// app listens, its address refuses connections (with
	// Backend.PortForwarder: accepts and closes them).
	ListenAfter time.Duration // the app listens only this long after it starts
	NeverListen bool          // the app never listens (a boot that never ends)
	CloseConns  bool          // the app accepts every connection and closes it at once, serving nothing
	FailStart   bool          // Start returns an error wrapping ErrInjected; the machine exits with code 1
	CrashAfter  time.Duration // the app crashes this long after it starts: connections reset, exit 1
	ExitAfter   time.Duration // the app exits on its own this long after it starts, gracefully, with ExitCode
	ExitCode    int           // the exit code of ExitAfter
	// Unhealthy makes the health endpoint (HealthPath) answer 503 while the
	// app serves every other path: HTTP checks of that path fail, TCP checks pass.
	Unhealthy bool
	// HealthPath is the path that Unhealthy and Machine.SetHealthy(false)
	// make answer 503; "" means "/health".
	HealthPath string
	// IgnoreStopFor is how long the app ignores the stop signal, serving on
	// as if none came, before it shuts down gracefully; the machine is killed
	// (exit 137) if the spec's stop timeout ends first.
	IgnoreStopFor time.Duration

	// Backend call errors.
	Op        Op    // the call to fail
	Err       error // the error; nil means ErrInjected
	Transient bool  // wrap deploy.ErrTransient as well, so callers may retry
	Times     int   // fail this many matching calls, then succeed; 0 fails every one
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
	f.ListenAfter = max(f.ListenAfter, g.ListenAfter)
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
	f.IgnoreStopFor = max(f.IgnoreStopFor, g.IgnoreStopFor)
	return f
}
