package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Labels the Deployer sets on every machine it creates.
const (
	LabelApp     = "cutover.app"
	LabelVersion = "cutover.version"
	LabelRole    = "cutover.role" // "app" or "release_command"
	// LabelGroup is the process group of a machine of a multi-group deploy.
	LabelGroup = "cutover.group"
	// LabelNoService is "true" on a machine whose spec has NoService.
	LabelNoService = "cutover.noservice"
	// LabelRegion names the region a machine should run in (fly.toml's
	// primary_region; config's Plan sets it). Backends with regions place by
	// it (backend/swarm: node label "region"); the others ignore it.
	LabelRegion = "cutover.region"
)

// Deployer runs deploys. Its zero value is not usable: set Backend and Router,
// and a Strategy here or on each Request. Fields are read at each call; do not
// change them while a deploy runs.
type Deployer struct {
	Backend  Backend
	Router   Router
	Health   HealthChecker // nil: DefaultCheck (the app answers; see DefaultCheck)
	Strategy Strategy      // default strategy for requests that name none

	// WaitTimeout bounds each machine's health wait; 0 means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// Timeout bounds a whole deploy; 0 means no bound beyond ctx. The cleanup or
	// rollback after a failure (a timeout included) runs past it, bounded by the
	// wait timeout plus a minute.
	Timeout time.Duration
	// NoAutoRollback keeps a partly moved fleet on failure instead of restoring
	// the previous version (new machines that never took traffic are destroyed anyway).
	NoAutoRollback bool

	// Store keeps the release history; nil keeps none. With a Store, every deploy
	// is recorded before it starts and its version is the release's ("v3").
	Store Store
	// FromRelease turns a stored release back into a Request, for Rollback. Nil
	// redeploys the release's spec and count with this Deployer's strategy and health.
	FromRelease func(Release) (Request, error)

	// Clock is what every wait of a deploy reads time from (see Clock); nil
	// means real time. Tests set a deploytest.Clock to control it.
	Clock Clock

	// Logger receives what the Deployer does; nil logs nothing. Info: a
	// deploy's or rollback's start and outcome, the release command, the
	// undoing of a failed deploy, what Recover did. Debug: every event (each machine's steps),
	// the lock. Warn: a failed deploy whose previous version serves, and
	// trouble it recovers from (a lock renewal or release that failed).
	// Error: what leaves something behind (an undo that did not complete, a
	// release record not finished). Lines carry app, release, version and,
	// where there is one, machine and phase.
	Logger  hclog.Logger
	OnEvent func(Event) // called synchronously for every event; must not block long

	// LockTTL is how long the cross-process deploy lock lasts without renewal
	// (when the Store is a Locker); 0 means DefaultLockTTL. It is renewed every
	// third of it while a deploy runs.
	LockTTL time.Duration
	// Owner names this Deployer in the cross-process lock; "" means a random
	// name per Deployer. A process that restarts with the Owner it had (kept
	// in its state directory) takes over the lock its predecessor left at
	// once, instead of waiting for it to expire. Two live processes must not
	// share an Owner.
	Owner string

	mu      sync.Mutex
	running map[string]bool
	owner   string
}

// Request is one deploy.
type Request struct {
	Spec        MachineSpec   // the new version; Spec.App names the app
	Count       int           // machines to end with; 0 keeps the current count (at least 1)
	Strategy    Strategy      // nil: Deployer.Strategy
	Health      HealthChecker // nil: Deployer.Health
	WaitTimeout time.Duration // 0: Deployer.WaitTimeout

	// ReleaseCommand, when set, runs in a temporary machine of Spec (with the
	// env plus RELEASE_COMMAND=1) before any machine changes; a non-zero exit or
	// a timeout aborts the deploy with a *ReleaseCommandError.
	ReleaseCommand        []string
	ReleaseCommandTimeout time.Duration // 0: DefaultReleaseCommandTimeout

	// Groups, when set, deploys several process groups in one release, each
	// with the strategy (see Group); Spec is then the first group's.
	Groups []Group

	Description string          // recorded with the release
	User        string          // recorded with the release
	Config      json.RawMessage // the configuration used, recorded with the release for rollback
}

