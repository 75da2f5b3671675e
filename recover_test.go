package deploy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/crash"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/rolling"
)

// dyingLockTTL is the deploy lock's ttl in the process that dies. The lock
// outlives the death by at least two thirds of it (it is renewed every third),
// which must cover the time to the first Recover on a loaded machine (-race,
// packages in parallel); Recover then waits out the rest.
const dyingLockTTL = 1500 * time.Millisecond

// crashDuring deploys version with s on a Deployer that dies at the first event
// for which at returns true, and throws that Deployer away.
func crashDuring(t *testing.T, e *testenv.Env, store deploy.Store, s deploy.Strategy, version string, at func(deploy.Event) bool) {
	t.Helper()
	// The deploy may return an error or not (dying at its last event it has
	// done its work); either way its release is left "running".
	dieDuring(t, e, store, at, func(ctx context.Context, d *deploy.Deployer) {
		d.Strategy = s
		_, _ = d.Deploy(ctx, deploy.Request{Spec: e.Spec(version)})
	})
}

// dieDuring runs op on a Deployer of e's backend, router and store that dies
// at the first event for which at returns true, and throws it away.
func dieDuring(t *testing.T, e *testenv.Env, store deploy.Store, at func(deploy.Event) bool, op func(context.Context, *deploy.Deployer)) {
	t.Helper()
	proc := &crash.Process{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &deploy.Deployer{
		Backend: proc.Backend(e.Backend), Router: proc.Router(e.Proxy), Store: proc.Store(store),
		Health: e.Deployer.Health, LockTTL: dyingLockTTL,
		OnEvent: func(ev deploy.Event) {
			if !proc.Dead() && at(ev) {
				proc.Die()
				cancel()
			}
		},
	}
	op(ctx, d)
	require.True(t, proc.Dead(), "the process died")
}

func TestRecoverInterruptedDeploys(t *testing.T) {
	cases := []struct {
		name     string
		strategy deploy.Strategy
		at       func(deploy.Event) bool
		want     map[string]int // versions after Recover
		status   deploy.Status
	}{
		{"rolling, after the first new machine took traffic", rolling.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineDestroyed }, map[string]int{"v1": 3}, deploy.StatusRolledBack},
		{"rolling, as its first new machine is created", rolling.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineCreated }, map[string]int{"v1": 3}, deploy.StatusRolledBack},
		{"bluegreen, before the switch", bluegreen.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineHealthy }, map[string]int{"v1": 3}, deploy.StatusRolledBack},
		// Dies as the old machines leave traffic, before their stops: bluegreen
		// stops them all at once, so dying at the first stop would leave a
		// race between the others' stops and the death.
		{"bluegreen, after the switch", bluegreen.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineDraining }, map[string]int{"v1": 3}, deploy.StatusRolledBack},
		{"rolling, at the very end", rolling.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.DeploySucceeded }, map[string]int{"v2": 3}, deploy.StatusSucceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := testenv.New(t)
			store := release.NewMemory()
			e.Deployer.Store = store
			e.Deployer.LockTTL = 200 * time.Millisecond
			e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
			run := e.Load(t)
			crashDuring(t, e, store, c.strategy, "v2", c.at)

			// A new Deployer: the lock of the dead one holds until it expires,
			// then Recover cleans up.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, locked, err := crash.Recover(ctx, e.Deployer, testenv.App)
			assert.True(t, locked, "the dead deployer's lock held until its ttl")
			require.NoError(t, err)
			require.NotNil(t, res)
			assert.Equal(t, c.status, res.Status)
			assert.Equal(t, c.want, e.Versions(t), "no orphaned machine")
			assert.Equal(t, c.want, e.RoutedVersions(t))
			rel, err := store.Get(context.Background(), testenv.App, 2)
			require.NoError(t, err)
			if c.status == deploy.StatusSucceeded {
				assert.Equal(t, deploy.ReleaseComplete, rel.Status)
				assert.Contains(t, rel.Reason, "stopped after the deploy had moved all traffic")
			} else {
				assert.Equal(t, deploy.ReleaseRolledBack, rel.Status)
				assert.Contains(t, rel.Reason, "stopped before the deploy finished (killed or crashed); on restart v1 was restored (3 machines)")
			}
			t.Logf("release v2: %s", rel.Reason)

			again, err := e.Deployer.Recover(context.Background(), testenv.App)
			assert.NoError(t, err)
			assert.Nil(t, again, "nothing left to recover")
			deploytest.AssertNoFailures(t, run.Stop())
			e.MustDeploy(t, rolling.Strategy{}, "v3", 3) // and the app deploys again
		})
	}
}

func TestCancelledDeployIsInterrupted(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	ctx, cancel := context.WithCancel(context.Background())
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.MachineRouted && ev.Version == "v2" {
			cancel()
		}
	})
	_, err := e.Deploy(ctx, rolling.Strategy{}, "v2", 2)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
	rel, err := store.Get(context.Background(), testenv.App, 2)
	require.NoError(t, err)
	assert.Equal(t, deploy.ReleaseInterrupted, rel.Status)
}

func TestDeployLockSharedThroughStore(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	other := &deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, Strategy: rolling.Strategy{}}
	require.NoError(t, store.Lock(context.Background(), testenv.App, "a crashed process", time.Hour))
	_, err := other.Deploy(context.Background(), deploy.Request{Spec: e.Spec("v1")})
	assert.ErrorIs(t, err, deploy.ErrDeployInProgress)
	assert.ErrorContains(t, err, "locked by a crashed process")
	assert.Zero(t, e.Backend.Count())
}

// A process that dies while it scales an app up, once a new machine took
// traffic, leaves machines beyond the release's count: Recover retires the
// extra ones (an interrupted scale is undone, as a deploy is), under load
// with no failed request.
func TestRecoverUndoesAnInterruptedScale(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.Deployer.LockTTL = 200 * time.Millisecond
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	run := e.Load(t)

	dieDuring(t, e, store, func(ev deploy.Event) bool { return ev.Type == deploy.MachineRouted }, func(ctx context.Context, d *deploy.Deployer) {
		_, _ = d.Scale(ctx, testenv.App, 4)
	})
	assert.Greater(t, e.Versions(t)["v1"], 2, "the scale left machines beyond the count")

	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	res, _, err := crash.Recover(rctx, e.Deployer, testenv.App)
	require.NoError(t, err)
	require.NotNil(t, res)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Len(t, res.Machines, 2)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t), "the release's count again")
	assert.Equal(t, map[string]int{"v1": 2}, e.RoutedVersions(t))

	again, err := e.Deployer.Recover(context.Background(), testenv.App)
	assert.NoError(t, err)
	assert.Nil(t, again, "nothing left to recover")
	deploytest.AssertNoFailures(t, run.Stop())
}
