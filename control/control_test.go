package control_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sockPath returns a short socket path (t.TempDir can exceed sun_path).
func sockPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// serve starts s on a fresh socket and returns a client for it.
func serve(t *testing.T, s *control.Server) *control.Client {
	t.Helper()
	path := sockPath(t)
	ln, err := control.Listen(path)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c := control.Dial(path)
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, s.Shutdown(ctx))
		assert.NoError(t, <-done)
	})
	return c
}

// A Deployer in this process moves the traffic of a proxy served by another
// "process" (a Server on a socket) through a Client, under load, losing nothing.
func TestRemoteRouterDeploysUnderLoad(t *testing.T) {
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.CloseIdleConnections()
	front := httptest.NewServer(px)
	defer front.Close()
	c := serve(t, &control.Server{Router: px, Stats: func() map[string]control.TargetStats {
		out := map[string]control.TargetStats{}
		for a, s := range px.Stats() {
			if s.Removed {
				continue // the current targets only
			}
			out[a] = control.TargetStats{Weight: s.Weight, Requests: s.Requests, Errors: s.Errors}
		}
		return out
	}})

	b := mem.New()
	defer b.Close()
	for _, v := range []string{"v1", "v2", "v3"} {
		b.Register(v, deploytest.App(v))
	}
	b.Inject(mem.Fault{ListenAfter: 30 * time.Millisecond})
	d := &deploy.Deployer{
		Backend: b, Router: c, Strategy: rolling.Strategy{},
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond},
		WaitTimeout: 10 * time.Second,
	}
	ctx := context.Background()
	spec := func(v string) deploy.MachineSpec { return deploy.MachineSpec{App: "web", Image: v, Version: v} }
	_, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2})
	require.NoError(t, err)

	run := deploytest.StartLoad(ctx, front.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 50))
	for _, v := range []string{"v2", "v3"} {
		res, err := d.Deploy(ctx, deploy.Request{Spec: spec(v)})
		require.NoError(t, err)
		assert.Equal(t, v, res.Version)
	}
	epoch := run.Mark()
	require.Eventually(t, func() bool { return run.Epoch(epoch)["v3"] >= 50 }, 10*time.Second, 5*time.Millisecond)
	lr := run.Stop()
	assert.Zero(t, lr.Failed, "failed requests: %v", lr.Errors)
	assert.NotZero(t, lr.ByBody["v2"])
	assert.Empty(t, run.Epoch(epoch)["v1"])

	ms, err := b.List(ctx, "web")
	require.NoError(t, err)
	want := map[string]int{}
	for _, m := range ms {
		want[m.Addr()] = 1
	}
	assert.Equal(t, want, px.Targets())
	assert.Equal(t, want, c.Targets(), "the client reports the daemon's targets")
	stats, err := c.Stats(ctx)
	require.NoError(t, err)
	assert.Len(t, stats, 2)
}

// blockingRouter holds SetTargets until released.
type blockingRouter struct {
	entered, release chan struct{}
	mu               sync.Mutex
	targets          map[string]int
}