// Status of a finished deploy.
type Status string

// Deploy outcomes.
const (
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"      // nothing moved, or moved machines were kept (NoAutoRollback)
	StatusRolledBack Status = "rolled_back" // traffic had moved; the previous version was restored
)

// Result counts what a deploy did.
type Result struct {
	App         string
	Strategy    string
	FromVersion string // version of the machines serving before; "" for a first deploy
	Version     string // the version deployed
	Release     int    // the release's number in the Deployer's Store; 0 without a Store
	Status      Status
	Machines    []string          // IDs of the machines serving afterwards
	Counts      map[EventType]int // events by type
	Downtime    time.Duration     // window with no machine routed (immediate strategy)
	Started     time.Time
	Finished    time.Time
	Err         error // why it failed; nil on success
}

// failer returns the func that records err as the outcome of the deploy of
// res when it moved nothing.
func (d *Deployer) failer(res *Result) func(err error) (*Result, error) {
	return func(err error) (*Result, error) {
		res.Status, res.Err, res.Finished = StatusFailed, err, d.now()
		return res, err
	}
}

// Duration is how long the deploy took.
func (r *Result) Duration() time.Duration { return r.Finished.Sub(r.Started) }

func (d *Deployer) clock() Clock { return clockOr(d.Clock) }

func (d *Deployer) now() time.Time { return d.clock().Now() }

func (d *Deployer) logger() hclog.Logger {
	if d.Logger == nil {
		return hclog.NewNullLogger()
	}
	return d.Logger
}

// Deploy moves req.Spec.App to req.Spec with the request's strategy. It always
// returns a Result; err is non-nil when the deploy did not succeed, and then the
// previous version serves (Result.Status says whether traffic had to be rolled back).
// It first checks the Deployer's fields, req, and the settings of the strategy
// and health checkers that are Validators: a bad one fails with an error
// wrapping ErrInvalid before the app's lock is taken or a release recorded.
func (d *Deployer) Deploy(ctx context.Context, req Request) (*Result, error) {
	return d.deployAs(ctx, "deploy", req)
}

// deployAs is Deploy; what ("deploy", "rollback") names it in the log.
func (d *Deployer) deployAs(ctx context.Context, what string, req Request) (*Result, error) {
	res, err := d.run(ctx, req)
	d.logOutcome(what, res)
	return res, err
}

// run validates req, takes the app's lock and deploys.
func (d *Deployer) run(ctx context.Context, req Request) (*Result, error) {
	res := &Result{App: req.Spec.App, Version: req.Spec.Version, Started: d.now(), Counts: map[EventType]int{}}
	fail := d.failer(res)
	if len(req.Groups) > 0 && req.Spec.App == "" {
		req.Spec = req.Groups[0].Spec
		res.App, res.Version = req.Spec.App, req.Spec.Version
	}
	strat := req.Strategy
	if strat == nil {
		strat = d.Strategy
	}
	if err := d.validate(req, strat); err != nil { // before the lock and the release record
		return fail(err)
	}
	res.Strategy = strat.Name()
	unlock, err := d.acquire(ctx, req.Spec.App)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	if len(req.Groups) > 0 {
		return d.deployGroups(ctx, req, strat, res)
	}
	return d.deploy(ctx, req, strat, res)
}

// logOutcome logs the outcome of a finished deploy.
func (d *Deployer) logOutcome(what string, res *Result) {
	log := d.logger().With("app", res.App, "release", res.Release, "version", res.Version, "strategy", res.Strategy, "took", res.Duration().Round(time.Millisecond))
	switch res.Status {
	case StatusSucceeded:
		log.Info(what+" succeeded", "machines", len(res.Machines))
	case StatusRolledBack:
		log.Warn(what+" failed; the previous version was restored", errArgs(res.Err)...)
	default:
		log.Warn(what+" failed", errArgs(res.Err)...)
	}
}

