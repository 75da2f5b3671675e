package e2e

import (
	"maps"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/rolling"
)

// env is one test's deploy environment on the engine (testenv.Engine): a
// unique app, the proxy on 127.0.0.1:0, and a Deployer wired to both, with
// every container of its app removed by t.Cleanup.
type env struct{ *testenv.Engine }

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
	return &env{testenv.NewEngine(t, engine(t), testenv.EngineOptions{Image: image})}
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
	ms, err := e.Backend.List(testenv.CtxFor(t, 30*time.Second), e.App)
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
	if err := r.WaitEpoch(testenv.CtxFor(t, 20*time.Second), after, 100); err != nil {
		t.Fatal(err)
	}
	deploytest.AssertNoFailures(t, r.Stop())
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
