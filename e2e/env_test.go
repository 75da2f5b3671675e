package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

// env is one test's deploy environment on the engine: a unique app, the
// proxy served on 127.0.0.1:0, and a Deployer wired to both. Its parts are
// closed, and every container of its app removed, by t.Cleanup.
type env struct {
	Backend  *docker.Backend
	Proxy    *proxy.Proxy
	URL      string
	App      string
	Deployer *deploy.Deployer
}

var appSeq atomic.Int64

// engine skips the test when the engine is unreachable outside CI.
func engine(t *testing.T) *docker.Backend {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return engineBackend
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := engine(t)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", ",", "", " ", "-").Replace(t.Name()))
	e := &env{Backend: b, App: fmt.Sprintf("%s-%d-%d", name, os.Getpid(), appSeq.Add(1))}
	e.Proxy = proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	srv := httptest.NewServer(e.Proxy)
	e.URL = srv.URL
	e.Deployer = &deploy.Deployer{
		Backend:     b,
		Router:      e.Proxy,
		Health:      health.HTTP{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: 30 * time.Second,
		OnEvent: func(ev deploy.Event) {
			if testing.Verbose() {
				t.Log(ev)
			}
		},
	}
	t.Cleanup(func() {
		srv.Close()
		e.Proxy.CloseIdleConnections()
		// Every container the test made goes, whatever happened, and none may remain.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := b.DestroyAll(ctx, e.App); err != nil {
			t.Errorf("cleanup of app %s: %v", e.App, err)
		}
		if ms, err := b.List(ctx, e.App); err != nil || len(ms) != 0 {
			t.Errorf("after cleanup, app %s has %d containers (%v)", e.App, len(ms), err)
		}
	})
	return e
}

// Spec returns the app's spec for version ("v1" or "v2"), whose image answers the version.
func (e *env) Spec(version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: e.App, Image: image(version), Version: version, Port: 8080, StopTimeout: 5 * time.Second}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// MustDeploy deploys version to count machines with s and fails the test on error.
func (e *env) MustDeploy(t *testing.T, s deploy.Strategy, version string, count int) *deploy.Result {
	t.Helper()
	start := time.Now()
	res, err := e.Deployer.Deploy(ctxFor(t, 2*time.Minute), deploy.Request{Spec: e.Spec(version), Count: count, Strategy: s})
	if err != nil {
		t.Fatalf("deploy %s: %v", version, err)
	}
	t.Logf("%s deploy %s -> %s: %s in %v", res.Strategy, res.FromVersion, res.Version, res.Status, time.Since(start).Round(time.Millisecond))
	return res
}

// Start deploys v1 to 3 machines and starts 8 clients sending requests
// through the proxy; it returns once they got 50 answers.
func (e *env) Start(t *testing.T) *deploytest.Load {
	t.Helper()
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	return e.Load(t)
}

// Load starts 8 clients sending requests through the proxy, bounded to 3
// minutes, and returns once 50 requests completed.
func (e *env) Load(t *testing.T) *deploytest.Load { return testenv.StartLoad(t, e.URL, 3*time.Minute) }

// Versions returns how many containers of the app run each version, as the
// engine lists them (any state but removed; release-command containers as "release_command").
func (e *env) Versions(t *testing.T) map[string]int {
	t.Helper()
	ms, err := e.Backend.List(ctxFor(t, 30*time.Second), e.App)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range ms {
		if m.Spec().Labels[deploy.LabelRole] == "release_command" {
			out["release_command"]++
			continue
		}
		out[m.Spec().Version]++
	}
	return out
}

// RoutedVersions returns the versions of the containers the proxy routes to, by weight.
func (e *env) RoutedVersions(t *testing.T) map[string]int {
	return testenv.RoutedVersions(t, e.Backend, e.App, e.Proxy)
}

func wantVersions(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// settle waits until 100 requests sent from now on got an answer (or
// failed), stops the load and fails the test if any request failed. It
// returns the epoch of those requests.
func settle(t *testing.T, r *deploytest.Load) int64 {
	t.Helper()
	after := r.Mark()
	if err := r.WaitEpoch(ctxFor(t, 20*time.Second), after, 100); err != nil {
		t.Fatal(err)
	}
	testenv.AssertNoFailures(t, r.Stop())
	return after
}

// wantOnly checks that version alone answered the requests of epoch after,
// and that the app's containers are 3 of version, all routed.
func (e *env) wantOnly(t *testing.T, r *deploytest.Load, after int64, version string) {
	t.Helper()
	if got := r.Epoch(after); got[version] == 0 || len(got) != 1 {
		t.Errorf("after the deploy, served by %v; want %s only", got, version)
	}
	want := map[string]int{version: 3}
	wantVersions(t, "containers", e.Versions(t), want)
	wantVersions(t, "routed", e.RoutedVersions(t), want)
}
