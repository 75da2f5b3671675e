package bluegreen_test

import (
	"context"
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
	"github.com/cutover/deploy/strategy/bluegreen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, n int) (*testenv.Env, *deploytest.Load) {
	e := testenv.New(t)
	e.Backend.Inject(mem.Fault{ListenAfter: 50 * time.Millisecond})
	e.MustDeploy(t, bluegreen.Strategy{}, "v1", n)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	return e, run
}

func TestBluegreenUnderLoad(t *testing.T) {
	e, run := start(t, 3)
	// Bounded parallelism: never more than 2 machines booting at once.
	var mu sync.Mutex
	booting, most := 0, 0
	e.OnEvent(func(ev deploy.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Type {
		case deploy.MachineCreated:
			booting++
			most = max(most, booting)
		case deploy.MachineHealthy, deploy.MachineUnhealthy:
			booting--
		case deploy.MachineRouted:
			assert.Zero(t, booting, "traffic moves only once every new machine is healthy")
		}
	})
	res := e.MustDeploy(t, bluegreen.Strategy{Parallel: 2}, "v2", 5)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	deploytest.OnlyVersion(t, run, "v2", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v2": 5}, e.Versions(t))
	assert.Equal(t, 2, most)
}

func TestBluegreenOneNeverHealthy(t *testing.T) {
	e, run := start(t, 3)
	e.Backend.Inject(mem.Fault{Image: "v2", Nth: 2, Unhealthy: true})
	e.Deployer.WaitTimeout = 500 * time.Millisecond
	res, err := e.Deploy(context.Background(), bluegreen.Strategy{}, "v2", 3)
	require.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.Equal(t, deploy.StatusFailed, res.Status, "no traffic had moved")
	assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t), "no new machine remains")
	assert.Equal(t, map[string]int{"v1": 3}, e.RoutedVersions(t))
	deploytest.OnlyVersion(t, run, "v1", 50)
	deploytest.AssertNoFailures(t, run.Stop())
}

// deployHeld starts a gated deploy of 2 machines of v2 and returns once it
// holds, with the channel its error will come on.
func deployHeld(t *testing.T, e *testenv.Env, gate *bluegreen.Gate) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := e.Deploy(context.Background(), bluegreen.Strategy{Gate: gate}, "v2", 2)
		done <- err
	}()
	select {
	case <-gate.Held():
		return done
	case err := <-done:
		t.Fatalf("the deploy returned before it held: %v", err)
		return nil
	}
}

func TestBluegreenHoldPromote(t *testing.T) {
	e, run := start(t, 2)
	gate := bluegreen.NewGate()
	done := deployHeld(t, e, gate)
	assert.Equal(t, map[string]int{"v1": 2, "v2": 2}, e.Versions(t))
	deploytest.OnlyVersion(t, run, "v1", 50) // held: new machines run, old ones serve
	require.NoError(t, gate.Promote())
	require.NoError(t, <-done)
	assert.ErrorIs(t, gate.Abort(), bluegreen.ErrNotHeld)
	deploytest.OnlyVersion(t, run, "v2", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v2": 2}, e.Versions(t))
}

func TestBluegreenHoldAbort(t *testing.T) {
	e, run := start(t, 2)
	gate := bluegreen.NewGate()
	done := deployHeld(t, e, gate)
	require.NoError(t, gate.Abort())
	assert.ErrorIs(t, <-done, deploy.ErrAborted)
	deploytest.OnlyVersion(t, run, "v1", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
}

func TestBluegreenHoldTimeout(t *testing.T) {
	e, run := start(t, 1)
	_, err := e.Deploy(context.Background(), bluegreen.Strategy{Gate: bluegreen.NewGate(), HoldTimeout: 100 * time.Millisecond}, "v2", 1)
	assert.ErrorIs(t, err, deploy.ErrAborted)
	assert.ErrorContains(t, err, "hold timeout")
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v1": 1}, e.Versions(t))
}
