package deploy_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDeployerRejectsBadInput(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	cases := map[string]struct {
		d    *deploy.Deployer
		req  deploy.Request
		want error
	}{
		"no backend":  {&deploy.Deployer{Router: e.Proxy}, deploy.Request{Spec: e.Spec("v1")}, deploy.ErrInvalid},
		"no app":      {e.Deployer, deploy.Request{Spec: deploy.MachineSpec{Image: "v1"}, Strategy: rolling.Strategy{}}, deploy.ErrInvalid},
		"no image":    {e.Deployer, deploy.Request{Spec: deploy.MachineSpec{App: "a"}, Strategy: rolling.Strategy{}}, deploy.ErrInvalid},
		"bad port":    {e.Deployer, deploy.Request{Spec: deploy.MachineSpec{App: "a", Image: "v1", Port: 70000}, Strategy: rolling.Strategy{}}, deploy.ErrInvalid},
		"no strategy": {e.Deployer, deploy.Request{Spec: e.Spec("v1")}, deploy.ErrNoStrategy},
	}
	for name, c := range cases {
		res, err := c.d.Deploy(ctx, c.req)
		assert.ErrorIs(t, err, c.want, name)
		require.NotNil(t, res, name)
		assert.Equal(t, deploy.StatusFailed, res.Status, name)
	}
	assert.Zero(t, e.Backend.Count(), "nothing was created")
}

// blocking is a strategy that waits until released, to hold a deploy open.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (blocking) Name() string { return "blocking" }
func (b blocking) Deploy(ctx context.Context, r *deploy.Rollout) error {
	close(b.entered)
	<-b.release
	return rolling.Strategy{}.Deploy(ctx, r)
}

func TestOneDeployPerApp(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	b := blocking{entered: make(chan struct{}), release: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	var firstErr error
	go func() {
		defer wg.Done()
		_, firstErr = e.Deploy(ctx, b, "v1", 1)
	}()
	<-b.entered
	_, err := e.Deploy(ctx, rolling.Strategy{}, "v2", 1)
	assert.ErrorIs(t, err, deploy.ErrDeployInProgress)

	other := e.Spec("v1")
	other.App = "other"
	_, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: other, Strategy: rolling.Strategy{}})
	assert.NoError(t, err, "another app deploys meanwhile")

	close(b.release)
	wg.Wait()
	require.NoError(t, firstErr)
	_, err = e.Deploy(ctx, rolling.Strategy{}, "v2", 1)
	assert.NoError(t, err, "the lock is released")
}

func TestEventsAndResult(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	res := e.MustDeploy(t, rolling.Strategy{}, "v2", 2)
	assert.Equal(t, "rolling", res.Strategy)
	assert.Equal(t, "v1", res.FromVersion)
	assert.Equal(t, "v2", res.Version)
	assert.Len(t, res.Machines, 2)
	for _, typ := range []deploy.EventType{deploy.MachineCreated, deploy.MachineStarted, deploy.MachineHealthy, deploy.MachineRouted, deploy.MachineDraining, deploy.MachineStopped, deploy.MachineDestroyed} {
		assert.Equal(t, 2, res.Counts[typ], typ)
	}
	assert.Equal(t, 1, res.Counts[deploy.DeployStarted])
	assert.Equal(t, 1, res.Counts[deploy.DeploySucceeded])
	var last time.Time
	for _, ev := range e.Events() {
		assert.False(t, ev.Time.Before(last), "events in time order")
		last = ev.Time
		assert.Equal(t, testenv.App, ev.App)
	}
}

func TestVersionAssignedWhenEmpty(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	spec := e.Spec("v1")
	spec.Version = ""
	res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: spec, Strategy: rolling.Strategy{}})
	require.NoError(t, err)
	assert.Equal(t, "v1", res.Version)
	res, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: spec, Strategy: rolling.Strategy{}})
	require.NoError(t, err)
	assert.Equal(t, "v2", res.Version)
	ms, _ := e.Backend.List(ctx, testenv.App)
	require.Len(t, ms, 1)
	assert.Equal(t, "v2", ms[0].Spec().Labels[deploy.LabelVersion])
	assert.Equal(t, testenv.App, ms[0].Spec().Labels[deploy.LabelApp])
}

func TestStatus(t *testing.T) {
	e := testenv.New(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	m, err := e.Backend.Machine(res.Machines[1])
	require.NoError(t, err)
	m.SetHealthy(false)
	st, err := e.Deployer.Status(context.Background(), testenv.App)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, "v1", st[0].Version)
	assert.Equal(t, deploy.StateStarted, st[0].State)
	assert.Equal(t, "passing", st[0].Health)
	assert.Equal(t, 1, st[0].Weight)
	assert.Contains(t, st[1].Health, "critical")
}

// failAfterLaunch launches one new machine, routes it, then fails.
type failAfterLaunch struct{ route bool }

func (failAfterLaunch) Name() string { return "fail-after-launch" }
func (f failAfterLaunch) Deploy(ctx context.Context, r *deploy.Rollout) error {
	ms, err := r.LaunchNew(ctx, deploy.LaunchOptions{Count: 1})
	if err != nil {
		return err
	}
	if f.route {
		if err := r.AddRoutes(ctx, 1, ms...); err != nil {
			return err
		}
	}
	return errors.New("strategy gave up")
}

func TestFailedDeployRemovesWhatItCreated(t *testing.T) {
	for _, route := range []bool{false, true} {
		e := testenv.New(t)
		e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
		run := e.Load(t)
		res, err := e.Deploy(context.Background(), failAfterLaunch{route: route}, "v2", 2)
		require.ErrorContains(t, err, "strategy gave up")
		want := deploy.StatusFailed
		if route {
			want = deploy.StatusRolledBack
		}
		assert.Equal(t, want, res.Status, "route=%v", route)
		assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
		assert.Equal(t, map[string]int{"v1": 2}, e.RoutedVersions(t))
		deploytest.AssertNoFailures(t, run.Stop())
	}
}

func TestCancelledDeployCleansUp(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.MachineStarted && ev.Version == "v2" {
			cancel() // the deploy is waiting for the new machine's health
		}
	})
	_, err := e.Deploy(ctx, rolling.Strategy{}, "v2", 2)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
}
