package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
	"github.com/hashicorp/go-hclog"
)

// daemon is the serve process's app: it implements control.App.
type daemon struct {
	app    string
	plan   config.Plan // from the fly.toml the daemon started with
	kit    *backendKit
	px     *proxy.Proxy
	mon    *deploy.Monitor
	dep    *deploy.Deployer
	store  *release.File
	health deploy.HealthChecker
	logs   *logRing
	mlogs  *machineLogs // the machines' output
	info   control.Info

	mu     sync.Mutex
	op     *control.Operation
	cancel context.CancelCauseFunc // ends the running deploy or rollback
	gate   *bluegreen.Gate
	emit   func(deploy.Event) // the running operation's watcher
	user   string             // who asked for the running rollback

	// recovered is closed when the recovery serve starts with has ended;
	// operations asked for before then wait for it. Nil: nothing to wait for.
	recovered chan struct{}
}

var _ control.App = (*daemon)(nil)

func newDaemon(app string, plan config.Plan, kit *backendKit, px *proxy.Proxy, store *release.File, logs *logRing, log hclog.Logger) *daemon {
	d := &daemon{app: app, plan: plan, kit: kit, px: px, store: store, logs: logs, health: plan.Health(), mlogs: newMachineLogs(kit.backend, app)}
	d.mon = &deploy.Monitor{
		Router: px, Backend: kit.backend, App: app, Health: d.health,
		OnEvent: func(e deploy.Event) { d.logs.printf("health: %s", describe(e)) },
	}
	d.dep = &deploy.Deployer{
		Backend:     kit.backend,
		Router:      d.mon,
		Health:      d.health,
		Store:       store,
		FromRelease: d.fromRelease,
		WaitTimeout: plan.WaitTimeout,
		Logger:      log,
		OnEvent:     d.onEvent,
	}
	// A routed machine gone for good (its restart policy, from [[restart]],
	// gave up) is replaced by one of its spec, never during a deploy.
	d.mon.Replace, d.mon.Lock, d.mon.ReplaceTimeout = true, d.dep.Lock, plan.WaitTimeout
	return d
}

// fromRelease rebuilds a release's deploy for a rollback, recording who asked.
func (d *daemon) fromRelease(rel deploy.Release) (deploy.Request, error) {
	req, err := config.FromRelease(rel)
	d.mu.Lock()
	req.User = d.user
	d.mu.Unlock()
	return req, err
}

// onEvent logs every deploy event and passes it to the operation's watcher.
func (d *daemon) onEvent(e deploy.Event) {
	d.logs.printf("deploy: %s", describe(e))
	if e.Type == deploy.MachineStarted {
		d.mlogs.machineStarted() // follow its output from its start
	}
	d.mu.Lock()
	emit := d.emit
	if d.op != nil {
		switch e.Type {
		case deploy.DeployStarted:
			d.op.Version = e.Version
		case deploy.DeployHeld:
			d.op.Held = true
		case deploy.MachineRouted, deploy.DeployFailed:
			d.op.Held = false
		}
	}
	d.mu.Unlock()
	if emit != nil {
		emit(e)
	}
}

// operate runs fn as the daemon's one operation, under a context that Abort
// cancels.
func (d *daemon) operate(ctx context.Context, kind, strat string, gate *bluegreen.Gate, emit func(deploy.Event), fn func(context.Context) (*deploy.Result, error)) (*deploy.Result, error) {
	if err := d.waitRecovered(ctx, kind); err != nil {
		return nil, err
	}
	end, err := d.begin(kind, strat, gate, emit)
	if err != nil {
		return nil, err
	}
	defer end()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	d.cancel = cancel
	d.mu.Unlock()
	return fn(ctx)
}

// waitRecovered waits until the recovery the daemon started with has ended,
// so a deploy asked for right after a (re)start runs after it instead of
// failing.
func (d *daemon) waitRecovered(ctx context.Context, kind string) error {
	if d.recovered == nil {
		return nil
	}
	select {
	case <-d.recovered:
		return nil
	default:
	}
	d.logs.printf("%s: waiting for the recovery of %s after the restart to end", kind, d.app)
	select {
	case <-d.recovered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w: the daemon was still recovering %s after a restart (cutover status, cutover logs): %w",
			kind, deploy.ErrDeployInProgress, d.app, context.Cause(ctx))
	}
}

// abortedError is why an operation stopped by `cutover abort` ended.
type abortedError struct{}

func (abortedError) Error() string {
	return "aborted by the user (cutover abort, or Ctrl-C on cutover deploy)"
}
func (abortedError) Unwrap() error { return deploy.ErrAborted }

