package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/router/fanout"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// edges is two proxies, as on two edge hosts: one in-process, one behind a
// control server on a Unix socket, driven by a control.Client.
type edges struct {
	Local, Remote *proxy.Proxy
	Client        *control.Client
	LocalURL      string
	RemoteURL     string
	Router        *fanout.Router
}

func newEdges(t *testing.T) *edges {
	t.Helper()
	e := &edges{
		Local:  proxy.New(proxy.Options{DrainTimeout: 10 * time.Second}),
		Remote: proxy.New(proxy.Options{DrainTimeout: 10 * time.Second}),
	}
	ls, rs := httptest.NewServer(e.Local), httptest.NewServer(e.Remote)
	e.LocalURL, e.RemoteURL = ls.URL, rs.URL
	dir, err := os.MkdirTemp("", "fan")
	require.NoError(t, err)
	path := filepath.Join(dir, "s.sock")
	ln, err := control.Listen(path)
	require.NoError(t, err)
	srv := &control.Server{Router: e.Remote}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	e.Client = control.Dial(path)
	e.Router = &fanout.Router{Routers: []deploy.Router{e.Local, e.Client}, Names: []string{"local", "remote"}}
	t.Cleanup(func() {
		e.Client.Close()
		_ = srv.Close()
		<-done
		ls.Close()
		rs.Close()
		e.Local.CloseIdleConnections()
		e.Remote.CloseIdleConnections()
		os.RemoveAll(dir)
	})
	return e
}

func deployer(b *mem.Backend, rt deploy.Router) *deploy.Deployer {
	return &deploy.Deployer{
		Backend:     b,
		Router:      rt,
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: 10 * time.Second,
	}
}

func backend(t *testing.T) *mem.Backend {
	b := mem.New()
	for _, v := range []string{"v1", "v2"} {
		b.Register(v, deploytest.App(v))
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func spec(v string) deploy.MachineSpec {
	return deploy.MachineSpec{App: "app", Image: v, Version: v, StopTimeout: 5 * time.Second}
}

// Every strategy but immediate moves v1 to v2 through both proxies at once
// while each proxy takes its own load: not one request fails on either, and
// afterwards both route the same v2 machines.
func TestTwoProxiesZeroDowntime(t *testing.T) {
	for _, s := range []deploy.Strategy{rolling.Strategy{}, bluegreen.Strategy{}, canary.Strategy{Bake: 300 * time.Millisecond}} {
		t.Run(s.Name(), func(t *testing.T) {
			e := newEdges(t)
			b := backend(t)
			d := deployer(b, e.Router)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 3, Strategy: rolling.Strategy{}})
			require.NoError(t, err)
			assert.Equal(t, e.Local.Targets(), e.Remote.Targets())
			local, remote := testenv.StartLoad(t, e.LocalURL, time.Minute), testenv.StartLoad(t, e.RemoteURL, time.Minute)
			res, err := d.Deploy(ctx, deploy.Request{Spec: spec("v2"), Count: 3, Strategy: s})
			require.NoError(t, err)
			assert.Equal(t, deploy.StatusSucceeded, res.Status)
			deploytest.OnlyVersion(t, local, "v2", 50)
			deploytest.OnlyVersion(t, remote, "v2", 50)
			deploytest.AssertNoFailures(t, local.Stop())
			deploytest.AssertNoFailures(t, remote.Stop())
			for name, rt := range map[string]deploy.WeightReporter{"local": e.Local, "remote": e.Client, "fanout": e.Router} {
				got := testenv.RoutedVersions(t, b, "app", rt)
				assert.Len(t, got, 1, "%s routes %v", name, got)
				assert.NotZero(t, got["v2"], "%s routes %v; want v2 only", name, got)
			}
			assert.True(t, maps.Equal(e.Local.Targets(), e.Remote.Targets()), "local %v, remote %v", e.Local.Targets(), e.Remote.Targets())
		})
	}
}

// SetTargets returns only once a request in flight on the remote proxy to a
// removed target has finished: the fan-out waits for every router's drain.
func TestWaitsForEveryDrain(t *testing.T) {
	e := newEdges(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = w.Write([]byte("slow"))
	}))
	defer slow.Close()
	fast := httptest.NewServer(deploytest.App("fast"))
	defer fast.Close()
	slowAddr, fastAddr := slow.Listener.Addr().String(), fast.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.Router.SetTargets(ctx, map[string]int{slowAddr: 100}))

	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(e.RemoteURL + "/")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-started // the request is in flight on the remote proxy
	done := make(chan error, 1)
	go func() { done <- e.Router.SetTargets(ctx, map[string]int{fastAddr: 100}) }()
	// The local proxy drains at once; the fan-out must wait for the remote's.
	select {
	case err := <-done:
		t.Fatalf("SetTargets returned (%v) while a request to the removed target was in flight", err)
	case <-waitTargets(ctx, e.Local, fastAddr):
	}
	close(release)
	require.NoError(t, <-done)
	require.NoError(t, <-got)
	assert.Equal(t, map[string]int{fastAddr: 100}, e.Remote.Targets())
}

// waitTargets is closed once rt routes to addr alone.
func waitTargets(ctx context.Context, rt deploy.WeightReporter, addr string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			if ts := rt.Targets(); len(ts) == 1 && ts[addr] > 0 {
				return
			}
			time.Sleep(5 * time.Millisecond) // poll the proxy's target set
		}
	}()
	return ch
}

// A router that fails fails the step: the deploy fails, names the router,
// and v1 serves on through the proxy that works.
func TestFailingRouterFailsTheStep(t *testing.T) {
	e := newEdges(t)
	b := backend(t)
	broken := &failing{fail: false}
	rt := &fanout.Router{Routers: []deploy.Router{e.Local, broken}, Names: []string{"local", "broken"}}
	d := deployer(b, rt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2, Strategy: rolling.Strategy{}})
	require.NoError(t, err)
	run := testenv.StartLoad(t, e.LocalURL, time.Minute)
	broken.fail = true
	res, err := d.Deploy(ctx, deploy.Request{Spec: spec("v2"), Count: 2, Strategy: rolling.Strategy{}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, errBroken), "error %v does not wrap the router's", err)
	assert.Contains(t, err.Error(), "router 1 (broken)")
	assert.NotEqual(t, deploy.StatusSucceeded, res.Status)
	deploytest.OnlyVersion(t, run, "v1", 50)
	deploytest.AssertNoFailures(t, run.Stop())
}

var errBroken = errors.New("edge proxy unreachable")

// failing is a router that fails every SetTargets once fail is set.
type failing struct{ fail bool }

func (f *failing) SetTargets(context.Context, map[string]int) error {
	if f.fail {
		return errBroken
	}
	return nil
}

// Two proxies, one target set.
func ExampleRouter() {
	local := proxy.New(proxy.Options{})
	defer local.CloseIdleConnections()
	other := proxy.New(proxy.Options{}) // in real use: control.Dial("/run/edge-b/cutover.sock")
	defer other.CloseIdleConnections()
	rt := fanout.New(local, other)
	if err := rt.SetTargets(context.Background(), map[string]int{"10.0.0.5:8080": 100}); err != nil {
		panic(err)
	}
	fmt.Println(local.Targets(), other.Targets())
	// Output: map[10.0.0.5:8080:100] map[10.0.0.5:8080:100]
}