// errArgs are the log's key-value pairs for err: its machine and phase when
// it is a PhaseError, and the error.
func errArgs(err error) []any {
	var args []any
	if pe := (*PhaseError)(nil); errors.As(err, &pe) {
		if pe.Machine != "" {
			args = append(args, "machine", pe.Machine)
		}
		args = append(args, "phase", pe.Phase)
	}
	return append(args, "error", err)
}

func (d *Deployer) deploy(ctx context.Context, req Request, strat Strategy, res *Result) (*Result, error) {
	fail := d.failer(res)

	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = WithTimeout(ctx, d.Clock, d.Timeout)
		defer cancel()
	}
	log := d.logger().With("app", req.Spec.App)

	old, err := d.Backend.List(ctx, req.Spec.App)
	if err != nil {
		return fail(phaseErr(nil, "list", err))
	}
	old = appMachines(old)
	spec := req.Spec
	count := req.Count
	if count <= 0 {
		count = max(len(old), 1)
	}
	if d.Store != nil {
		rel, err := d.Store.Create(ctx, Release{
			App: spec.App, Status: ReleaseRunning, Strategy: strat.Name(), Description: req.Description,
			User: req.User, Image: spec.Image, Started: res.Started, Spec: spec, Count: count, Config: req.Config,
		})
		if err != nil {
			return fail(phaseErr(nil, "release history", err))
		}
		res.Release = rel.Version
		log = log.With("release", rel.Version)
		spec.Version = "v" + strconv.Itoa(rel.Version)
		defer d.finishRelease(context.WithoutCancel(ctx), rel, res)
	}
	if spec.Version == "" {
		spec.Version = nextVersion(old)
	}
	spec = labelled(spec, "")
	res.Version = spec.Version
	if len(old) > 0 {
		res.FromVersion = old[0].Spec().Version
	}
	var routes map[string]int
	if len(old) > 0 {
		routes = d.targets()
	}
	hc := req.Health
	if hc == nil {
		hc = d.groupHealth(spec)
	}
	r := d.newRollout(spec, count, old, hc, routes, d.counted(res, log))
	r.logger = log
	r.WaitTimeout = waitTimeout(req.WaitTimeout, d.WaitTimeout)

	from := "first deploy"
	if res.FromVersion != "" {
		from = "from=" + res.FromVersion
	}
	r.Emit(Event{Type: DeployStarted, Version: spec.Version, Message: fmt.Sprintf("strategy=%s machines=%d %s", res.Strategy, count, from)})
	if len(req.ReleaseCommand) > 0 {
		if err := d.runReleaseCommand(ctx, r, req.ReleaseCommand, req.ReleaseCommandTimeout); err != nil {
			r.Emit(Event{Type: DeployFailed, Version: spec.Version, Err: err})
			return fail(err)
		}
	}
	err = strat.Deploy(ctx, r)
	if err == nil {
		err = r.checkAlive(ctx)
	}
	res.Downtime = r.downtime
	if err == nil {
		res.Status = StatusSucceeded
		res.Machines = ids(r.createdAlive())
		r.Emit(Event{Type: DeploySucceeded, Version: spec.Version})
		res.Finished = d.now()
		return res, nil
	}

	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = &cancelledError{op: "deploy", cause: context.Cause(ctx), err: ctx.Err()}
	}
	res.Status = StatusFailed
	r.Emit(Event{Type: DeployFailed, Version: spec.Version, Err: err})
	rolledBack, uerr := d.undo(context.WithoutCancel(ctx), r)
	if rolledBack {
		res.Status = StatusRolledBack
		r.Emit(Event{Type: DeployRolledBack, Version: res.FromVersion, Message: "previous version restored", Err: err})
	}
	if uerr != nil {
		err = errors.Join(err, fmt.Errorf("cleanup: %w", uerr))
	}
	serving, _ := d.Backend.List(context.WithoutCancel(ctx), spec.App)
	res.Machines = ids(appMachines(serving))
	res.Err, res.Finished = err, d.now()
	return res, err
}

