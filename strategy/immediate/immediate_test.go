package immediate_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/immediate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestImmediateReportsDowntime(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, immediate.Strategy{}, "v1", 3)
	e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: 100 * time.Millisecond})
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	res := e.MustDeploy(t, immediate.Strategy{}, "v2", 3)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.GreaterOrEqual(t, res.Downtime, 100*time.Millisecond, "the new machines listen only after their boot delay")
	assert.Zero(t, res.Counts[deploy.MachineHealthy], "no health wait")
	deploytest.OnlyVersion(t, run, "v2", 50)
	lr := run.Stop()
	t.Logf("immediate: downtime %s, %s (failures allowed in the window)", res.Downtime, lr)
	assert.Equal(t, map[string]int{"v2": 3}, e.Versions(t))
	assert.Equal(t, map[string]int{"v2": 3}, e.RoutedVersions(t))
}

func TestImmediateFailureRestoresPrevious(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, immediate.Strategy{}, "v1", 2)
	e.Backend.Inject(mem.Fault{Image: "v2", FailStart: true})
	res, err := e.Deploy(context.Background(), immediate.Strategy{}, "v2", 2)
	require.Error(t, err)
	assert.ErrorIs(t, err, mem.ErrInjected)
	assert.Equal(t, deploy.StatusRolledBack, res.Status, "the old machines were already stopped")
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 2}, e.RoutedVersions(t))
}
