package deploy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/crash"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

// threeGroups is a request for web (x2) and api (x1), which both serve,
// and worker (x1), which does not; apiHealth checks the api group.
func threeGroups(e *testenv.Env, version string, s deploy.Strategy, apiHealth deploy.HealthChecker) deploy.Request {
	spec := func(group string, noService bool) deploy.MachineSpec {
		sp := e.Spec(version)
		sp.Version = ""
		sp.Labels = map[string]string{deploy.LabelGroup: group}
		if noService {
			sp.Cmd, sp.NoService = []string{"work"}, true
		}
		return sp
	}
	return deploy.Request{Strategy: s, Groups: []deploy.Group{
		{Name: "web", Spec: spec("web", false), Count: 2},
		{Name: "api", Spec: spec("api", false), Count: 1, Health: apiHealth},
		{Name: "worker", Spec: spec("worker", true), Count: 1},
	}}
}

func groupsEnv(t *testing.T) *testenv.Env {
	e := testenv.New(t)
	e.Deployer.Store = release.NewMemory()
	e.Backend.RegisterCommand("work", func(ctx context.Context, _ []string, _ map[string]string, _ *mem.Output) int {
		<-ctx.Done()
		return 0
	})
	return e
}

// routedGroups returns, per group, the versions the proxy routes to.
func routedGroups(t *testing.T, e *testenv.Env) map[string]string {
	t.Helper()
	ms, err := e.Backend.List(context.Background(), testenv.App)
	require.NoError(t, err)
	out := map[string]string{}
	targets := e.Proxy.Targets()
	for _, m := range ms {
		if targets[m.Addr()] > 0 {
			out[m.ID()] = m.Spec().Labels[deploy.LabelGroup] + "/" + m.Spec().Version
		}
	}
	assert.Len(t, targets, len(out), "every target is a machine of the app")
	return out
}

func countValues(m map[string]string) map[string]int {
	out := map[string]int{}
	for _, v := range m {
		out[v]++
	}
	return out
}

// Several serving groups share the router: each group's strategy moves only
// its own machines' traffic, whatever the strategy, under load.
func TestGroupsShareTheRouter(t *testing.T) {
	for _, s := range []deploy.Strategy{rolling.Strategy{}, bluegreen.Strategy{}, canary.Strategy{Steps: []canary.Step{{Percent: 50, Machines: 1, Bake: 100 * time.Millisecond}}}} {
		t.Run(s.Name(), func(t *testing.T) {
			e := groupsEnv(t)
			ctx := context.Background()
			_, err := e.Deployer.Deploy(ctx, threeGroups(e, "v1", rolling.Strategy{}, nil))
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"web/v1": 2, "api/v1": 1}, countValues(routedGroups(t, e)))

			run := e.Load(t)
			res, err := e.Deployer.Deploy(ctx, threeGroups(e, "v2", s, nil))
			require.NoError(t, err)
			assert.Len(t, res.Machines, 4)
			deploytest.OnlyVersion(t, run, "v2", 100)
			deploytest.AssertNoFailures(t, run.Stop())
			assert.Equal(t, map[string]int{"web/v2": 2, "api/v2": 1}, countValues(routedGroups(t, e)))
		})
	}
}

