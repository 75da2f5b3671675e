package rolling_test

import (
	"context"
	"io"
	"math"
	"net/http"
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

// Five consecutive rolling deploys of a 3-machine app under continuous load:
// no request fails, and every request sent after a deploy returns is served
// by the new version.
func TestRollingUnderLoad(t *testing.T) {
	e := testenv.New(t)
	e.Backend.Inject(mem.Fault{ListenAfter: 100 * time.Millisecond}) // every app takes a while to listen
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 200))
	for _, v := range []string{"v2", "v3", "v4", "v5", "v6"} {
		res := e.MustDeploy(t, rolling.Strategy{}, v, 3)
		assert.Equal(t, deploy.StatusSucceeded, res.Status)
		deploytest.OnlyVersion(t, run, v, 50) // requests sent after the deploy returned
		assert.Equal(t, map[string]int{v: 3}, e.Versions(t))
	}
	deploytest.AssertNoFailures(t, run.Stop())
}

func TestRollingOneMachineUnderLoad(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	e.MustDeploy(t, rolling.Strategy{}, "v2", 1)
	deploytest.OnlyVersion(t, run, "v2", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v2": 1}, e.Versions(t))
}

func TestRollingBatchesAndResize(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 4)
	run := e.Load(t)
	res := e.MustDeploy(t, rolling.Strategy{MaxUnavailable: 0.5}, "v2", 4)
	assert.Equal(t, 4, res.Counts[deploy.MachineCreated])
	assert.Equal(t, 4, res.Counts[deploy.MachineDestroyed])
	e.MustDeploy(t, rolling.Strategy{MaxUnavailable: 2}, "v3", 2) // shrink
	assert.Equal(t, map[string]int{"v3": 2}, e.Versions(t))
	e.MustDeploy(t, rolling.Strategy{}, "v4", 3) // grow
	assert.Equal(t, map[string]int{"v4": 3}, e.Versions(t))
	assert.Equal(t, map[string]int{"v4": 3}, e.RoutedVersions(t))
	deploytest.AssertNoFailures(t, run.Stop())
}

// A new version whose health check never passes: the deploy fails within its
// wait timeout, no request fails, the old machines serve and no new one remains.
func TestRollingNeverHealthy(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	e.Backend.Inject(mem.Fault{Image: "v2", Unhealthy: true})
	run := e.Load(t)
	e.Deployer.WaitTimeout = 500 * time.Millisecond
	res, err := e.Deploy(context.Background(), rolling.Strategy{}, "v2", 3)
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrUnhealthy)
	var pe *deploy.PhaseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "health", pe.Phase)
	assert.NotEmpty(t, pe.Machine)
	assert.ErrorContains(t, err, "500ms wait timeout", "its wait timeout ended it")
	assert.Equal(t, deploy.StatusFailed, res.Status)
	assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 3}, e.RoutedVersions(t))
	deploytest.OnlyVersion(t, run, "v1", 50)
	deploytest.AssertNoFailures(t, run.Stop())
}

// A new version that crashes 200ms after start: the deploy fails long before
// its wait timeout, with an error that names the crash.
func TestRollingCrashFailsFast(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	e.Backend.Inject(mem.Fault{Image: "v2", CrashAfter: 200 * time.Millisecond, ListenAfter: time.Hour})
	run := e.Load(t)
	e.Deployer.WaitTimeout = time.Minute
	_, err := e.Deploy(context.Background(), rolling.Strategy{}, "v2", 2)
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrExited)
	assert.ErrorContains(t, err, "crashed")
	assert.NotContains(t, err.Error(), "wait timeout", "the crash ended the wait, not its 1m timeout")
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
	deploytest.AssertNoFailures(t, run.Stop())
}

