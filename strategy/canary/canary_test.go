package canary_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// steps marks a load epoch at every canary step and returns the epochs by step percent.
func steps(e *testenv.Env, run *deploytest.Load) func() map[int]int64 {
	var mu sync.Mutex
	epochs := map[int]int64{}
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.CanaryStep {
			mu.Lock()
			epochs[ev.Weight] = run.Mark()
			mu.Unlock()
		}
		if ev.Type == deploy.CanaryAnalysis {
			run.Mark() // the step's window closes with its verdict
		}
	})
	return func() map[int]int64 {
		mu.Lock()
		defer mu.Unlock()
		return epochs
	}
}

func total(m map[string]int64) int64 {
	n := int64(0)
	for _, v := range m {
		n += v
	}
	return n
}

func TestCanaryHealthyUnderLoad(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	run := deploytest.StartLoad(context.Background(), e.URL, deploytest.LoadOptions{Workers: 16, Duration: time.Minute, Max: 2_000_000})
	defer run.Stop()
	epochs := steps(e, run)
	// The 10% step lasts 2s and until the canary served 220 requests (about
	// 2,200 in all), however loaded the machine is.
	steps10and50 := []canary.Step{{Percent: 10, Machines: 1, Bake: 2 * time.Second}, {Percent: 50, Bake: time.Second}}
	res := e.MustDeploy(t, canary.Strategy{Steps: steps10and50, MaxBake: 50 * time.Second, Analysis: canary.Analysis{MinRequests: 220}}, "v2", 3)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.Equal(t, 2, res.Counts[deploy.CanaryStep])
	assert.Equal(t, 2, res.Counts[deploy.CanaryAnalysis])

	at10 := run.Epoch(epochs()[10])
	n := total(at10)
	share := float64(at10["v2"]) / float64(n)
	t.Logf("10%% step: canary served %d of %d requests (%.2f%%)", at10["v2"], n, 100*share)
	assert.GreaterOrEqual(t, n, int64(2000), "enough requests in the 10% step to judge the share")
	assert.InDelta(t, 0.10, share, 0.03)
	at50 := run.Epoch(epochs()[50])
	t.Logf("50%% step: canary served %d of %d requests", at50["v2"], total(at50))
	assert.InDelta(t, 0.50, float64(at50["v2"])/float64(total(at50)), 0.05)

	deploytest.OnlyVersion(t, run, "v2", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v2": 3}, e.Versions(t))
}

// flaky answers 500 to 3 of every 10 requests to "/", and counts them.
type flaky struct {
	n, failed atomic.Int64
	app       http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && f.n.Add(1)%10 < 3 {
		f.failed.Add(1)
		http.Error(w, "canary broke", http.StatusInternalServerError)
		return
	}
	f.app.ServeHTTP(w, r)
}

func TestCanaryErrorsAbortAtFirstStep(t *testing.T) {
	e := testenv.New(t)
	bad := &flaky{app: deploytest.App("v2")}
	e.Backend.Register("v2", bad)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	epochs := steps(e, run)
	res, err := e.Deploy(context.Background(), canary.Strategy{Bake: 30 * time.Second}, "v2", 3)
	require.Error(t, err)
	assert.ErrorIs(t, err, canary.ErrAnalysis)
	assert.ErrorIs(t, err, deploy.ErrAborted)
	assert.ErrorContains(t, err, "step 1 (10%)")
	assert.Equal(t, deploy.StatusRolledBack, res.Status)
	assert.Equal(t, 1, res.Counts[deploy.CanaryStep], "aborted at the first step")

	step := run.Epoch(epochs()[10])
	served := step["v2"] + step["(failed)"]
	t.Logf("10%% step: canary served %d of %d requests (%.1f%%), %d failed", served, total(step), 100*float64(served)/float64(total(step)), step["(failed)"])
	assert.LessOrEqual(t, float64(served)/float64(total(step)), 0.13)

	deploytest.OnlyVersion(t, run, "v1", 100) // afterwards all traffic goes to the old version
	lr := run.Stop()
	t.Logf("load: %s", lr)
	assert.Equal(t, bad.failed.Load(), lr.Failed, "the only failed requests are the canary's own 500s")
	for _, msg := range lr.Errors {
		assert.Contains(t, msg, "status 500: canary broke")
	}
	assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 3}, e.RoutedVersions(t))
}

func TestCanaryOneMachineStaysUp(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(context.Background(), 100))
	res := e.MustDeploy(t, canary.Strategy{Bake: 300 * time.Millisecond}, "v2", 1)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	deploytest.AssertNoFailures(t, run.Stop())
	assert.Equal(t, map[string]int{"v2": 1}, e.Versions(t))
}

func TestCanarySticky(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	gate := make(chan struct{})
	checked := make(chan struct{})
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.CanaryStep && ev.Weight == 10 {
			close(gate)
			<-checked // hold the step while the users are checked (the bake runs after)
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.Deploy(context.Background(), canary.Strategy{Bake: 100 * time.Millisecond, Steps: []canary.Step{{Percent: 10, Machines: 1}}}, "v2", 3)
		done <- err
	}()
	<-gate
	client := &http.Client{}
	seen := map[string]map[string]int{}
	onCanary := 0
	for u := range 100 {
		user := fmt.Sprintf("user-%d", u)
		seen[user] = map[string]int{}
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, e.URL, nil)
			req.Header.Set(testenv.StickyHeader, user)
			resp, err := client.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[user][strings.TrimSpace(string(b))]++
		}
		assert.Len(t, seen[user], 1, "%s saw one version: %v", user, seen[user])
		if seen[user]["v2"] > 0 {
			onCanary++
		}
	}
	close(checked)
	require.NoError(t, <-done)
	client.CloseIdleConnections()
	t.Logf("%d of 100 users on the canary", onCanary)
	assert.Greater(t, onCanary, 0)
	assert.Less(t, onCanary, 30)
}

