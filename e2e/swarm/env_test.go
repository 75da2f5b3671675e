package swarme2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/proxy"
)

// env is one test's deploy environment on the swarm: a unique app, the proxy
// on 127.0.0.1:0, and a Deployer wired to both. Its parts are closed, and
// every service of its app removed, by t.Cleanup.
type env struct {
	Backend  *swarm.Backend
	Proxy    *proxy.Proxy
	URL      string
	App      string
	Deployer *deploy.Deployer
}

var appSeq atomic.Int64

// workerGone is set once a test stopped the worker: later tests skip.
var workerGone atomic.Bool

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if workerGone.Load() {
		t.Skip("the worker was stopped by an earlier test")
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	e := &env{Backend: sb, App: fmt.Sprintf("%s-%d-%d", name, os.Getpid(), appSeq.Add(1))}
	e.Proxy = proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	srv := httptest.NewServer(e.Proxy)
	e.URL = srv.URL
	e.Deployer = &deploy.Deployer{
		Backend:     sb,
		Router:      e.Proxy,
		Health:      health.HTTP{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: 45 * time.Second,
		OnEvent: func(ev deploy.Event) {
			if testing.Verbose() {
				t.Log(ev)
			}
		},
	}
	t.Cleanup(func() {
		srv.Close()
		e.Proxy.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := sb.DestroyAll(ctx, e.App); err != nil {
			t.Errorf("cleanup of app %s: %v", e.App, err)
		}
		if ms, err := sb.List(ctx, e.App); err != nil || len(ms) != 0 {
			t.Errorf("after cleanup, app %s has %d services (%v)", e.App, len(ms), err)
		}
	})
	return e
}

// Spec returns the app's spec for version, whose image answers the version.
func (e *env) Spec(version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: e.App, Image: image(version), Version: version, Port: 8080, StopTimeout: 5 * time.Second}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Deploy deploys version to count machines with s, timed.
func (e *env) Deploy(t *testing.T, s deploy.Strategy, version string, count int) (*deploy.Result, time.Duration, error) {
	t.Helper()
	start := time.Now()
	res, err := e.Deployer.Deploy(ctxFor(t, 3*time.Minute), deploy.Request{Spec: e.Spec(version), Count: count, Strategy: s})
	took := time.Since(start)
	if res != nil {
		t.Logf("%s deploy %s -> %s: %s in %v", res.Strategy, res.FromVersion, res.Version, res.Status, took.Round(time.Millisecond))
	}
	return res, took, err
}

// Load starts 16 clients sending the mixed load through the proxy (GETs,
// 200 ms requests, 64 KiB uploads and streams, which examples/app answers),
// bounded to 3 minutes, as the Docker end-to-end tests do.
func (e *env) Load(t *testing.T) *deploytest.Load {
	return testenv.StartLoadWith(t, e.URL, deploytest.LoadOptions{Workers: loadClients, Duration: 3 * time.Minute, Mixed: true})
}

// loadClients is how many clients Load runs.
const loadClients = 16

// Nodes returns, per version, how many of the app's machines run on each
// node ("manager", "worker").
func (e *env) Nodes(t *testing.T) map[string]map[string]int {
	t.Helper()
	ms, err := e.Backend.List(ctxFor(t, 30*time.Second), e.App)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int{}
	for _, m := range ms {
		v := m.Spec().Version
		if out[v] == nil {
			out[v] = map[string]int{}
		}
		out[v][nodeName(m.(*swarm.Machine).NodeID())]++
	}
	return out
}

func nodeName(id string) string {
	switch id {
	case cluster.ManagerNodeID:
		return "manager"
	case cluster.WorkerNodeID:
		return "worker"
	}
	return id
}

// nodesString formats a node count map in a stable order.
func nodesString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}
