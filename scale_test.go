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
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/rolling"
)

// routedCount returns how many machines the app runs and how many of them
// the proxy routes to, and checks that every target is one of them.
func routedCount(t *testing.T, e *testenv.Env) (machines, routed int) {
	t.Helper()
	ms, err := e.Backend.List(context.Background(), testenv.App)
	require.NoError(t, err)
	targets := e.Proxy.Targets()
	for _, m := range ms {
		if targets[m.Addr()] > 0 {
			routed++
		}
	}
	assert.Len(t, targets, routed, "every target is a machine of the app")
	return len(ms), routed
}

// Scale 2 -> 4 -> 1 under continuous mixed load through the proxy (machines
// that boot slowly): no request fails, no release is created, the current
// release records the count, every new machine passes its checks before it
// takes traffic, and the removed ones drain first.
func TestScaleUnderLoad(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.Backend.Inject(mem.Fault{ListenAfter: 300 * time.Millisecond}) // listens late, as real apps do
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	run := testenv.StartLoadWith(t, e.URL, deploytest.LoadOptions{Workers: 8, Duration: 2 * time.Minute, Mixed: true})
	ctx := context.Background()

	var events []deploy.Event
	e.OnEvent(func(ev deploy.Event) { events = append(events, ev) })
	res, err := e.Deployer.Scale(ctx, testenv.App, 4)
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Equal(t, "scale", res.Strategy)
	assert.Equal(t, "v1", res.Version)
	assert.Equal(t, 1, res.Release)
	assert.Len(t, res.Machines, 4)
	assert.Equal(t, 2, res.Counts[deploy.MachineCreated])
	m, routed := routedCount(t, e)
	assert.Equal(t, [2]int{4, 4}, [2]int{m, routed}, "machines, routed")
	assert.Equal(t, map[string]int{"v1": 4}, e.Versions(t))
	require.NoError(t, run.WaitEpoch(ctx, run.Mark(), 200), "the 4 machines serve")
	healthy := map[string]bool{}
	for _, ev := range events {
		switch ev.Type {
		case deploy.MachineHealthy:
			healthy[ev.Machine] = true
		case deploy.MachineRouted:
			assert.True(t, healthy[ev.Machine], "machine %s routed before it passed its checks", ev.Machine)
		}
	}
	require.NotEmpty(t, events)
	assert.Equal(t, deploy.ScaleStarted, events[0].Type)
	assert.Equal(t, "2 -> 4", events[0].Message)
	assert.Equal(t, deploy.ScaleSucceeded, events[len(events)-1].Type)

	events = nil
	res, err = e.Deployer.Scale(ctx, testenv.App, 1)
	require.NoError(t, err)
	assert.Len(t, res.Machines, 1)
	assert.Equal(t, 3, res.Counts[deploy.MachineDraining])
	assert.Equal(t, 3, res.Counts[deploy.MachineDestroyed])
	assert.Zero(t, res.Counts[deploy.MachineCreated])
	m, routed = routedCount(t, e)
	assert.Equal(t, [2]int{1, 1}, [2]int{m, routed}, "machines, routed")
	require.NoError(t, run.WaitEpoch(ctx, run.Mark(), 200), "the machine left serves")

	rels, err := store.List(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, rels, 1, "a scale creates no release")
	assert.Equal(t, 1, rels[0].Count, "the current release records the scaled count")
	assert.True(t, rels[0].Stable)

	deploytest.AssertNoFailures(t, run.Stop())
}

// A scale-up whose new machine fails its checks removes what it launched;
// the machines that served go on and the recorded count stays. Bad counts,
// unknown groups and an app with nothing to scale are refused.
func TestScaleFailsAndRefuses(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.Deployer.WaitTimeout = time.Second
	ctx := context.Background()

	_, err := e.Deployer.Scale(ctx, testenv.App, 2)
	assert.ErrorIs(t, err, deploy.ErrNotFound, "nothing deployed")

	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	run := e.Load(t)
	e.Backend.Inject(mem.Fault{Image: "v1", Nth: 3, Unhealthy: true}) // the second machine the scale starts
	res, err := e.Deployer.Scale(ctx, testenv.App, 3)
	require.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.Equal(t, deploy.StatusFailed, res.Status)
	assert.Len(t, res.Machines, 1)
	m, routed := routedCount(t, e)
	assert.Equal(t, [2]int{1, 1}, [2]int{m, routed}, "machines, routed")
	rels, err := store.List(ctx, testenv.App)
	require.NoError(t, err)
	assert.Equal(t, 1, rels[0].Count)
	deploytest.AssertNoFailures(t, run.Stop())

	_, err = e.Deployer.Scale(ctx, testenv.App, 0)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	_, err = e.Deployer.ScaleGroups(ctx, testenv.App, map[string]int{"worker": 2})
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, `no process group "worker"`)
}

// Process groups scale one by one: the others keep their machines and
// targets; the release records each group's count.
func TestScaleGroups(t *testing.T) {
	e := groupsEnv(t)
	ctx := context.Background()
	_, err := e.Deployer.Deploy(ctx, threeGroups(e, "v1", rolling.Strategy{}, nil))
	require.NoError(t, err)
	run := e.Load(t)

	res, err := e.Deployer.ScaleGroups(ctx, testenv.App, map[string]int{"api": 3, "worker": 2})
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Equal(t, map[string]int{"web/v1": 2, "api/v1": 3}, countValues(routedGroups(t, e)), "the worker is never routed")
	assert.Len(t, res.Machines, 7)

	res, err = e.Deployer.Scale(ctx, testenv.App, 1) // the default group: the first, web
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"web/v1": 1, "api/v1": 3}, countValues(routedGroups(t, e)))
	assert.Len(t, res.Machines, 6)

	rels, err := e.Deployer.Store.List(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, rels, 1)
	counts := map[string]int{}
	for _, g := range rels[0].Groups {
		counts[g.Name] = g.Count
	}
	assert.Equal(t, map[string]int{"web": 1, "api": 3, "worker": 2}, counts)
	assert.Equal(t, 1, rels[0].Count, "the first group's")
	deploytest.AssertNoFailures(t, run.Stop())
}