// A slow request in flight on an old machine when it leaves traffic completes with 200.
func TestRollingSlowRequestDrains(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	type reply struct {
		code int
		body string
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		resp, err := http.Get(e.URL + "/slow?ms=500")
		if err != nil {
			got <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- reply{code: resp.StatusCode, body: string(b), err: err}
	}()
	// The request holds the only v1 machine; wait until the proxy counts it in flight.
	require.Eventually(t, func() bool {
		for _, s := range e.Proxy.Stats() {
			if s.InFlight > 0 {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)
	e.MustDeploy(t, rolling.Strategy{}, "v2", 1)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.code)
	assert.Equal(t, "v1", r.body)
	http.DefaultClient.CloseIdleConnections()
}

// A machine killed abruptly while routed costs no request while another is healthy.
func TestRollingMachineKilledWhileRouted(t *testing.T) {
	e := testenv.New(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 200))
	m, err := e.Backend.Machine(res.Machines[0])
	require.NoError(t, err)
	m.Kill()
	deploytest.OnlyVersion(t, run, "v1", 500)
	deploytest.AssertNoFailures(t, run.Stop())
}

// Rolling of 5 machines where the 3rd new machine fails its health check:
// afterwards 5 machines of the old version serve, and the result says rolled back.
func TestRollingRollsBackOnThirdMachine(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 5)
	e.Backend.Inject(mem.Fault{Image: "v2", Nth: 3, Unhealthy: true})
	e.Deployer.WaitTimeout = 500 * time.Millisecond
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	res, err := e.Deploy(context.Background(), rolling.Strategy{}, "v2", 5)
	require.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.Equal(t, deploy.StatusRolledBack, res.Status)
	assert.Equal(t, 1, res.Counts[deploy.DeployRolledBack])
	assert.Equal(t, map[string]int{"v1": 5}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 5}, e.RoutedVersions(t))
	deploytest.OnlyVersion(t, run, "v1", 100)
	deploytest.AssertNoFailures(t, run.Stop())
}

// With NoAutoRollback, a failure after traffic moved keeps the new machines that serve.
func TestRollingNoAutoRollback(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	e.Backend.Inject(mem.Fault{Image: "v2", Nth: 2, Unhealthy: true})
	e.Deployer.WaitTimeout = 300 * time.Millisecond
	e.Deployer.NoAutoRollback = true
	res, err := e.Deploy(context.Background(), rolling.Strategy{}, "v2", 3)
	require.Error(t, err)
	assert.Equal(t, deploy.StatusFailed, res.Status)
	assert.Equal(t, map[string]int{"v1": 2, "v2": 1}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 2, "v2": 1}, e.RoutedVersions(t))
}

func TestRollingMaxUnavailable(t *testing.T) {
	cases := []struct {
		v    float64
		n    int
		want int
		err  bool
	}{
		{0, 3, 1, false}, {1, 3, 1, false}, {2, 3, 2, false}, {3, 3, 3, false},
		{0.33, 3, 1, false}, {0.5, 10, 5, false}, {0.01, 10, 1, false},
		{4, 3, 0, true}, {-1, 3, 0, true}, {math.NaN(), 3, 0, true}, {math.Inf(1), 3, 0, true}, {1.5, 3, 0, true},
	}
	for _, c := range cases {
		got, err := rolling.Strategy{MaxUnavailable: c.v}.BatchSize(c.n)
		if c.err {
			assert.ErrorIs(t, err, deploy.ErrInvalid, "%v of %d", c.v, c.n)
			continue
		}
		assert.NoError(t, err)
		assert.Equal(t, c.want, got, "%v of %d", c.v, c.n)
	}
	// Through a deploy: a clear error and nothing changes.
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	_, err := e.Deploy(context.Background(), rolling.Strategy{MaxUnavailable: math.NaN()}, "v2", 2)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
}

// A first deploy has nothing serving to keep up: its machines start at once,
// not one batch after another.
func TestRollingFirstDeployStartsAllAtOnce(t *testing.T) {
	e := testenv.New(t)
	e.Backend.Inject(mem.Fault{ListenAfter: 200 * time.Millisecond})
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	started, healthy := 0, 0
	for _, ev := range e.Events() {
		switch ev.Type {
		case deploy.MachineStarted:
			started++
		case deploy.MachineHealthy:
			assert.Equal(t, 3, started, "every machine started before the first was healthy")
			healthy++
		}
	}
	assert.Equal(t, 3, healthy)
}
