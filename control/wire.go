// Package control drives a cutover daemon from another process: HTTP with
// JSON over a Unix socket.
//
// A Server serves a deploy.Router (usually a proxy, often wrapped in a
// deploy.Monitor) and, optionally, an App: the deploys, rollbacks, release
// history, status, logs and bluegreen promote/abort of the one app the daemon
// runs. A Client, from Dial, implements deploy.Router and deploy.WeightReporter,
// so a Deployer in one process can move the traffic of a proxy that runs in
// another; its other methods are what a command-line tool needs.
//
// Long operations (Deploy, Rollback) run in the daemon under the Server's
// lifetime, not the request's: a client that goes away stops watching, the
// deploy goes on (as `fly deploy --detach`). Events and the result stream back
// as JSON lines.
//
// The package imports only the standard library and the root package.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	deploy "github.com/cutover/deploy"
)

// ErrUnreachable is wrapped by a Client's errors when nothing answers on the
// socket (no daemon, or a stale socket file).
var ErrUnreachable = errors.New("control: daemon unreachable")

// ErrDaemonGone is wrapped by a Client's errors when the daemon stopped (or
// its connection broke) before it finished answering: a deploy it ran did not
// finish, and a proxy it ran stopped with it.
var ErrDaemonGone = errors.New("control: the daemon stopped before it answered")

// ErrStopping is the cause (context.Cause) of the cancellation of the
// operations of a Server that shuts down or closes.
var ErrStopping = errors.New("the cutover daemon is stopping")

// ErrNoApp is returned (wrapped) for app operations on a Server that serves
// routing only.
var ErrNoApp = errors.New("control: this daemon serves routing only")

// ErrNotHeld is returned (wrapped) by Promote and Abort when no deploy waits for them.
var ErrNotHeld = errors.New("no deploy is held")

// ErrNotRunning is returned (wrapped) by Abort when no deploy or rollback runs.
var ErrNotRunning = errors.New("no deploy is running")

// ErrInUse is returned (wrapped) by Listen when a live server answers on the path.
var ErrInUse = errors.New("a daemon already listens")

