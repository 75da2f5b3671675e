package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
)

// Sentinel errors. Backends and strategies wrap them with %w; match them with errors.Is.
var (
	// ErrNotFound means the machine (or app, or release) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnhealthy means a machine did not pass its health checks in time.
	ErrUnhealthy = errors.New("unhealthy")
	// ErrExited means a machine exited or crashed while it was expected to run.
	ErrExited = errors.New("machine exited")
	// ErrAborted means a deploy was aborted on purpose (Abort, a failed release command, a failed analysis).
	ErrAborted = errors.New("deploy aborted")
	// ErrDeployInProgress means another deploy of the same app is running.
	ErrDeployInProgress = errors.New("deploy in progress")
	// ErrInvalid means a request, spec or option is invalid.
	ErrInvalid = errors.New("invalid")
	// ErrNoStrategy means a deploy was asked for without a Strategy.
	ErrNoStrategy = errors.New("no strategy: set Deployer.Strategy or Request.Strategy")
	// ErrTransient marks a backend error that may succeed when retried.
	ErrTransient = errors.New("transient backend error")
)

// MachineSpec describes what to run: one version of an app.
type MachineSpec struct {
	App     string            // app name; machines of one app are deployed together
	Image   string            // image to run (a registered handler name on the mem backend)
	Version string            // release version label such as "v3"; set by the Deployer when empty
	Cmd     []string          // command override; empty runs the image's default
	Env     map[string]string // environment
	Port    int               // internal port the app listens on (default 8080 where a backend needs one)
	// Ports are more ports the machine serves that must be reachable, such as
	// a health check's own port; see PortAddresser and AddrOf.
	Ports []int
	// Protocol is what the app serves on Port: ProtocolHTTP (also when empty)
	// or ProtocolTCP. DefaultCheck speaks it.
	Protocol string
	Labels   map[string]string // extra labels kept with the machine
	// NoService marks a machine that serves no traffic (a worker): the
	// Deployer never routes it, and it is ready once started and running for
	// DefaultStartupWindow (see StaysRunning) unless a health checker is given.
	NoService bool
	// Entrypoint overrides the image's entrypoint; empty keeps it.
	Entrypoint []string

	StopSignal  string        // signal sent on stop, such as "SIGTERM" (the default) or "SIGINT"
	StopTimeout time.Duration // how long a stop waits before killing; 0 means 10s

	// Restart says whether the backend restarts the machine when its process
	// exits on its own; the zero value is on-failure with 10 retries, as on Fly.
	Restart RestartPolicy
}

// Protocols of MachineSpec.Protocol.
const (
	ProtocolHTTP = "http"
	ProtocolTCP  = "tcp"
)

// StopTimeoutOrDefault returns StopTimeout, or 10s when it is zero or negative.
func (s MachineSpec) StopTimeoutOrDefault() time.Duration {
	if s.StopTimeout <= 0 {
		return 10 * time.Second
	}
	return s.StopTimeout
}

// MachineState is the lifecycle state of a machine.
type MachineState string

// Machine states, in lifecycle order.
const (
	StateCreated   MachineState = "created"
	StateStarting  MachineState = "starting"
	StateStarted   MachineState = "started"
	StateStopping  MachineState = "stopping"
	StateStopped   MachineState = "stopped"
	StateDestroyed MachineState = "destroyed"
)

// ExitStatus is how a machine's process ended.
type ExitStatus struct {
	Code   int    // process exit code; 137 when killed
	Reason string // short human reason, such as "stopped", "killed after stop timeout", "crashed"
}