func TestCanaryNeedsObserver(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	e.Deployer.Router = plainRouter{e.Proxy}
	_, err := e.Deploy(context.Background(), canary.Strategy{}, "v2", 1)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, "reports no traffic statistics")
}

type plainRouter struct{ deploy.Router }

// A router of one's own drives a canary by reporting deploy.StatsReporter's
// counters, here built with proxy.Histogram.Observe. This one reports that the canary answers in 2s where
// the old machines answer in 10ms, so the analysis rolls the canary back on
// latency: at p95, the highest percentile with 5 of the window's 100 canary
// requests above it.
func TestCanaryOwnObserver(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	e.Deployer.Router = newStatsRouter(e, func(old bool, _ int) []time.Duration {
		if old {
			return repeat(100, 10*time.Millisecond)
		}
		return repeat(100, 2*time.Second)
	})
	res, err := e.Deploy(context.Background(), oneStep, "v2", 2)
	require.ErrorIs(t, err, canary.ErrAnalysis)
	assert.ErrorContains(t, err, "p95 latency 2")
	assert.Equal(t, deploy.StatusRolledBack, res.Status)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
	assert.Equal(t, map[string]int{"v1": 2}, e.RoutedVersions(t))
}

// One slow request among a canary's first 51 does not fail it: with that few
// requests the analysis compares p90, not the slowest of them.
func TestCanaryOneSlowRequestPasses(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	var verdicts []string
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.CanaryAnalysis {
			verdicts = append(verdicts, ev.Message)
		}
	})
	e.Deployer.Router = newStatsRouter(e, func(old bool, seen int) []time.Duration {
		if old {
			return repeat(100, 10*time.Millisecond)
		}
		more := repeat(50, 10*time.Millisecond)
		if seen == 2 { // the first request after the step began is slow
			more = append(more, 2*time.Second)
		}
		return more
	})
	res := e.MustDeploy(t, oneStep, "v2", 2)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	require.Len(t, verdicts, 1)
	t.Log(verdicts[0])
}

// oneStep is a canary of one 10% step, judged every 20ms for 100ms.
var oneStep = canary.Strategy{Steps: []canary.Step{{Percent: 10}}, Bake: 100 * time.Millisecond, Analysis: canary.Analysis{Interval: 20 * time.Millisecond}}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// statsRouter routes through e's proxy and reports statistics of its own for the
// proxy's targets: at every call, each target serves the requests, with the
// latencies, that more returns for it; old tells the machines routed when the
// router was made, seen counts the calls the target was in (1 at the first).
type statsRouter struct {
	deploy.Router
	p     *proxy.Proxy
	more  func(old bool, seen int) []time.Duration
	old   map[string]bool
	mu    sync.Mutex
	seen  map[string]int
	stats map[string]proxy.TargetStats
}

func newStatsRouter(e *testenv.Env, more func(old bool, seen int) []time.Duration) *statsRouter {
	r := &statsRouter{Router: e.Proxy, p: e.Proxy, more: more, old: map[string]bool{}, seen: map[string]int{}, stats: map[string]proxy.TargetStats{}}
	for addr := range e.Proxy.Stats() {
		r.old[addr] = true
	}
	return r
}

func (r *statsRouter) RequestStats() (requests, errors map[string]uint64, latency map[string]map[time.Duration]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	requests, errors, latency = map[string]uint64{}, map[string]uint64{}, map[string]map[time.Duration]uint64{}
	for addr := range r.p.Stats() {
		r.seen[addr]++
		s := r.stats[addr]
		for _, d := range r.more(r.old[addr], r.seen[addr]) {
			s.Requests++
			s.Latency.Observe(d)
		}
		r.stats[addr] = s
		requests[addr], errors[addr], latency[addr] = s.Requests, s.Errors, s.Latency.Buckets()
	}
	return requests, errors, latency
}

// A step with too little traffic is held up to MaxBake, then passes on health alone.
func TestCanaryMaxBakeExtendsQuietStep(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	var stepAt, analysedAt time.Time
	var verdict string
	e.OnEvent(func(ev deploy.Event) {
		switch ev.Type {
		case deploy.CanaryStep:
			stepAt = ev.Time
		case deploy.CanaryAnalysis:
			analysedAt, verdict = ev.Time, ev.Message
		}
	})
	s := canary.Strategy{Steps: []canary.Step{{Percent: 10}}, Bake: 50 * time.Millisecond, MaxBake: 400 * time.Millisecond}
	res := e.MustDeploy(t, s, "v2", 2) // no load: the canary serves nothing
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.GreaterOrEqual(t, analysedAt.Sub(stepAt), 400*time.Millisecond, "held until MaxBake")
	assert.Contains(t, verdict, "no verdict on figures")
}