// Info describes a daemon.
type Info struct {
	App     string    `json:"app,omitempty"`     // the app it runs
	Backend string    `json:"backend,omitempty"` // such as "mem" or "docker"
	Addr    string    `json:"addr,omitempty"`    // the proxy's public address (host:port)
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`
}

// Event is the JSON form of a deploy.Event.
type Event struct {
	Type    deploy.EventType `json:"type"`
	Time    time.Time        `json:"time"`
	App     string           `json:"app,omitempty"`
	Version string           `json:"version,omitempty"`
	Machine string           `json:"machine,omitempty"`
	Addr    string           `json:"addr,omitempty"`
	Weight  int              `json:"weight,omitempty"`
	Message string           `json:"message,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// FromEvent returns the JSON form of e.
func FromEvent(e deploy.Event) Event {
	out := Event{Type: e.Type, Time: e.Time, App: e.App, Version: e.Version, Machine: e.Machine, Addr: e.Addr, Weight: e.Weight, Message: e.Message}
	if e.Err != nil {
		out.Error = e.Err.Error()
	}
	return out
}

// Event returns e as a deploy.Event; its Err, if any, carries the message only.
func (e Event) Event() deploy.Event {
	out := deploy.Event{Type: e.Type, Time: e.Time, App: e.App, Version: e.Version, Machine: e.Machine, Addr: e.Addr, Weight: e.Weight, Message: e.Message}
	if e.Error != "" {
		out.Err = errors.New(e.Error)
	}
	return out
}

// StatusRunning is a Result's status when the client stopped watching a
// deploy that goes on (Deploy with DeployArgs.Detach).
const StatusRunning deploy.Status = "running"

// Result is the JSON form of a deploy.Result.
type Result struct {
	App         string                   `json:"app"`
	Strategy    string                   `json:"strategy,omitempty"`
	FromVersion string                   `json:"from_version,omitempty"`
	Version     string                   `json:"version,omitempty"`
	Release     int                      `json:"release,omitempty"`
	Status      deploy.Status            `json:"status"`
	Machines    []string                 `json:"machines"`
	Counts      map[deploy.EventType]int `json:"counts,omitempty"`
	DowntimeMS  int64                    `json:"downtime_ms"`
	DurationMS  int64                    `json:"duration_ms"`
	Started     time.Time                `json:"started"`
	Finished    time.Time                `json:"finished,omitzero"`
	Error       string                   `json:"error,omitempty"`
}

// FromResult returns the JSON form of r (nil for nil).
func FromResult(r *deploy.Result) *Result {
	if r == nil {
		return nil
	}
	out := &Result{
		App: r.App, Strategy: r.Strategy, FromVersion: r.FromVersion, Version: r.Version, Release: r.Release,
		Status: r.Status, Machines: r.Machines, Counts: r.Counts, DowntimeMS: r.Downtime.Milliseconds(),
		Started: r.Started, Finished: r.Finished,
	}
	if out.Machines == nil {
		out.Machines = []string{}
	}
	if !r.Finished.IsZero() {
		out.DurationMS = r.Duration().Milliseconds()
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

// DeployArgs is one deploy asked of a daemon's App. Which fields an App
// honours is its business; the daemon of examples/cutover reads them all.
type DeployArgs struct {
	// Config is the deploy configuration, opaque to this package (the
	// cutover command sends its fly.toml plan). Empty: the daemon's own.
	Config      json.RawMessage `json:"config,omitempty"`
	Image       string          `json:"image,omitempty"`    // overrides the configuration's image
	Strategy    string          `json:"strategy,omitempty"` // overrides the configuration's strategy
	WaitTimeout time.Duration   `json:"wait_timeout,omitempty"`
	Count       int             `json:"count,omitempty"` // machines to end with; 0 keeps the current count
	// Hold makes a bluegreen deploy wait, once its machines are healthy, for
	// Promote or Abort (or HoldTimeout).
	Hold        bool          `json:"hold,omitempty"`
	HoldTimeout time.Duration `json:"hold_timeout,omitempty"`
	Description string        `json:"description,omitempty"`
	User        string        `json:"user,omitempty"`
	// CanarySteps are the traffic percent of each step of a canary deploy;
	// empty: the strategy's default steps.
	CanarySteps []int `json:"canary_steps,omitempty"`
	// CanaryStepDuration is how long each canary step is held; 0: the default.
	CanaryStepDuration time.Duration `json:"canary_step_duration,omitempty"`
	// Detach makes Client.Deploy return once the deploy started; it goes on in the daemon.
	Detach bool `json:"-"`
}

// RollbackArgs is one rollback asked of a daemon's App.
type RollbackArgs struct {
	// Version is the release to redeploy; 0 means the stable release before the current one.
	Version int    `json:"version,omitempty"`
	User    string `json:"user,omitempty"`
}

// requestStats is the JSON form of deploy.StatsReporter's counters; latency
// buckets are keyed by their upper bound in nanoseconds.
type requestStats struct {
	Requests map[string]uint64                   `json:"requests"`
	Errors   map[string]uint64                   `json:"errors"`
	Latency  map[string]map[time.Duration]uint64 `json:"latency"`
}

// TargetStats is the JSON form of a proxy's statistics for one target.
type TargetStats struct {
	Weight    int     `json:"weight"`
	InFlight  int64   `json:"in_flight"`
	Queued    uint64  `json:"queued,omitempty"` // requests that waited for room under its hard limit
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	ErrorRate float64 `json:"error_rate"`
}

// Machine is one machine in a Status.
type Machine struct {
	ID      string              `json:"id"`
	Group   string              `json:"group,omitempty"` // process group of a multi-group app
	Version string              `json:"version"`
	Image   string              `json:"image"`
	Addr    string              `json:"addr"`
	State   deploy.MachineState `json:"state"`
	Health  string              `json:"health"`
	Weight  int                 `json:"weight"` // -1 when the router cannot say
	// Down: the daemon's continuous checks hold it out of traffic.
	Down  bool         `json:"down,omitempty"`
	Stats *TargetStats `json:"stats,omitempty"`
}

// FromMachineStatus returns the JSON form of s.
func FromMachineStatus(s deploy.MachineStatus) Machine {
	return Machine{ID: s.ID, Group: s.Group, Version: s.Version, Image: s.Image, Addr: s.Addr, State: s.State, Health: s.Health, Weight: s.Weight}
}

// Operation is what a daemon is doing now.
type Operation struct {
	Kind     string    `json:"kind"`               // "deploy" or "rollback"
	Version  string    `json:"version,omitempty"`  // the version being deployed, once known
	Strategy string    `json:"strategy,omitempty"` // its strategy
	Held     bool      `json:"held,omitempty"`     // a bluegreen deploy waits for promote or abort
	Started  time.Time `json:"started"`
}

// Status is an app's state, like `fly status`.
type Status struct {
	Info
	Machines  []Machine              `json:"machines"`
	Targets   map[string]int         `json:"targets"`         // the proxy's targets: address to weight
	Down      []string               `json:"down,omitempty"`  // addresses held out of traffic by health checks
	Stats     map[string]TargetStats `json:"stats,omitempty"` // per target, by address
	Operation *Operation             `json:"operation,omitempty"`
}

// LogOptions selects log lines. Its zero value sends every kept line and
// does not follow.
type LogOptions struct {
	Follow bool      // go on with new lines until the caller stops
	Lines  int       // of the kept lines, only the last Lines; 0 means all
	Since  time.Time // of the kept lines, only those written at or after Since; zero means all
}

// App is what a daemon offers beyond routing: the operations on the one app
// it runs. emit may be called from any goroutine until the method returns.
type App interface {
	Deploy(ctx context.Context, args DeployArgs, emit func(deploy.Event)) (*deploy.Result, error)
	Rollback(ctx context.Context, args RollbackArgs, emit func(deploy.Event)) (*deploy.Result, error)
	Releases(ctx context.Context) ([]deploy.Release, error)
	Status(ctx context.Context) (Status, error)
	Promote(ctx context.Context) error
	Abort(ctx context.Context) error
	// Logs sends log lines to emit: what is kept (as opts selects), then,
	// with opts.Follow, new lines until ctx ends.
	Logs(ctx context.Context, opts LogOptions, emit func(line string)) error
}

// Scaler is an App that can change how many machines run the current
// release; a Server serves Scale when its App is one.
type Scaler interface {
	Scale(ctx context.Context, args ScaleArgs, emit func(deploy.Event)) (*deploy.Result, error)
}

// ScaleArgs is one scale asked of a daemon's App: machines of the current
// release, per process group.
type ScaleArgs struct {
	Count int `json:"count,omitempty"` // machines of the default process group, at least 1; with Groups unset
	// Groups are machines per process group ("" the default one), at least
	// 1 each; groups left out keep their count. When set, Count is unused.
	Groups map[string]int `json:"groups,omitempty"`
	User   string         `json:"user,omitempty"`
}

// Destroyer is an App that can remove all of its app's machines; a Server
// serves Destroy when its App is one.
type Destroyer interface {
	// Destroy takes every machine out of traffic, stops and removes it, and
	// returns their IDs.
	Destroy(ctx context.Context) ([]string, error)
}

// Error is an error that crossed the socket. Its Unwrap returns the deploy
// sentinel its kind names, so errors.Is works on both sides.
type Error struct {
	Kind    string `json:"kind,omitempty"` // see kinds
	Message string `json:"message"`
}

// Error returns the message the daemon sent.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel error of e's kind, or nil.
func (e *Error) Unwrap() error {
	for _, k := range kinds {
		if k.kind == e.Kind {
			return k.err
		}
	}
	return nil
}

// kinds names the sentinel errors that cross the socket, in the order toError
// matches them: the most telling first.
var kinds = []struct {
	kind string
	err  error
}{
	{"invalid", deploy.ErrInvalid},
	{"aborted", deploy.ErrAborted},
	{"in_progress", deploy.ErrDeployInProgress},
	{"not_held", ErrNotHeld},
	{"not_running", ErrNotRunning},
	{"no_app", ErrNoApp},
	{"no_handover", ErrNoHandover},
	{"unhealthy", deploy.ErrUnhealthy},
	{"exited", deploy.ErrExited},
	{"not_found", deploy.ErrNotFound},
	{"canceled", context.Canceled},
	{"deadline", context.DeadlineExceeded},
}

func toError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: e.Kind, Message: err.Error()}
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return &Error{Kind: k.kind, Message: err.Error()}
		}
	}
	return &Error{Message: err.Error()}
}

// frame is one JSON line of a streamed answer.
type frame struct {
	Event  *Event  `json:"event,omitempty"`
	Log    *string `json:"log,omitempty"`
	Result *Result `json:"result,omitempty"`
	Error  *Error  `json:"error,omitempty"`
	Done   bool    `json:"done,omitempty"` // the last frame
}

func errorf(kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}
