package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/backend/retry"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/immediate"
	"github.com/cutover/deploy/strategy/rolling"
)

// cell is one fault injected into a deploy of v2 over 3 machines of v1.
type cell struct {
	name    string
	setup   func(e *testenv.Env)       // inject faults (and tune the Deployer) before the deploy
	trigger func(ev deploy.Event) bool // when set, act at the first matching event
	act     func(e *testenv.Env, ev deploy.Event, cancel context.CancelFunc)
	release []string // a release command for the deploy
	want    error    // nil: the deploy succeeds; else errors.Is(err, want)
	// status is ReleaseInterrupted when the failed deploy's release must say so;
	// empty means failed or rolled_back.
	status deploy.ReleaseStatus
	// crash: requests already on the machine when it crashed may fail; they are counted.
	crash bool
	// healthBlind: the fault only fails health checks, which immediate does not wait for.
	healthBlind bool
}

var errQuota = errors.New("quota exceeded")

// crashAfterTraffic kills the first new machine once the proxy routes to it,
// at the next event of the deploy, so the deploy is still running.
func crashAfterTraffic() cell {
	var env *testenv.Env
	var victim deploy.Event
	return cell{
		name:  "crashes after it took traffic",
		crash: true,
		want:  deploy.ErrExited,
		setup: func(e *testenv.Env) { env = e },
		trigger: func(ev deploy.Event) bool {
			if victim.Machine == "" && ev.Type == deploy.MachineRouted && ev.Version == "v2" && ev.Weight > 0 {
				victim = ev
			}
			_, routed := env.Proxy.Targets()[victim.Addr]
			return victim.Machine != "" && routed
		},
		act: func(e *testenv.Env, _ deploy.Event, _ context.CancelFunc) {
			if m, err := e.Backend.Machine(victim.Machine); err == nil {
				m.Kill()
			}
		},
	}
}

func cancelAt(t deploy.EventType, version string) cell {
	c := cell{
		name:    fmt.Sprintf("ctx cancelled at %s of %s", t, version),
		trigger: func(ev deploy.Event) bool { return ev.Type == t && ev.Version == version },
		act:     func(_ *testenv.Env, _ deploy.Event, cancel context.CancelFunc) { cancel() },
		want:    context.Canceled, status: deploy.ReleaseInterrupted,
	}
	if t == deploy.ReleaseCommand {
		c.release = []string{"migrate", "hang"} // still running when cancelled
	}
	return c
}

func faultCells() []cell {
	cells := []cell{
		{name: "fails to start", setup: func(e *testenv.Env) { e.Backend.Inject(mem.Fault{Image: "v2", FailStart: true}) },
			want: mem.ErrInjected},
		{name: "crashes on boot", setup: func(e *testenv.Env) {
			e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: time.Hour, CrashAfter: 30 * time.Millisecond})
		}, want: deploy.ErrExited},
		{name: "never healthy", setup: func(e *testenv.Env) {
			e.Backend.Inject(mem.Fault{Image: "v2", Unhealthy: true})
			e.Deployer.WaitTimeout = 300 * time.Millisecond
		}, want: deploy.ErrUnhealthy, healthBlind: true},
		crashAfterTraffic(),
		{name: "slow shutdown past its stop timeout", setup: func(e *testenv.Env) {
			e.Backend.Inject(mem.Fault{Image: "v1", IgnoreStopFor: time.Hour})
		}},
		{name: "permanent backend error on create", setup: func(e *testenv.Env) {
			e.Backend.Inject(mem.Fault{Image: "v2", Op: mem.OpCreate, Err: errQuota})
		}, want: errQuota},
		{name: "failing release command", release: []string{"migrate", "fail"}, want: deploy.ErrAborted},
		cancelAt(deploy.ReleaseCommand, "v2"),
		cancelAt(deploy.MachineCreated, "v2"),
		cancelAt(deploy.MachineStarted, "v2"),
		cancelAt(deploy.MachineRouted, "v2"),
		cancelAt(deploy.MachineDraining, "v1"),
	}
	for _, op := range []mem.Op{mem.OpCreate, mem.OpStart, mem.OpStop, mem.OpDestroy} {
		image := "v2" // create and start act on new machines, stop and destroy on old ones
		if op == mem.OpStop || op == mem.OpDestroy {
			image = "v1"
		}
		cells = append(cells, cell{name: "transient backend error on " + string(op), setup: func(e *testenv.Env) {
			e.Backend.Inject(mem.Fault{Image: image, Op: op, Transient: true, Times: 2})
		}})
	}
	return cells
}

// loadedAnalysis is the canary analysis of the soak and the fault matrix: the
// error rate is judged as usual, but latency only beyond a 10s slack. Their
// bakes are 100-200ms long on a machine loaded by -race and parallel packages,
// where a few requests' latency is noise; strategy/canary tests the latency
// verdict itself.
var loadedAnalysis = canary.Analysis{LatencySlack: 10 * time.Second}

