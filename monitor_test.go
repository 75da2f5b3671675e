package deploy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func withMonitor(t *testing.T) (*testenv.Env, *deploy.Monitor, chan deploy.Event) {
	e := testenv.New(t)
	events := make(chan deploy.Event, 16)
	mon := &deploy.Monitor{
		Router: e.Proxy, Backend: e.Backend, App: testenv.App,
		Health:   health.HTTP{Path: "/health", Timeout: 500 * time.Millisecond},
		Interval: 20 * time.Millisecond,
		OnEvent:  func(ev deploy.Event) { events <- ev },
	}
	e.Deployer.Router = mon
	deploytest.RunMonitor(t, mon)
	return e, mon, events
}

// One of three machines starts failing after cutover: it leaves traffic, the
// requests that fail before detection are counted and bounded, none fail
// after, and it comes back once it passes again.
func TestMonitorContinuousHealth(t *testing.T) {
	e, mon, events := withMonitor(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	m, err := e.Backend.Machine(res.Machines[1])
	require.NoError(t, err)

	run := e.Load(t)
	before := run.Mark()
	m.SetFailing(true)
	ev := nextEvent(t, events)
	after := run.Mark()
	assert.Equal(t, deploy.MachineUnhealthy, ev.Type)
	assert.Equal(t, m.ID(), ev.Machine)
	assert.Equal(t, []string{m.Addr()}, mon.Down())
	assert.NotContains(t, e.Proxy.Targets(), m.Addr())
	assert.Contains(t, mon.Targets(), m.Addr(), "still wanted, only held out")
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, run.WaitEpoch(wctx, after, 1000))
	assert.Zero(t, run.Epoch(after)["(failed)"], "no failure after detection")

	m.SetFailing(false)
	ev = nextEvent(t, events)
	assert.Equal(t, deploy.MachineHealthy, ev.Type)
	assert.Contains(t, e.Proxy.Targets(), m.Addr(), "back in traffic")
	back := run.Mark()
	require.Eventually(t, func() bool { return e.Proxy.Stats()[m.Addr()].Requests > 10 }, 5*time.Second, time.Millisecond)
	lr := run.Stop()
	failedBefore := run.Epoch(before)["(failed)"]
	t.Logf("before detection: %d of %d requests failed; after detection: %v; back: %v", failedBefore, sumOf(run.Epoch(before)), run.Epoch(after), run.Epoch(back))
	assert.Zero(t, run.Epoch(after)["(failed)"]+run.Epoch(back)["(failed)"], "no failure after detection")
	assert.Equal(t, failedBefore+run.Epoch(0)["(failed)"], lr.Failed, "every failure was sent before detection")
	assert.Less(t, lr.Failed, int64(1000), "bounded")
}

func TestMonitorFailsOpen(t *testing.T) {
	e, mon, events := withMonitor(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	for _, id := range res.Machines {
		m, err := e.Backend.Machine(id)
		require.NoError(t, err)
		m.SetFailing(true)
	}
	// Both fail; each in turn would leave traffic, but the last one stays.
	ev := nextEvent(t, events)
	assert.Equal(t, deploy.MachineUnhealthy, ev.Type)
	ev = nextEvent(t, events)
	assert.Equal(t, deploy.MachineUnhealthy, ev.Type)
	assert.Len(t, mon.Down(), 2)
	assert.Len(t, e.Proxy.Targets(), 2, "with every target failing, all stay in traffic")
}

func TestMonitorPassesStatsToCanary(t *testing.T) {
	e, _, _ := withMonitor(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	res := e.MustDeploy(t, canary.Strategy{Bake: 100 * time.Millisecond}, "v2", 2)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
}

// nextEvent returns the monitor's next event, failing the test after 10s.
func nextEvent(t *testing.T, events <-chan deploy.Event) deploy.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no monitor event within 10s")
		return deploy.Event{}
	}
}

func sumOf(m map[string]int64) int64 {
	n := int64(0)
	for _, v := range m {
		n += v
	}
	return n
}

func TestStatusShowsHeldOutMachine(t *testing.T) {
	e, mon, events := withMonitor(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	m, err := e.Backend.Machine(res.Machines[0])
	require.NoError(t, err)
	m.SetFailing(true)
	nextEvent(t, events)
	st, err := e.Deployer.Status(context.Background(), testenv.App)
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, 0, st[0].Weight, "held out of traffic")
	assert.Contains(t, st[0].Health, "critical")
	assert.Equal(t, 1, st[1].Weight)
	assert.Equal(t, 1, mon.Targets()[m.Addr()], "still wanted")
}

type checkFunc func(context.Context, deploy.Machine) error

func (f checkFunc) Check(ctx context.Context, m deploy.Machine) error { return f(ctx, m) }

// A target that leaves the wanted set and comes back starts afresh: a failure
// counted before it left does not count toward taking it out of traffic.
func TestMonitorForgetsRemovedTargets(t *testing.T) {
	e := testenv.New(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	m, err := e.Backend.Machine(res.Machines[0])
	require.NoError(t, err)
	mon := &deploy.Monitor{Router: e.Proxy, Backend: e.Backend, App: testenv.App, Failures: 2}
	ctx := context.Background()
	failing := checkFunc(func(context.Context, deploy.Machine) error { return errors.New("failing") })
	want := map[string]int{m.Addr(): 1}
	require.NoError(t, mon.SetTargets(ctx, want))
	mon.Round(ctx, failing, 0) // one failure of the two that take it out
	require.NoError(t, mon.SetTargets(ctx, map[string]int{}))
	require.NoError(t, mon.SetTargets(ctx, want))
	mon.Round(ctx, failing, 0)
	assert.Empty(t, mon.Down(), "the failure counted before it left is forgotten")
	mon.Round(ctx, failing, 0)
	assert.Equal(t, []string{m.Addr()}, mon.Down())
}