// When the second serving group fails its checks, both serving groups go
// back to the previous release; nothing fails meanwhile.
func TestGroupsSecondServingGroupFails(t *testing.T) {
	e := groupsEnv(t)
	ctx := context.Background()
	_, err := e.Deployer.Deploy(ctx, threeGroups(e, "v1", rolling.Strategy{}, nil))
	require.NoError(t, err)
	run := e.Load(t)
	e.Deployer.WaitTimeout = 2 * time.Second
	res, err := e.Deployer.Deploy(ctx, threeGroups(e, "v2", rolling.Strategy{}, health.HTTP{Path: "/fail", Interval: 20 * time.Millisecond}))
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.Contains(t, err.Error(), "group api")
	assert.Equal(t, deploy.StatusRolledBack, res.Status)
	deploytest.OnlyVersion(t, run, "v1", 100)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"web/v1": 2, "api/v1": 1}, countValues(routedGroups(t, e)))
	assert.Equal(t, map[string]int{"v1": 4}, e.Versions(t), "the worker too")

	// Dropping a group retires its machines once the others are up.
	req := threeGroups(e, "v3", rolling.Strategy{}, nil)
	req.Groups = req.Groups[:1]
	_, err = e.Deployer.Deploy(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"web/v3": 2}, countValues(routedGroups(t, e)))
	assert.Equal(t, map[string]int{"v3": 2}, e.Versions(t))
}

// A multi-group deploy whose process died is recovered group by group: each
// group goes back to the previous release (or, finished, is kept).
func TestGroupsRecover(t *testing.T) {
	cases := []struct {
		name   string
		at     func(deploy.Event) bool
		want   map[string]int
		status deploy.Status
	}{
		{"after the web group moved", func(ev deploy.Event) bool {
			return ev.Type == deploy.MachineDestroyed && ev.Version == "v1"
		}, map[string]int{"web/v1": 2, "api/v1": 1, "worker/v1": 1}, deploy.StatusRolledBack},
		{"as the first new machine is created", func(ev deploy.Event) bool {
			return ev.Type == deploy.MachineCreated && ev.Version == "v2"
		}, map[string]int{"web/v1": 2, "api/v1": 1, "worker/v1": 1}, deploy.StatusRolledBack},
		{"at the very end", func(ev deploy.Event) bool { return ev.Type == deploy.DeploySucceeded },
			map[string]int{"web/v2": 2, "api/v2": 1, "worker/v2": 1}, deploy.StatusSucceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := groupsEnv(t)
			store := e.Deployer.Store
			e.Deployer.LockTTL = 200 * time.Millisecond
			ctx := context.Background()
			_, err := e.Deployer.Deploy(ctx, threeGroups(e, "v1", rolling.Strategy{}, nil))
			require.NoError(t, err)
			run := e.Load(t)

			proc := &crash.Process{}
			dctx, cancel := context.WithCancel(ctx)
			d := &deploy.Deployer{
				Backend: proc.Backend(e.Backend), Router: proc.Router(e.Proxy), Store: proc.Store(store),
				Health: e.Deployer.Health, LockTTL: dyingLockTTL,
				OnEvent: func(ev deploy.Event) {
					if !proc.Dead() && c.at(ev) {
						proc.Die()
						cancel()
					}
				},
			}
			_, _ = d.Deploy(dctx, threeGroups(e, "v2", rolling.Strategy{}, nil))
			cancel()
			require.True(t, proc.Dead())

			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			defer rcancel()
			res, _, err := crash.Recover(rctx, e.Deployer, testenv.App)
			require.NoError(t, err)
			require.NotNil(t, res)
			assert.Equal(t, c.status, res.Status)
			ms, err := e.Backend.List(ctx, testenv.App)
			require.NoError(t, err)
			got := map[string]int{}
			for _, m := range ms {
				got[m.Spec().Labels[deploy.LabelGroup]+"/"+m.Spec().Version]++
			}
			assert.Equal(t, c.want, got, "no orphaned machine")
			routed := countValues(routedGroups(t, e))
			for k := range routed {
				assert.NotContains(t, k, "worker")
			}
			assert.Equal(t, c.want[`web/v1`]+c.want[`web/v2`]+c.want[`api/v1`]+c.want[`api/v2`], len(e.Proxy.Targets()))
			deploytest.AssertNoFailures(t, run.Stop())

			// And the app deploys again.
			_, err = e.Deployer.Deploy(ctx, threeGroups(e, "v3", rolling.Strategy{}, nil))
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"web/v3": 2, "api/v3": 1}, countValues(routedGroups(t, e)))
		})
	}
}