var matrixStrategies = []deploy.Strategy{
	rolling.Strategy{},
	bluegreen.Strategy{},
	canary.Strategy{Steps: []canary.Step{{Percent: 10, Machines: 1}, {Percent: 50}}, Bake: 200 * time.Millisecond, Analysis: loadedAnalysis},
	immediate.Strategy{},
}

type matrixRow struct {
	cell, strategy, outcome string
	requests, failed        int64
}

// TestFaultMatrix runs every strategy against every injected fault under
// continuous load through the proxy, and checks the invariants of DESIGN.md in
// each cell. The whole matrix is logged as a table.
func TestFaultMatrix(t *testing.T) {
	var rows []matrixRow
	for _, s := range matrixStrategies {
		for _, c := range faultCells() {
			t.Run(s.Name()+"/"+c.name, func(t *testing.T) {
				rows = append(rows, runCell(t, s, c))
			})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s %-40s %-14s %9s %7s\n", "strategy", "cell", "outcome", "requests", "failed")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-12s %-40s %-14s %9d %7d\n", r.strategy, r.cell, r.outcome, r.requests, r.failed)
	}
	t.Log(b.String())
}

func runCell(t *testing.T, s deploy.Strategy, c cell) matrixRow {
	e := testenv.New(t)
	e.StopTimeout = 300 * time.Millisecond
	store := release.NewMemory()
	e.Deployer.Store = store
	e.Deployer.WaitTimeout = 2 * time.Second
	e.Backend.RegisterCommand("migrate", func(ctx context.Context, args []string, _ map[string]string, out *mem.Output) int {
		fmt.Fprintln(out, "migrating", args)
		switch args[0] {
		case "fail":
			return 1
		case "hang":
			<-ctx.Done()
			return 143
		}
		return 0
	})
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	e.Deployer.Backend = retry.Wrap(e.Backend, retry.Options{InitialInterval: time.Millisecond})
	if c.healthBlind && s.Name() == "immediate" {
		c.want = nil // it routes once the port listens, by design
	}
	if c.setup != nil {
		c.setup(e)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	healthy := map[string]bool{}
	var violations []string
	fired := false
	e.OnEvent(func(ev deploy.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Type {
		case deploy.MachineHealthy:
			healthy[ev.Machine] = true
		case deploy.MachineRouted:
			if ev.Version == "v2" && ev.Weight > 0 && !healthy[ev.Machine] && s.Name() != "immediate" {
				violations = append(violations, "routed before healthy: "+ev.Machine)
			}
		}
		if c.trigger != nil && !fired && c.trigger(ev) {
			fired = true
			c.act(e, ev, cancel)
		}
	})
	run := e.Load(t)
	res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v2"), Count: 3, Strategy: s, ReleaseCommand: c.release})
	e.OnEvent(nil)
	after := run.Mark()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, run.WaitEpoch(wctx, after, 150))
	lr := run.Stop()

	row := matrixRow{cell: c.name, strategy: s.Name(), requests: lr.Requests, failed: lr.Failed, outcome: string(res.Status)}
	assert.Empty(t, violations, "traffic only reaches machines that passed their checks")
	rel, gerr := store.Get(context.Background(), testenv.App, 2)
	require.NoError(t, gerr)
	if c.want == nil {
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"v2": 3}, e.Versions(t))
		assert.Equal(t, map[string]int{"v2": 3}, e.RoutedVersions(t))
		assert.Equal(t, deploy.ReleaseComplete, rel.Status)
	} else {
		require.Error(t, err)
		assert.ErrorIs(t, err, c.want)
		assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t), "the previous version serves; no machine of v2 remains")
		assert.Equal(t, map[string]int{"v1": 3}, e.RoutedVersions(t))
		if c.status == deploy.ReleaseInterrupted {
			assert.Equal(t, deploy.ReleaseInterrupted, rel.Status)
		} else {
			assert.Contains(t, []deploy.ReleaseStatus{deploy.ReleaseFailed, deploy.ReleaseRolledBack}, rel.Status)
		}
		assert.NotEmpty(t, rel.Reason, "the release record says why")
		assert.False(t, rel.Stable)
	}
	assert.Zero(t, run.Epoch(after)["(failed)"], "no failure once the deploy returned")
	switch {
	case s.Name() == "immediate":
		// Its downtime window is allowed; counted in the table.
	case c.crash:
		assert.Less(t, lr.Failed, int64(100), "only requests on the machine when it crashed fail: %v", lr.Errors)
	default:
		assert.Zero(t, lr.Failed, "zero failed requests: %v", lr.Errors)
	}
	return row
}
