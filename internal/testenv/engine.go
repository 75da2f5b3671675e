package testenv

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
)

// Sweeper is a backend that removes every machine of an app (the Docker and
// swarm backends).
type Sweeper interface {
	deploy.Backend
	DestroyAll(ctx context.Context, app string) (int, error)
}

// EngineOptions configure an Engine env. Image is required.
type EngineOptions struct {
	// Image names the image of a version; the app answers the version.
	Image func(version string) string
	// WaitTimeout is the Deployer's; 0 means 30s.
	WaitTimeout time.Duration
	// DeployTimeout bounds each Deploy; 0 means 2 minutes.
	DeployTimeout time.Duration
	// SweepTimeout bounds the removal of the app's machines at cleanup; 0 means 1 minute.
	SweepTimeout time.Duration
}

// Engine is one end-to-end test's deploy environment on a real backend: a
// unique app, the proxy served on 127.0.0.1:0, and a Deployer wired to both.
// Its parts are closed, and every machine of its app removed (the test fails
// if one remains), by t.Cleanup.
type Engine struct {
	Backend  Sweeper
	Proxy    *proxy.Proxy
	URL      string
	App      string
	Deployer *deploy.Deployer
	opts     EngineOptions
}

var appSeq atomic.Int64

// NewEngine builds an Engine env on b. Health checks poll /health every 50ms.
func NewEngine(t *testing.T, b Sweeper, opts EngineOptions) *Engine {
	t.Helper()
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 30 * time.Second
	}
	if opts.DeployTimeout <= 0 {
		opts.DeployTimeout = 2 * time.Minute
	}
	if opts.SweepTimeout <= 0 {
		opts.SweepTimeout = time.Minute
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", ",", "", " ", "-").Replace(t.Name()))
	e := &Engine{Backend: b, App: fmt.Sprintf("%s-%d-%d", name, os.Getpid(), appSeq.Add(1)), opts: opts}
	e.Proxy = proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	srv := httptest.NewServer(e.Proxy)
	e.URL = srv.URL
	e.Deployer = &deploy.Deployer{
		Backend:     b,
		Router:      e.Proxy,
		Health:      health.HTTP{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: opts.WaitTimeout,
		OnEvent: func(ev deploy.Event) {
			if testing.Verbose() {
				t.Log(ev)
			}
		},
	}
	t.Cleanup(func() {
		srv.Close()
		e.Proxy.CloseIdleConnections()
		// Every machine the test made goes, whatever happened, and none may remain.
		ctx, cancel := context.WithTimeout(context.Background(), opts.SweepTimeout)
		defer cancel()
		if _, err := b.DestroyAll(ctx, e.App); err != nil {
			t.Errorf("cleanup of app %s: %v", e.App, err)
		}
		if ms, err := b.List(ctx, e.App); err != nil || len(ms) != 0 {
			t.Errorf("after cleanup, app %s has %d machines (%v)", e.App, len(ms), err)
		}
	})
	return e
}

// Spec returns the app's spec for version, on port 8080.
func (e *Engine) Spec(version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: e.App, Image: e.opts.Image(version), Version: version, Port: 8080, StopTimeout: 5 * time.Second}
}

// Deploy deploys version to count machines with s within DeployTimeout,
// logs the outcome and returns how long it took.
func (e *Engine) Deploy(t *testing.T, s deploy.Strategy, version string, count int) (*deploy.Result, time.Duration, error) {
	t.Helper()
	start := time.Now()
	res, err := e.Deployer.Deploy(CtxFor(t, e.opts.DeployTimeout), deploy.Request{Spec: e.Spec(version), Count: count, Strategy: s})
	took := time.Since(start)
	if res != nil {
		t.Logf("%s deploy %s -> %s: %s in %v", res.Strategy, res.FromVersion, res.Version, res.Status, took.Round(time.Millisecond))
	}
	return res, took, err
}

// MustDeploy is Deploy that fails the test on error.
func (e *Engine) MustDeploy(t *testing.T, s deploy.Strategy, version string, count int) *deploy.Result {
	t.Helper()
	res, _, err := e.Deploy(t, s, version, count)
	if err != nil {
		t.Fatalf("deploy %s: %v", version, err)
	}
	return res
}

// RoutedVersions returns the versions of the machines the proxy routes to, by weight.
func (e *Engine) RoutedVersions(t testing.TB) map[string]int {
	return RoutedVersions(t, e.Backend, e.App, e.Proxy)
}

// CtxFor returns a context that ends after d or with the test.
func CtxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
