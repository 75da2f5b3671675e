// Package testenv assembles the real parts for deploy tests: an in-memory
// backend whose images v1..v9 serve their version, the proxy behind an HTTP
// server on loopback, and a Deployer wired to both.
package testenv

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
)

// App is the app name every Env deploys.
const App = "app"

// StickyHeader is the header the Env's proxy pins requests by.
const StickyHeader = "X-User"

// Env is one test's deploy environment. Its parts are closed by t.Cleanup.
type Env struct {
	Backend  *mem.Backend
	Proxy    *proxy.Proxy
	URL      string // the proxy's base URL
	Deployer *deploy.Deployer
	// StopTimeout is the stop timeout of the specs Spec returns; New sets 5s.
	StopTimeout time.Duration

	mu     sync.Mutex
	events []deploy.Event
	hook   func(deploy.Event)
}

// OnEvent calls f for every later event, in the deploying goroutine.
func (e *Env) OnEvent(f func(deploy.Event)) {
	e.mu.Lock()
	e.hook = f
	e.mu.Unlock()
}

// New builds an Env. Health checks poll /health every 20ms; the wait timeout is 10s.
func New(t testing.TB) *Env {
	t.Helper()
	e := &Env{Backend: mem.New(), StopTimeout: 5 * time.Second}
	for i := 1; i <= 9; i++ {
		v := fmt.Sprintf("v%d", i)
		e.Backend.Register(v, deploytest.App(v))
	}
	e.Proxy = proxy.New(proxy.Options{DrainTimeout: 10 * time.Second, StickyHeader: StickyHeader})
	srv := httptest.NewServer(e.Proxy)
	e.URL = srv.URL
	e.Deployer = &deploy.Deployer{
		Backend:     e.Backend,
		Router:      e.Proxy,
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: 10 * time.Second,
		OnEvent: func(ev deploy.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			hook := e.hook
			e.mu.Unlock()
			if hook != nil {
				hook(ev)
			}
			if testing.Verbose() {
				t.Log(ev)
			}
		},
	}
	t.Cleanup(func() {
		srv.Close()
		e.Backend.Close()
		e.Proxy.CloseIdleConnections()
	})
	return e
}

// Spec returns the app's spec for version ("v1".."v9"), whose image is the version.
func (e *Env) Spec(version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: App, Image: version, Version: version, StopTimeout: e.StopTimeout}
}

// Deploy deploys version with s to count machines.
func (e *Env) Deploy(ctx context.Context, s deploy.Strategy, version string, count int) (*deploy.Result, error) {
	return e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec(version), Count: count, Strategy: s})
}

// MustDeploy deploys and fails the test on error.
func (e *Env) MustDeploy(t testing.TB, s deploy.Strategy, version string, count int) *deploy.Result {
	t.Helper()
	res, err := e.Deploy(context.Background(), s, version, count)
	if err != nil {
		t.Fatalf("deploy %s: %v", version, err)
	}
	return res
}

// Load starts 8 clients sending requests through the proxy; see StartLoad.
func (e *Env) Load(t testing.TB) *deploytest.Load { return StartLoad(t, e.URL, time.Minute) }

// StartLoad starts 8 clients sending requests to url, bounded to limit and
// 5,000,000 requests, and returns once 50 requests completed; t.Cleanup stops
// it if the test does not.
func StartLoad(t testing.TB, url string, limit time.Duration) *deploytest.Load {
	t.Helper()
	return StartLoadWith(t, url, deploytest.LoadOptions{Workers: 8, Duration: limit})
}

// StartLoadWith is StartLoad with options of its own (Workers, Duration,
// Mixed), bounded to 5,000,000 requests.
func StartLoadWith(t testing.TB, url string, opts deploytest.LoadOptions) *deploytest.Load {
	t.Helper()
	opts.Max = 5_000_000
	r := deploytest.StartLoad(context.Background(), url, opts)
	t.Cleanup(func() { r.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.WaitRequests(ctx, 50); err != nil {
		t.Fatal(err)
	}
	return r
}

// Versions returns how many live machines of the app run each version.
func (e *Env) Versions(t testing.TB) map[string]int {
	t.Helper()
	out, err := deploytest.Versions(context.Background(), e.Backend, App)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RoutedVersions returns the versions of the machines the proxy routes to, by weight.
func (e *Env) RoutedVersions(t testing.TB) map[string]int {
	return RoutedVersions(t, e.Backend, App, e.Proxy)
}

// RoutedVersions is deploytest.RoutedVersions that fails t on error.
func RoutedVersions(t testing.TB, b deploy.Backend, app string, rt deploy.WeightReporter) map[string]int {
	t.Helper()
	out, err := deploytest.RoutedVersions(context.Background(), b, app, rt)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Events returns the events seen so far.
func (e *Env) Events() []deploy.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]deploy.Event(nil), e.events...)
}