func (r *blockingRouter) SetTargets(ctx context.Context, t map[string]int) error {
	r.mu.Lock()
	r.targets = t
	r.mu.Unlock()
	r.entered <- struct{}{}
	select {
	case <-r.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestSetTargetsReturnsAfterDrain(t *testing.T) {
	r := &blockingRouter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	c := serve(t, &control.Server{Router: r})
	done := make(chan error, 1)
	go func() { done <- c.SetTargets(context.Background(), map[string]int{"127.0.0.1:1": 1}) }()
	<-r.entered
	select {
	case err := <-done:
		t.Fatalf("SetTargets returned before the router drained: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(r.release)
	require.NoError(t, <-done)

	// Not a WeightReporter: Targets says nil, TargetsContext says why.
	assert.Nil(t, c.Targets())
	_, err := c.TargetsContext(context.Background())
	assert.ErrorIs(t, err, deploy.ErrNotFound)
}

func TestRouterErrorsKeepTheirKind(t *testing.T) {
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	c := serve(t, &control.Server{Router: px})
	err := c.SetTargets(context.Background(), map[string]int{"nonsense": 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid target")
	assert.Equal(t, map[string]int{}, c.Targets())
	_, err = c.Releases(context.Background())
	assert.ErrorIs(t, err, control.ErrNoApp)
}

func TestUnreachable(t *testing.T) {
	c := control.Dial(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	_, err := c.Info(context.Background())
	assert.ErrorIs(t, err, control.ErrUnreachable)
	err = c.SetTargets(context.Background(), nil)
	assert.ErrorIs(t, err, control.ErrUnreachable)
}

func TestListen(t *testing.T) {
	path := sockPath(t)
	ln, err := control.Listen(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = control.Listen(path)
	assert.ErrorIs(t, err, control.ErrInUse)
	require.NoError(t, ln.Close())

	// A stale socket file (its listener gone without unlinking) is replaced.
	ln, err = control.Listen(path)
	require.NoError(t, err)
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	_, err = os.Stat(path)
	require.NoError(t, err, "stale socket left behind")
	ln, err = control.Listen(path)
	require.NoError(t, err)
	require.NoError(t, ln.Close())

	// Not a socket: refused.
	require.NoError(t, os.WriteFile(path, []byte("x"), 0o600))
	_, err = control.Listen(path)
	assert.ErrorContains(t, err, "not a socket")

	long := "/tmp/" + string(make([]byte, 120))
	_, err = control.Listen(long)
	assert.ErrorContains(t, err, "too long")
}

// fakeApp is a scripted App.
type fakeApp struct {
	release  chan struct{} // Deploy waits on it after its first event
	started  chan struct{}
	mu       sync.Mutex
	deployed []control.DeployArgs
	held     bool
	canceled bool
}

func (a *fakeApp) Deploy(ctx context.Context, args control.DeployArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	a.mu.Lock()
	a.deployed = append(a.deployed, args)
	a.mu.Unlock()
	if args.Image == "" {
		return nil, fmt.Errorf("no image: %w", deploy.ErrInvalid)
	}
	res := &deploy.Result{App: "web", Version: "v2", Strategy: "rolling", Started: time.Now(), Counts: map[deploy.EventType]int{}}
	emit(deploy.Event{Type: deploy.DeployStarted, App: "web", Version: "v2", Time: time.Now()})
	a.started <- struct{}{}
	select {
	case <-a.release:
	case <-ctx.Done():
		a.mu.Lock()
		a.canceled = true
		a.mu.Unlock()
		res.Status, res.Err, res.Finished = deploy.StatusRolledBack, ctx.Err(), time.Now()
		return res, ctx.Err()
	}
	emit(deploy.Event{Type: deploy.MachineHealthy, Machine: "m1", Version: "v2", Time: time.Now()})
	if args.Image == "bad" {
		err := &deploy.PhaseError{Machine: "m1", Phase: "health", Err: deploy.ErrUnhealthy}
		res.Status, res.Err, res.Finished = deploy.StatusRolledBack, err, time.Now()
		return res, err
	}
	res.Status, res.Machines, res.Finished = deploy.StatusSucceeded, []string{"m1"}, time.Now()
	return res, nil
}

func (a *fakeApp) Rollback(ctx context.Context, args control.RollbackArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	return nil, fmt.Errorf("rollback to v%d: %w", args.Version, deploy.ErrNotFound)
}

func (a *fakeApp) Releases(context.Context) ([]deploy.Release, error) {
	return []deploy.Release{{App: "web", Version: 1, Stable: true, Status: deploy.ReleaseComplete}}, nil
}

func (a *fakeApp) Status(context.Context) (control.Status, error) {
	return control.Status{Machines: []control.Machine{{ID: "m1", Addr: "127.0.0.1:9", Weight: 1}}}, nil
}

func (a *fakeApp) Promote(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.held {
		return fmt.Errorf("promote: %w", control.ErrNotHeld)
	}
	return nil
}

func (a *fakeApp) Abort(context.Context) error { return a.Promote(context.Background()) }

func (a *fakeApp) Logs(ctx context.Context, opts control.LogOptions, emit func(string)) error {
	follow := opts.Follow
	emit("one")
	emit("two")
	if !follow {
		return nil
	}
	emit("three")
	<-ctx.Done()
	return ctx.Err()
}

func newFakeApp() *fakeApp {
	return &fakeApp{release: make(chan struct{}), started: make(chan struct{}, 4)}
}

func TestAppOperations(t *testing.T) {
	app := newFakeApp()
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	c := serve(t, &control.Server{Router: px, App: app, Info: control.Info{App: "web", Backend: "mem", PID: 7}})
	ctx := context.Background()

	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, "web", info.App)

	// A deploy streams its events and result.
	var events []deploy.EventType
	go func() { <-app.started; close(app.release) }()
	res, err := c.Deploy(ctx, control.DeployArgs{Image: "good"}, func(e control.Event) { events = append(events, e.Type) })
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Equal(t, []string{"m1"}, res.Machines)
	assert.Equal(t, []deploy.EventType{deploy.DeployStarted, deploy.MachineHealthy}, events)

	// A failed one: the error keeps its kind, the result says rolled back.
	app.release = make(chan struct{})
	go func() { <-app.started; close(app.release) }()
	res, err = c.Deploy(ctx, control.DeployArgs{Image: "bad"}, nil)
	assert.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.Contains(t, err.Error(), "machine m1: health")
	require.NotNil(t, res)
	assert.Equal(t, deploy.StatusRolledBack, res.Status)

	// Invalid arguments: no result, ErrInvalid.
	res, err = c.Deploy(ctx, control.DeployArgs{}, nil)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.Nil(t, res)

	_, err = c.Rollback(ctx, control.RollbackArgs{Version: 9}, nil)
	assert.ErrorIs(t, err, deploy.ErrNotFound)
	assert.ErrorIs(t, c.Promote(ctx), control.ErrNotHeld)
	assert.ErrorIs(t, c.Abort(ctx), control.ErrNotHeld)

	rels, err := c.Releases(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 1)
	assert.True(t, rels[0].Stable)

	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "web", st.App, "Info fills in the status")
	assert.Equal(t, map[string]int{}, st.Targets)
	require.Len(t, st.Machines, 1)

	var lines []string
	require.NoError(t, c.Logs(ctx, control.LogOptions{}, func(l string) { lines = append(lines, l) }))
	assert.Equal(t, []string{"one", "two"}, lines)
	fctx, cancel := context.WithCancel(ctx)
	lines = nil
	require.NoError(t, c.Logs(fctx, control.LogOptions{Follow: true}, func(l string) {
		lines = append(lines, l)
		if l == "three" {
			cancel()
		}
	}))
	assert.Equal(t, []string{"one", "two", "three"}, lines)
}

// Detach returns once the deploy started; the deploy goes on without its
// client, and a shutdown cancels it.
func TestDetachAndShutdown(t *testing.T) {
	app := newFakeApp()
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	s := &control.Server{Router: px, App: app}
	path := sockPath(t)
	ln, err := control.Listen(path)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := control.Dial(path)
	defer c.Close()

	res, err := c.Deploy(context.Background(), control.DeployArgs{Image: "x", Detach: true}, nil)
	require.NoError(t, err)
	assert.Equal(t, control.StatusRunning, res.Status)
	assert.Equal(t, "v2", res.Version)
	<-app.started

	// A follower of logs does not hold the shutdown up either.
	logsDone := make(chan error, 1)
	following := make(chan struct{})
	go func() {
		logsDone <- c.Logs(context.Background(), control.LogOptions{Follow: true}, func(l string) {
			if l == "three" { // the fake's last line: it follows now
				close(following)
			}
		})
	}()
	select {
	case <-following:
	case <-time.After(10 * time.Second):
		t.Fatal("the log follower got no line within 10s")
	}
	select { // a follower keeps following until the server shuts down
	case err := <-logsDone:
		t.Fatalf("the log follower ended before the shutdown: %v", err)
	case <-time.After(20 * time.Millisecond):
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	require.NoError(t, <-served)
	app.mu.Lock()
	assert.True(t, app.canceled, "the running deploy was cancelled")
	app.mu.Unlock()
	assert.NoError(t, <-logsDone, "a shutdown ends a follow cleanly")
	_, err = c.Info(context.Background())
	assert.ErrorIs(t, err, control.ErrUnreachable)
}

// A canary judged through a Client: the server's router reports its request
// statistics (deploy.StatsReporter), so the analysis runs on the traffic of a
// proxy in another "process"; under load, nothing fails.
func TestRemoteRouterCanary(t *testing.T) {
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.CloseIdleConnections()
	front := httptest.NewServer(px)
	defer front.Close()
	c := serve(t, &control.Server{Router: &deploy.Monitor{Router: px}}) // found through the wrapper
	b := mem.New()
	defer b.Close()
	for _, v := range []string{"v1", "v2"} {
		b.Register(v, deploytest.App(v))
	}
	d := &deploy.Deployer{
		Backend: b, Router: c, Strategy: rolling.Strategy{},
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond},
		WaitTimeout: 10 * time.Second,
	}
	var verdict string
	d.OnEvent = func(e deploy.Event) {
		if e.Type == deploy.CanaryAnalysis {
			verdict = e.Message
		}
	}
	ctx := context.Background()
	spec := func(v string) deploy.MachineSpec { return deploy.MachineSpec{App: "web", Image: v, Version: v} }
	_, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2})
	require.NoError(t, err)

	run := deploytest.StartLoad(ctx, front.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 50))
	s := canary.Strategy{Steps: []canary.Step{{Percent: 20}}, Bake: 300 * time.Millisecond, MaxBake: 10 * time.Second,
		Analysis: canary.Analysis{MinRequests: 20, Interval: 50 * time.Millisecond}}
	res, err := d.Deploy(ctx, deploy.Request{Spec: spec("v2"), Strategy: s})
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	lr := run.Stop()
	assert.Zero(t, lr.Failed, "failed requests: %v", lr.Errors)
	assert.Contains(t, verdict, "canary: ")
	assert.NotContains(t, verdict, "no verdict", "the canary's requests were counted through the client")

	reqs, _, lat := c.RequestStats()
	assert.NotEmpty(t, reqs)
	for a := range reqs {
		assert.NotEmpty(t, lat[a], "latency buckets of %s", a)
	}
}
