package deploytest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fleet is a mem backend and a proxy serving v1 on two machines, deployed
// with a Deployer on a fake clock, with a release history (a Locker).
type fleet struct {
	clock *deploytest.Clock
	b     *mem.Backend
	px    *proxy.Proxy
	d     *deploy.Deployer
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{clock: deploytest.NewClock(epoch), b: mem.New(), px: proxy.New(proxy.Options{DrainTimeout: 5 * time.Second})}
	t.Cleanup(func() { f.px.CloseIdleConnections(); f.b.Close() })
	for _, v := range []string{"v1", "v2"} {
		f.b.Register(v, deploytest.App(v))
	}
	f.d = &deploy.Deployer{Backend: f.b, Router: f.px, Clock: f.clock, Store: release.NewMemory(),
		Strategy: rolling.Strategy{}, WaitTimeout: 5 * time.Minute}
	f.deploy(t, deploy.Request{Spec: spec("v1"), Count: 2})
	return f
}

func spec(image string) deploy.MachineSpec {
	return deploy.MachineSpec{App: "web", Image: image}
}

// deploy runs req under f.clock.Drive and returns the result and the error.
func (f *fleet) deploy(t *testing.T, req deploy.Request) (*deploy.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res *deploy.Result
	err := f.clock.Drive(ctx, func(ctx context.Context) error {
		var err error
		res, err = f.d.Deploy(ctx, req)
		return err
	})
	return res, err
}

// A canary with three 1-minute steps and a 5-minute wait timeout succeeds in
// a fraction of a second: three minutes of the fake clock, exactly.
func TestClockCanaryMinuteSteps(t *testing.T) {
	f := newFleet(t)
	var mu sync.Mutex
	var steps []time.Time
	f.d.OnEvent = func(e deploy.Event) {
		if e.Type == deploy.CanaryStep {
			mu.Lock()
			steps = append(steps, e.Time)
			mu.Unlock()
		}
	}
	strat := canary.Strategy{Bake: time.Minute, Analysis: canary.Analysis{Interval: 5 * time.Second}, Steps: []canary.Step{{Percent: 10, Machines: 1}, {Percent: 25}, {Percent: 50, Machines: 2}}}
	start, began := f.clock.Now(), time.Now()
	res, err := f.deploy(t, deploy.Request{Spec: spec("v2"), Strategy: strat})
	t.Logf("a canary of 3 one-minute steps took %s (%s on the fake clock)", time.Since(began).Round(time.Millisecond), f.clock.Now().Sub(start))
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Equal(t, 3, res.Counts[deploy.CanaryStep])
	assert.Equal(t, 3, res.Counts[deploy.CanaryAnalysis])
	assert.Equal(t, 3*time.Minute, f.clock.Now().Sub(start), "the steps' bakes, and no more")
	assert.Equal(t, 3*time.Minute, res.Duration())
	assert.Equal(t, []time.Time{start, start.Add(time.Minute), start.Add(2 * time.Minute)}, steps)
	assert.Len(t, f.px.Targets(), 2)
}

// A machine that never passes its checks fails the deploy with the 5-minute
// wait timeout's error, at 5 minutes on the fake clock; v1 keeps serving.
func TestClockWaitTimeout(t *testing.T) {
	f := newFleet(t)
	old := f.px.Targets()
	never := health.HTTP{Path: "/fail", Interval: 10 * time.Second} // /fail answers 500
	start, began := f.clock.Now(), time.Now()
	res, err := f.deploy(t, deploy.Request{Spec: spec("v2"), Health: never})
	t.Logf("a 5-minute wait timeout took %s (%s on the fake clock)", time.Since(began).Round(time.Millisecond), f.clock.Now().Sub(start))
	require.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "not healthy within the 5m0s wait timeout")
	assert.ErrorContains(t, err, "status 500, want 200")
	assert.Equal(t, deploy.StatusFailed, res.Status)
	assert.Equal(t, 5*time.Minute, f.clock.Now().Sub(start))
	assert.Equal(t, old, f.px.Targets(), "v1 serves as before")
	assert.Equal(t, 2, f.b.Count(), "the v2 machine is gone")
}

// The deploy timeout is on the clock too, and says so.
func TestClockDeployTimeout(t *testing.T) {
	f := newFleet(t)
	f.d.Timeout = 2 * time.Minute
	never := health.HTTP{Path: "/fail", Interval: 10 * time.Second}
	res, err := f.deploy(t, deploy.Request{Spec: spec("v2"), Health: never})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "deploy timed out")
	assert.Equal(t, 2*time.Minute, res.Duration())
}

// recordingLocker is a release history that records each Lock call.
type recordingLocker struct {
	*release.Memory
	mu    sync.Mutex
	locks []time.Duration
}

func (r *recordingLocker) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	r.mu.Lock()
	r.locks = append(r.locks, ttl)
	r.mu.Unlock()
	return r.Memory.Lock(ctx, app, owner, ttl)
}

func (r *recordingLocker) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.locks)
}

// The deploy lock is renewed every third of its ttl on the clock, and not
// after its release.
func TestClockLockRenewal(t *testing.T) {
	clock := deploytest.NewClock(epoch)
	store := &recordingLocker{Memory: release.NewMemory()}
	b := mem.New()
	defer b.Close()
	d := &deploy.Deployer{Backend: b, Store: store, Clock: clock, LockTTL: 30 * time.Second}
	unlock, err := d.Lock(context.Background(), "web")
	require.NoError(t, err)
	assert.Equal(t, 1, store.count())
	clock.Advance(10 * time.Second)
	assert.Equal(t, 2, store.count(), "renewed at a third of the ttl")
	clock.Advance(9 * time.Second)
	assert.Equal(t, 2, store.count())
	clock.Advance(time.Second)
	assert.Equal(t, 3, store.count())
	clock.Advance(time.Minute)
	assert.Equal(t, 9, store.count(), "one renewal per 10s, each at its own time")
	unlock()
	assert.Zero(t, clock.Pending())
	clock.Advance(time.Hour)
	assert.Equal(t, 9, store.count(), "no renewal after the release")
	assert.Equal(t, []time.Duration{30 * time.Second}, uniq(store.locks))
}