// begin makes the daemon's one operation, or says which one runs.
func (d *daemon) begin(kind, strat string, gate *bluegreen.Gate, emit func(deploy.Event)) (func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.op != nil {
		if d.op.Kind == "recover" {
			return nil, fmt.Errorf("%w: the daemon is recovering %s after a restart (since %s): wait for it (cutover status, cutover logs)",
				deploy.ErrDeployInProgress, d.app, d.op.Started.Format("15:04:05"))
		}
		return nil, fmt.Errorf("%w: a %s of %s (%s) started at %s is running: wait for it (cutover status), or stop it with cutover abort",
			deploy.ErrDeployInProgress, d.op.Kind, d.app, orDash(d.op.Version), d.op.Started.Format("15:04:05"))
	}
	d.op = &control.Operation{Kind: kind, Strategy: strat, Started: time.Now()}
	d.gate, d.emit = gate, emit
	return func() {
		d.mu.Lock()
		d.op, d.gate, d.emit, d.cancel = nil, nil, nil, nil
		d.mu.Unlock()
	}, nil
}

// running names the running operation's kind, or "".
func (d *daemon) running() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.op == nil {
		return ""
	}
	return d.op.Kind
}

// Deploy deploys the plan the client sent (or the daemon's), with its overrides.
func (d *daemon) Deploy(ctx context.Context, args control.DeployArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	plan := d.plan
	if len(args.Config) > 0 {
		plan = config.Plan{}
		if err := json.Unmarshal(args.Config, &plan); err != nil {
			return nil, fmt.Errorf("%w: bad deploy configuration: %v", deploy.ErrInvalid, err)
		}
		if plan.Spec.App != d.app {
			return nil, fmt.Errorf("%w: the configuration is for app %q, but this daemon runs %q", deploy.ErrInvalid, plan.Spec.App, d.app)
		}
	}
	if args.Image != "" {
		plan.SetImage(args.Image)
	}
	if plan.Spec.Image == "" {
		return nil, fmt.Errorf("%w: no image: pass --image IMAGE or set [build] image in fly.toml", deploy.ErrInvalid)
	}
	if args.Strategy != "" {
		plan.StrategyName = args.Strategy
	}
	if args.WaitTimeout > 0 {
		plan.WaitTimeout = args.WaitTimeout
	}
	if err := d.px.SetConcurrency(proxyConcurrency(plan.Concurrency)); err != nil {
		return nil, fmt.Errorf("%w: concurrency: %v", deploy.ErrInvalid, err)
	}
	req, err := plan.Request()
	if err != nil {
		return nil, err
	}
	var gate *bluegreen.Gate
	if args.Hold {
		if req.Strategy.Name() != "bluegreen" {
			return nil, fmt.Errorf("%w: --hold needs the bluegreen strategy (pass --strategy bluegreen)", deploy.ErrInvalid)
		}
		gate = bluegreen.NewGate()
		req.Strategy = bluegreen.Strategy{Gate: gate, HoldTimeout: args.HoldTimeout}
	}
	if req.Strategy.Name() == "canary" && (len(args.CanarySteps) > 0 || args.CanaryStepDuration > 0) {
		s := canary.Strategy{Bake: args.CanaryStepDuration}
		for i, p := range args.CanarySteps {
			st := canary.Step{Percent: p}
			if i == 0 {
				st.Machines = 1
			}
			s.Steps = append(s.Steps, st)
		}
		req.Strategy = s
	}
	if err := d.kit.prepare(ctx, plan.Spec.Image, plan.ReleaseCommand); err != nil {
		return nil, err
	}
	if d.kit.adapt != nil {
		d.kit.adapt(&req)
	}
	req.Count = args.Count
	if args.Count > 0 {
		for i := range req.Groups { // --count sizes every process group
			req.Groups[i].Count = args.Count
		}
	}
	req.User = args.User
	req.Description = args.Description
	if req.Description == "" {
		req.Description = "deploy image " + plan.Spec.Image
	}
	return d.operate(ctx, "deploy", req.Strategy.Name(), gate, emit, func(ctx context.Context) (*deploy.Result, error) {
		d.dep.NoAutoRollback = plan.NoAutoRollback // experimental.auto_rollback = false; one operation runs at a time
		return d.dep.Deploy(ctx, req)
	})
}

// RollbackStarted is the event a rollback starts with: its Message says to
// which release and with which strategy.
const RollbackStarted deploy.EventType = "rollback_started"