// finishRelease records the outcome res of the deploy of rel, as Store.Create
// returned it, in the release history.
func (d *Deployer) finishRelease(ctx context.Context, rel Release, res *Result) {
	rel.Finished = res.Finished
	rel.Spec.Version = res.Version
	switch res.Status {
	case StatusSucceeded:
		rel.Status, rel.Stable = ReleaseComplete, true
	case StatusRolledBack:
		rel.Status = ReleaseRolledBack
	default:
		rel.Status = ReleaseFailed
	}
	if errors.Is(res.Err, context.Canceled) {
		rel.Status = ReleaseInterrupted // the caller stopped it; what it created was removed
	}
	if res.Err != nil {
		rel.Reason = res.Err.Error()
	}
	if err := d.Store.Update(ctx, rel); err != nil {
		d.logger().Error("release history: cannot finish the release; it stays running", "app", res.App, "release", res.Release, "status", rel.Status, "error", err)
	}
}

func (d *Deployer) undo(ctx context.Context, r *Rollout) (rolledBack bool, err error) {
	ctx, cancel := WithTimeout(ctx, r.Clock(), r.undoTimeout())
	defer cancel()
	moved := r.trafficMoved()
	created := r.createdAlive()
	alive := r.oldAlive()
	defer func() {
		if err != nil {
			r.logger.Error("undo did not complete: machines of the deploy may remain, or the previous version serve on fewer machines", "error", err)
		}
	}()

	if moved && d.NoAutoRollback {
		r.logger.Info("undo: traffic had moved; keeping the machines that serve (NoAutoRollback), removing the new machines that never took traffic")
		// Keep what serves; remove only new machines that never took traffic.
		routes := r.currentRoutes()
		var idle []Machine
		for _, m := range created {
			if routes[m.Addr()] == 0 {
				idle = append(idle, m)
			}
		}
		return false, r.Retire(ctx, idle...)
	}

	var errs []error
	// Only old machines that still run can serve again; one that stopped (an
	// interrupted deploy may have stopped several at once) is replaced.
	var keep, stopped []Machine
	for _, m := range alive {
		if m.State() == StateStarted {
			keep = append(keep, m)
		} else {
			stopped = append(stopped, m)
		}
	}
	alive = keep
	if moved {
		r.logger.Info("undo: traffic had moved; restoring the previous version", "created", len(created), "old_running", len(keep), "old_stopped", len(stopped))
	} else {
		r.logger.Info("undo: traffic had not moved; removing the new machines", "created", len(created))
	}
	want, spec := len(r.Old), MachineSpec{}
	if len(r.Old) > 0 {
		spec = r.Old[0].Spec()
	}
	if r.restore != nil { // recovering: the previous release says what to restore
		want, spec = r.restore.Count, r.restore.Spec
	}
	if missing := want - len(alive); missing > 0 {
		// The old version lost machines: launch replacements before removing the new ones.
		for range missing {
			m, err := r.Launch(ctx, spec)
			if err == nil {
				if err = r.WaitHealthy(ctx, m); err != nil {
					errs = append(errs, r.Retire(ctx, m))
				}
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			keep = append(keep, m)
		}
	}
	next := map[string]int{}
	for _, m := range keep {
		next[m.Addr()] = 1
	}
	if len(next) == 0 && want > 0 {
		// Nothing of the previous version runs: keep whatever new machines serve
		// rather than leave the app with none.
		errs = append(errs, errors.New("no machine of the previous version could be restored; new machines that serve are kept"))
		routes := r.currentRoutes()
		for _, m := range created {
			if routes[m.Addr()] > 0 {
				keep = append(keep, m)
			}
		}
	} else if err := r.routeAddrs(ctx, func(map[string]int) map[string]int { return next }); err != nil {
		errs = append(errs, err)
	}
	kept := make(map[string]bool, len(keep))
	for _, m := range keep {
		kept[m.ID()] = true
	}
	drop := stopped
	for _, m := range created {
		if !kept[m.ID()] {
			drop = append(drop, m)
		}
	}
	if len(drop) > 0 {
		errs = append(errs, r.Retire(ctx, drop...)) // together: they leave traffic together
	}
	return moved, errors.Join(errs...)
}

func (r *Rollout) undoTimeout() time.Duration { return r.WaitTimeout + time.Minute }

// event logs e and passes it to OnEvent. The events that start a deploy and
// its release command are logged at Info, the others (each machine's steps,
// the outcome, which Deploy logs itself) at Debug.
func (d *Deployer) event(log hclog.Logger, e Event) {
	var args []any
	if e.Machine != "" {
		args = append(args, "machine", e.Machine)
	}
	args = append(args, "version", e.Version)
	if e.Type == MachineRouted {
		args = append(args, "weight", e.Weight)
	}
	if e.Message != "" {
		args = append(args, "detail", e.Message)
	}
	if e.Err != nil {
		args = append(args, "error", e.Err)
	}
	msg := strings.ReplaceAll(string(e.Type), "_", " ")
	switch e.Type {
	case DeployStarted, ReleaseCommand, ReleaseCommandEnd:
		log.Info(msg, args...)
	default:
		log.Debug(msg, args...)
	}
	if d.OnEvent != nil {
		d.OnEvent(e)
	}
}

func validateSpec(s MachineSpec) error {
	switch {
	case s.App == "":
		return fmt.Errorf("spec: %w: app is empty", ErrInvalid)
	case s.Image == "":
		return fmt.Errorf("spec: %w: image is empty", ErrInvalid)
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("spec: %w: port %d out of range", ErrInvalid, s.Port)
	case s.Protocol != "" && s.Protocol != ProtocolHTTP && s.Protocol != ProtocolTCP:
		return fmt.Errorf("spec: %w: protocol %q: want %q or %q", ErrInvalid, s.Protocol, ProtocolHTTP, ProtocolTCP)
	}
	if err := s.Restart.Validate(); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

// appMachines drops machines that are not app machines (release commands) or are gone.
func appMachines(ms []Machine) []Machine {
	out := ms[:0:0]
	for _, m := range ms {
		if role := m.Spec().Labels[LabelRole]; role != "" && role != "app" {
			continue
		}
		if s := m.State(); s == StateDestroyed {
			continue
		}
		out = append(out, m)
	}
	return out
}

// nextVersion returns "v<N+1>" where vN is the highest version among ms.
func nextVersion(ms []Machine) string {
	n := 0
	for _, m := range ms {
		if v, err := strconv.Atoi(strings.TrimPrefix(m.Spec().Version, "v")); err == nil && v > n {
			n = v
		}
	}
	return "v" + strconv.Itoa(n+1)
}

func withLabels(base, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func ids(ms []Machine) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID())
	}
	sort.Strings(out)
	return out
}

// counted returns the event sink of the deploy (or scale, or recovery) of
// res: one event at a time, it counts the event in res.Counts, logs it to
// log and passes it to OnEvent.
func (d *Deployer) counted(res *Result, log hclog.Logger) func(Event) {
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		res.Counts[e.Type]++
		d.event(log, e)
	}
}

// cancelledError is the error of a deploy (or a scale: op) whose context
// ended: it says why (the context's cause) rather than which machine noticed
// first.
type cancelledError struct {
	op         string // "deploy", "scale"
	cause, err error
}

func (e *cancelledError) Error() string {
	what := e.op + " cancelled"
	if errors.Is(e.err, context.DeadlineExceeded) {
		what = e.op + " timed out"
	}
	if e.cause == nil || e.cause == e.err {
		return what
	}
	return what + ": " + e.cause.Error()
}

func (e *cancelledError) Unwrap() []error { return []error{e.err, e.cause} }