// String describes the exit, such as "exit code 137 (killed after stop timeout)".
func (e ExitStatus) String() string {
	if e.Reason == "" {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return fmt.Sprintf("exit code %d (%s)", e.Code, e.Reason)
}

// Machine is a handle to one instance of an app.
type Machine interface {
	ID() string
	Spec() MachineSpec
	// Addr is the host:port that serves the app, valid once started.
	Addr() string
	State() MachineState
	// Start starts a created machine. It returns once the process runs, not once it is healthy.
	Start(ctx context.Context) error
	// Wait blocks until the machine's process exits, or ctx ends.
	Wait(ctx context.Context) (ExitStatus, error)
	// Stop sends the stop signal, waits up to the spec's stop timeout, then kills.
	// If ctx ends before the process exits, even before the signal is sent, the
	// machine is killed and ctx's error returned: ctx bounds the grace, not the stop.
	Stop(ctx context.Context) error
	// Destroy removes the machine. Destroying a destroyed machine is not an error.
	Destroy(ctx context.Context) error
}

// Backend creates and finds machines.
type Backend interface {
	// Create creates a machine from spec, not yet started.
	Create(ctx context.Context, spec MachineSpec) (Machine, error)
	// List returns the app's machines that are not destroyed.
	List(ctx context.Context, app string) ([]Machine, error)
	// Get returns one machine, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Machine, error)
}

// LogReader is implemented by machines that can read their own output.
type LogReader interface {
	// Logs returns the machine's output; with follow it streams until the machine exits or ctx ends.
	Logs(ctx context.Context, follow bool) (io.ReadCloser, error)
}

// HealthChecker decides whether one machine is healthy now.
type HealthChecker interface {
	Check(ctx context.Context, m Machine) error
}

// HealthPolicy is how WaitHealthy polls a HealthChecker.
type HealthPolicy struct {
	GracePeriod time.Duration // wait before the first check; default 0
	Interval    time.Duration // between checks; default 1s
	Threshold   int           // consecutive passes needed; default 1
}

// PolicyProvider is implemented by health checkers that carry their own timing.
type PolicyProvider interface {
	Policy() HealthPolicy
}

// Router sends traffic to a weighted set of machine addresses.
// A proxy satisfies it with built-in types only, so it need not import this package.
type Router interface {
	// SetTargets replaces the target set: address to weight (weight 0 keeps the target
	// but sends it no new requests). It returns once every removed target has drained.
	SetTargets(ctx context.Context, targets map[string]int) error
}

// WeightReporter is implemented by routers that can report their current targets.
type WeightReporter interface {
	Targets() map[string]int
}

// RouterWrapper is implemented by routers that wrap another router, such as
// Monitor and router/fanout.Router. Unwrap returns the wrapped router (nil
// when there is none), so that what looks for an optional ability of a
// router (StatsReporter, WeightReporter) finds it under the wrappers: walk
// the chain with RouterChain.
type RouterWrapper interface {
	Unwrap() Router
}

// RouterChain yields rt and then each router it wraps (see RouterWrapper),
// outermost first. A nil rt yields nothing.
func RouterChain(rt Router) iter.Seq[Router] {
	return func(yield func(Router) bool) {
		for rt != nil && yield(rt) {
			w, ok := rt.(RouterWrapper)
			if !ok {
				return
			}
			rt = w.Unwrap()
		}
	}
}

// targets returns the target set of the Deployer's router when it reports
// one (a WeightReporter, itself or a router it wraps), else nil.
func (d *Deployer) targets() map[string]int {
	if wr, ok := findRouter[WeightReporter](d.Router); ok {
		return wr.Targets()
	}
	return nil
}

// findRouter returns the outermost router of RouterChain(rt) that is a T.
func findRouter[T any](rt Router) (T, bool) {
	for r := range RouterChain(rt) {
		if t, ok := r.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

// Strategy moves an app from its current machines to machines of a new spec.
type Strategy interface {
	// Name is the strategy's name, such as "rolling".
	Name() string
	// Deploy performs the rollout. On error the previous version must keep serving
	// and the machines it created must be gone.
	Deploy(ctx context.Context, r *Rollout) error
}

// Validator is an optional ability of a Strategy or a HealthChecker: Validate
// reports settings it cannot run with, with an error wrapping ErrInvalid that
// names the setting and says why. Deployer.Deploy calls it, as it checks its
// own fields and the Request, before it takes the app's lock or records a
// release, so a bad setting fails at once and leaves nothing behind (as
// hashicorp/raft's NewRaft runs ValidateConfig first).
type Validator interface {
	Validate() error
}

// PhaseError says which machine and which phase a deploy failed in, and why.
type PhaseError struct {
	Machine string // machine ID, empty when the failure is not about one machine
	Phase   string // "create", "start", "health", "route", "drain", "stop", "destroy", "release", ...
	Err     error
}

// Error says which machine, which phase and why.
func (e *PhaseError) Error() string {
	if e.Machine == "" {
		return fmt.Sprintf("%s: %v", e.Phase, e.Err)
	}
	return fmt.Sprintf("machine %s: %s: %v", e.Machine, e.Phase, e.Err)
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *PhaseError) Unwrap() error { return e.Err }

func phaseErr(m Machine, phase string, err error) error {
	id := ""
	if m != nil {
		id = m.ID()
	}
	return &PhaseError{Machine: id, Phase: phase, Err: err}
}