func uniq(ds []time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range ds {
		if len(out) == 0 || out[len(out)-1] != d {
			out = append(out, d)
		}
	}
	return out
}

// A Monitor's rounds run as its clock advances, one per interval, each done
// when Advance returns: a failing machine leaves traffic at its second
// failed round and comes back at its first pass.
func TestClockMonitorRounds(t *testing.T) {
	f := newFleet(t)
	var mu sync.Mutex
	var events []deploy.Event
	mon := &deploy.Monitor{Router: f.px, Backend: f.b, App: "web", Clock: f.clock,
		Health: health.HTTP{Path: "/health"}, Interval: 30 * time.Second,
		OnEvent: func(e deploy.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }}
	require.NoError(t, mon.SetTargets(context.Background(), f.px.Targets()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.NoError(t, f.clock.WaitPending(ctx, 1), "Run armed its first round")

	ms, err := f.b.List(ctx, "web")
	require.NoError(t, err)
	sick, err := f.b.Machine(ms[0].ID())
	require.NoError(t, err)
	sick.SetHealthy(false)
	f.clock.Advance(30 * time.Second)
	assert.Empty(t, mon.Down(), "one failed round")
	f.clock.Advance(29 * time.Second)
	assert.Empty(t, mon.Down(), "no round before the interval")
	f.clock.Advance(time.Second)
	assert.Equal(t, []string{sick.Addr()}, mon.Down(), "two failed rounds")
	assert.NotContains(t, f.px.Targets(), sick.Addr())
	sick.SetHealthy(true)
	f.clock.Advance(30 * time.Second)
	assert.Empty(t, mon.Down())
	assert.Contains(t, f.px.Targets(), sick.Addr())
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2)
	assert.Equal(t, deploy.MachineUnhealthy, events[0].Type)
	assert.Equal(t, epoch.Add(time.Minute), events[0].Time)
	assert.Equal(t, deploy.MachineHealthy, events[1].Type)
	assert.Equal(t, epoch.Add(90*time.Second), events[1].Time)
}

// bluegreen's hold timeout is on the clock: an hour without a promote aborts.
func TestClockBluegreenHold(t *testing.T) {
	f := newFleet(t)
	start := f.clock.Now()
	_, err := f.deploy(t, deploy.Request{Spec: spec("v2"), Strategy: bluegreen.Strategy{Gate: bluegreen.NewGate(), HoldTimeout: time.Hour}})
	require.ErrorIs(t, err, deploy.ErrAborted)
	assert.ErrorContains(t, err, "no promote within the hold timeout 1h0m0s")
	assert.Equal(t, time.Hour, f.clock.Now().Sub(start))
	assert.Equal(t, 2, f.b.Count())
}

// Timers fire in deadline order, each at its own time; Stop and Reset leave
// no stale time in the channel.
func TestClockTimers(t *testing.T) {
	clock := deploytest.NewClock(epoch)
	var fired []time.Duration
	late := clock.AfterFunc(2*time.Second, func() { fired = append(fired, clock.Now().Sub(epoch)) })
	clock.AfterFunc(time.Second, func() { fired = append(fired, clock.Now().Sub(epoch)) })
	tm := clock.NewTimer(1500 * time.Millisecond)
	assert.Equal(t, 3, clock.Pending())
	clock.Advance(3 * time.Second)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, fired)
	assert.Equal(t, epoch.Add(1500*time.Millisecond), <-tm.C())
	assert.False(t, late.Stop(), "it fired")

	assert.False(t, tm.Reset(time.Second))
	clock.Advance(time.Second)
	assert.False(t, tm.Reset(time.Minute), "it fired, unreceived: Reset drains it")
	select {
	case <-tm.C():
		t.Fatal("a stale time after Reset")
	default:
	}
	assert.True(t, tm.Stop())
	clock.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	assert.Zero(t, clock.Pending())
}

// Drive does not move the clock while fn works with no timer of NewTimer
// armed, whatever deadlines and background timers are pending; once fn waits
// on one, it moves the clock to the earliest deadline.
func TestClockDriveWaitsForWork(t *testing.T) {
	clock := deploytest.NewClock(epoch)
	work := make(chan struct{})
	var duringWork, afterWait time.Time
	go func() {
		_ = clock.WaitPending(context.Background(), 2) // fn's deadline and background timer
		close(work)
	}()
	err := clock.Drive(context.Background(), func(ctx context.Context) error {
		ctx, cancel := deploy.WithTimeout(ctx, clock, time.Minute)
		defer cancel()
		bg := clock.AfterFunc(10*time.Second, func() {})
		defer bg.Stop()
		<-work // real work, as long as it takes
		duringWork = clock.Now()
		tm := clock.NewTimer(5 * time.Second)
		defer tm.Stop()
		<-tm.C()
		afterWait = clock.Now()
		return ctx.Err()
	})
	require.NoError(t, err)
	assert.Equal(t, epoch, duringWork)
	assert.Equal(t, epoch.Add(5*time.Second), afterWait)
}