// Rollback redeploys a stable release.
func (d *daemon) Rollback(ctx context.Context, args control.RollbackArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	version := args.Version
	rels, err := d.store.List(ctx, d.app)
	if err != nil {
		return nil, err
	}
	stable, target := 0, ""
	for _, r := range rels { // newest first
		if version > 0 && r.Version != version || !r.Stable {
			continue
		}
		if version == 0 && stable == 0 {
			stable = r.Version // the current one: skip it
			continue
		}
		var releaseCmd []string
		strat := r.Strategy
		if req, err := config.FromRelease(r); err == nil {
			releaseCmd = req.ReleaseCommand
			if req.Strategy != nil {
				strat = req.Strategy.Name()
			}
		}
		if err := d.kit.prepare(ctx, r.Image, releaseCmd); err != nil {
			return nil, err
		}
		if d.kit.adapt != nil { // the release's specs were adapted when deployed; register its workers' commands
			req := deploy.Request{Spec: r.Spec}
			for _, g := range r.Groups {
				req.Groups = append(req.Groups, deploy.Group{Spec: g.Spec})
			}
			d.kit.adapt(&req)
		}
		target = fmt.Sprintf("to v%d (image %s, %d machines) with the strategy it was deployed with, %s", r.Version, r.Image, r.Count, orDash(strat))
		break
	}
	return d.operate(ctx, "rollback", "", nil, emit, func(ctx context.Context) (*deploy.Result, error) {
		d.mu.Lock()
		d.user = args.User
		d.mu.Unlock()
		if target != "" {
			d.onEvent(deploy.Event{Type: RollbackStarted, App: d.app, Time: time.Now(), Message: target})
		}
		return d.dep.Rollback(ctx, d.app, version)
	})
}

