package deploy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/internal/crash"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/rolling"
)

// A machine that serves nothing (a worker) is ready once it has stayed
// running for the startup window, and is never routed; one that exits within
// the window fails the deploy, and the previous workers stay.
func TestNoServiceDeploy(t *testing.T) {
	e := testenv.New(t)
	e.Backend.RegisterCommand("work", func(ctx context.Context, args []string, _ map[string]string, out *mem.Output) int {
		if len(args) > 0 && args[0] == "--crash" {
			fmt.Fprintln(out, "crashing")
			return 2
		}
		<-ctx.Done()
		return 0
	})
	spec := func(version string, args ...string) deploy.MachineSpec {
		s := e.Spec(version)
		s.Cmd = append([]string{"work"}, args...)
		s.NoService = true
		return s
	}
	ctx := context.Background()
	start := time.Now()
	res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2, Strategy: rolling.Strategy{}})
	require.NoError(t, err, "the Deployer's http check is not used for a worker")
	assert.GreaterOrEqual(t, time.Since(start), deploy.DefaultStartupWindow, "waits for the machines to stay running")
	assert.Len(t, res.Machines, 2)
	assert.Empty(t, e.Proxy.Targets(), "never routed")
	assert.Zero(t, res.Counts[deploy.MachineRouted])
	assert.Equal(t, 2, res.Counts[deploy.MachineHealthy])

	res, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: spec("v2"), Strategy: rolling.Strategy{}})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"v2": 2}, e.Versions(t))
	assert.Empty(t, e.Proxy.Targets())
	assert.Zero(t, res.Counts[deploy.MachineRouted])
	assert.Zero(t, res.Counts[deploy.MachineDraining])

	res, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: spec("v3", "--crash"), Strategy: rolling.Strategy{}})
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrExited)
	assert.Equal(t, map[string]int{"v2": 2}, e.Versions(t), "the previous workers stay")
	assert.Empty(t, e.Proxy.Targets())
	_ = res

	st, err := e.Deployer.Status(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, st, 2)
	for _, s := range st {
		assert.Equal(t, "passing", s.Health, "a started worker passes")
		assert.Zero(t, s.Weight)
	}
}

func TestAddrOf(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("img", nil)
	ctx := context.Background()
	m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "img", Port: 80, Ports: []int{81}})
	require.NoError(t, err)
	addr, err := deploy.AddrOf(m, 80)
	require.NoError(t, err)
	assert.Equal(t, m.Addr(), addr, "the app port")
	_, err = deploy.AddrOf(m, 81)
	assert.ErrorIs(t, err, deploy.ErrPortNotPublished, "not started")
	_, err = deploy.AddrOf(struct{ deploy.Machine }{m}, 82)
	assert.ErrorIs(t, err, deploy.ErrPortNotPublished, "a machine that publishes no other port")
}

// A worker deploy whose process died is undone by Recover: the previous
// workers are brought back to their count (ready once they stay running).
func TestNoServiceRecover(t *testing.T) {
	e := testenv.New(t)
	e.Deployer.Store = release.NewMemory()
	e.Deployer.LockTTL = 200 * time.Millisecond
	e.Backend.RegisterCommand("work", func(ctx context.Context, _ []string, _ map[string]string, _ *mem.Output) int {
		<-ctx.Done()
		return 0
	})
	spec := func(version string) deploy.MachineSpec {
		s := e.Spec(version)
		s.Version = ""
		s.Cmd, s.NoService = []string{"work"}, true
		return s
	}
	ctx := context.Background()
	_, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2, Strategy: rolling.Strategy{}})
	require.NoError(t, err)

	proc := &crash.Process{}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &deploy.Deployer{
		Backend: proc.Backend(e.Backend), Router: proc.Router(e.Proxy), Store: proc.Store(e.Deployer.Store),
		Strategy: rolling.Strategy{}, LockTTL: dyingLockTTL,
		OnEvent: func(ev deploy.Event) {
			if !proc.Dead() && ev.Type == deploy.MachineDestroyed { // the first old worker is gone
				proc.Die()
				cancel()
			}
		},
	}
	_, _ = d.Deploy(dctx, deploy.Request{Spec: spec("v2")})
	require.True(t, proc.Dead())

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	res, _, err := crash.Recover(rctx, e.Deployer, testenv.App)
	require.NoError(t, err)
	require.NotNil(t, res)
	assert.Equal(t, deploy.StatusRolledBack, res.Status)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
	assert.Empty(t, e.Proxy.Targets())
}