// Scale runs args.Count (or args.Groups) machines of the current release,
// as fly scale count does: machines are added (healthy before they take
// traffic) or drained and removed; no release is made (the current one
// records the count).
func (d *daemon) Scale(ctx context.Context, args control.ScaleArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	counts := args.Groups
	if len(counts) == 0 {
		counts = map[string]int{"": args.Count}
	}
	for g, n := range counts {
		if n < 1 {
			what := "scale"
			if g != "" {
				what += " " + g
			}
			return nil, fmt.Errorf("%w: %s to %d: want at least 1 machine (cutover destroy removes them all)", deploy.ErrInvalid, what, n)
		}
	}
	rels, err := d.store.List(ctx, d.app)
	if err != nil {
		return nil, err
	}
	var cur *deploy.Release
	for i := range rels {
		if rels[i].Stable {
			cur = &rels[i]
			break
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("%w: %s has no release to scale: deploy first (cutover deploy --count N)", deploy.ErrNotFound, d.app)
	}
	if err := d.kit.prepare(ctx, cur.Image, nil); err != nil { // its image still runs here (Docker: it exists)
		return nil, err
	}
	return d.operate(ctx, "scale", "", nil, emit, func(ctx context.Context) (*deploy.Result, error) {
		d.logs.printf("scale: %s asks for %s", orDash(args.User), scaleWords(counts))
		return d.dep.ScaleGroups(ctx, d.app, counts)
	})
}

// scaleWords says a scale's counts, such as "3 machines" or "web=2 worker=1".
func scaleWords(counts map[string]int) string {
	if n, ok := counts[""]; ok && len(counts) == 1 {
		return fmt.Sprintf("%d machines", n)
	}
	var parts []string
	for g, n := range counts {
		parts = append(parts, fmt.Sprintf("%s=%d", orDash(g), n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Destroy takes every machine of the app out of traffic, then stops and
// removes it. The release history is kept.
func (d *daemon) Destroy(ctx context.Context) ([]string, error) {
	var ids []string
	_, err := d.operate(ctx, "destroy", "", nil, nil, func(ctx context.Context) (*deploy.Result, error) {
		if err := d.mon.SetTargets(ctx, map[string]int{}); err != nil {
			return nil, fmt.Errorf("take the machines out of traffic: %w", err)
		}
		ms, err := d.kit.backend.List(ctx, d.app)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, m := range ms {
			if err := m.Stop(ctx); err != nil && !errors.Is(err, deploy.ErrNotFound) {
				errs = append(errs, fmt.Errorf("machine %s: stop: %w", m.ID(), err))
			}
			if err := m.Destroy(ctx); err != nil && !errors.Is(err, deploy.ErrNotFound) {
				errs = append(errs, fmt.Errorf("machine %s: destroy: %w", m.ID(), err))
				continue
			}
			ids = append(ids, m.ID())
			d.logs.printf("destroy: machine %s (%s) removed", m.ID(), m.Spec().Version)
		}
		return nil, errors.Join(errs...)
	})
	return ids, err
}

func (d *daemon) Releases(ctx context.Context) ([]deploy.Release, error) {
	return d.store.List(ctx, d.app)
}

func (d *daemon) Status(ctx context.Context) (control.Status, error) {
	ms, err := d.dep.Status(ctx, d.app)
	if err != nil {
		return control.Status{}, fmt.Errorf("list machines: %w", err)
	}
	st := control.Status{Info: d.info, Targets: d.px.Targets(), Down: d.mon.Down(), Stats: d.stats()}
	down := map[string]bool{}
	for _, a := range st.Down {
		down[a] = true
	}
	for _, m := range ms {
		cm := control.FromMachineStatus(m)
		cm.Down = down[m.Addr]
		st.Machines = append(st.Machines, cm)
	}
	sort.Strings(st.Down)
	d.mu.Lock()
	if d.op != nil {
		op := *d.op
		st.Operation = &op
	}
	d.mu.Unlock()
	return st, nil
}

func (d *daemon) stats() map[string]control.TargetStats {
	out := map[string]control.TargetStats{}
	for a, s := range d.px.Stats() {
		if s.Removed {
			continue // the current targets only
		}
		out[a] = control.TargetStats{
			Weight: s.Weight, InFlight: s.InFlight, Queued: s.Queued, Requests: s.Requests, Errors: s.Errors,
			P50MS: ms(s.Quantile(0.5)), P99MS: ms(s.Quantile(0.99)), ErrorRate: s.ErrorRate(),
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (d *daemon) decide(promote bool) error {
	d.mu.Lock()
	gate, cancel, kind, held := d.gate, d.cancel, "", false
	if d.op != nil {
		kind, held = d.op.Kind, d.op.Held
	}
	d.mu.Unlock()
	verb := "abort"
	if promote {
		verb = "promote"
	}
	if !promote && kind == "recover" {
		return fmt.Errorf("abort: %w: the daemon is recovering after a restart", control.ErrNotRunning)
	}
	if !promote && !held {
		if cancel == nil {
			return fmt.Errorf("abort: %w", control.ErrNotRunning)
		}
		cancel(abortedError{}) // the deploy rolls back as a cancelled one does
		d.logs.printf("deploy: abort given: cancelling the running %s", kind)
		return nil
	}
	if gate == nil {
		return fmt.Errorf("%s: %w: start one with `cutover deploy --strategy bluegreen --hold`", verb, control.ErrNotHeld)
	}
	var err error
	if promote {
		err = gate.Promote()
	} else {
		err = gate.Abort()
	}
	if errors.Is(err, bluegreen.ErrNotHeld) {
		return fmt.Errorf("%s: %w: a promote or abort was already given", verb, control.ErrNotHeld)
	}
	d.logs.printf("deploy: %s given", verb)
	return err
}

func (d *daemon) Promote(context.Context) error { return d.decide(true) }
func (d *daemon) Abort(context.Context) error   { return d.decide(false) }

// Logs sends the daemon's log and, for machines that keep output (Docker
// containers, mem workers), theirs: each source's lines as opts selects
// them (written since opts.Since, the last opts.Lines), with -f or without.
func (d *daemon) Logs(ctx context.Context, opts control.LogOptions, emit func(string)) error {
	kept, sub, unsub := d.logs.subscribe(opts)
	defer unsub()
	mkept, msub, munsub := d.mlogs.subscribe(ctx, opts)
	defer munsub()
	for _, l := range append(kept, mkept...) {
		emit(l)
	}
	if !opts.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-sub:
			emit(l)
		case l := <-msub:
			emit(l)
		}
	}
}

// watch runs the app's health monitor and follows its machines' output
// until ctx ends.
func (d *daemon) watch(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.mlogs.run(ctx) }()
	_ = d.mon.Run(ctx)
	wg.Wait()
}

// describe is an event on one line, for the log.
func describe(e deploy.Event) string {
	var b strings.Builder
	b.WriteString(string(e.Type))
	if e.Machine != "" {
		fmt.Fprintf(&b, " machine=%s", e.Machine)
	}
	if e.Version != "" {
		fmt.Fprintf(&b, " version=%s", e.Version)
	}
	if e.Type == deploy.MachineRouted {
		fmt.Fprintf(&b, " weight=%d", e.Weight)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " error=%q", e.Err.Error())
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// validStrategy checks a strategy name, saying what to do.
func validStrategy(name string, maxUnavailable float64) error {
	if !slices.Contains(strategy.Names, name) && name != "" {
		n := strategy.Names
		return usagef("unknown strategy %q: pass --strategy %s or %s", name, strings.Join(n[:len(n)-1], ", "), n[len(n)-1])
	}
	if _, err := strategy.ByName(name, strategy.Options{Rolling: rolling.Strategy{MaxUnavailable: maxUnavailable}}); err != nil {
		return usagef("%v", err)
	}
	return nil
}
