// Package backendtest is the conformance suite every deploy.Backend passes,
// in the manner of gocloud.dev's drivertest: a backend's own test builds a
// Harness and calls Run.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/deploy"
)

// Harness is what the suite needs from a backend.
type Harness struct {
	Backend deploy.Backend
	// Serve returns a spec whose app serves HTTP on its port: GET / answers 200
	// with a body containing version, and the app exits 0 on its stop signal.
	Serve func(app, version string) deploy.MachineSpec
	// Stubborn returns a spec whose app ignores its stop signal, with the given
	// stop timeout, so that a stop ends in a kill (exit code 137).
	Stubborn func(app string, stopTimeout time.Duration) deploy.MachineSpec
	// Exit returns a spec whose command override prints line and exits with code.
	Exit func(app, line string, code int) deploy.MachineSpec
	// Boot returns a spec whose app behaves as b says while it boots, and
	// serves as Serve's app once it listens. Nil skips the real-app cases.
	Boot func(app string, b Boot) deploy.MachineSpec
	// Timeout bounds each operation that must finish (start, stop, ...); 0 means 60s.
	Timeout time.Duration
	// CheckAddr says what is wrong with a started machine's Addr, or nil.
	// Nil: the address must be "127.0.0.1:<port>" (a backend on one host);
	// a backend across hosts (swarm) checks its nodes' addresses instead.
	CheckAddr func(addr string) error
}

// Boot describes how an app behaves between its start and the moment it
// serves, as real apps do. The zero value listens at once.
type Boot struct {
	ListenAfter time.Duration // the app listens only this long after it starts
	NeverListen bool          // the app never listens
	CloseConns  bool          // the app accepts every connection and closes it at once
	ExitAfter   time.Duration // the app exits this long after it starts, before it listens
	ExitCode    int           // with ExitAfter: the exit code
}

// Run runs the suite. Apps are named after the test, so a backend shared
// between tests keeps them apart; every machine a test makes is destroyed.
func Run(t *testing.T, h Harness) {
	if h.Timeout <= 0 {
		h.Timeout = time.Minute
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness, string)
	}{
		{"LaunchServesHTTP", testLaunchServes},
		{"ListByApp", testList},
		{"GetMissingIsNotFound", testGetMissing},
		{"GracefulStopExitsZero", testGracefulStop},
		{"StopPastTimeoutKills", testStopKills},
		{"StopWithEndedContextKills", testStopEndedContext},
		{"DestroyTwice", testDestroyTwice},
		{"CancelledContextReturnsPromptly", testCancelled},
		{"ConcurrentLaunches", testConcurrent},
		{"Logs", testLogs},
		{"CommandOverrideExitCode", testExitCode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := "bt-" + strings.ToLower(tc.name)
			tc.fn(t, h, app)
		})
	}
	// Apps that behave as real ones do while they boot. Each case waits
	// seconds, mostly idle, so they run in parallel (and all end here).
	realApps := []struct {
		name string
		fn   func(*testing.T, Harness, string)
	}{
		{"ReadyOnlyOnceListeningLate", testListensLate},
		{"NotReadyWhenConnectionsClose", testClosesConns},
		{"NotReadyWhenNeverListening", testNeverListens},
		{"ExitDuringBootFailsWaitAtOnce", testExitsDuringBoot},
	}
	t.Run("RealApps", func(t *testing.T) {
		if h.Boot == nil {
			t.Skip("Harness.Boot is nil")
		}
		for _, tc := range realApps {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, h, "bt-"+strings.ToLower(tc.name))
			})
		}
	})
}

func ctxFor(t *testing.T, h Harness) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// launch creates and starts a machine and destroys it when the test ends.
func launch(t *testing.T, h Harness, spec deploy.MachineSpec) deploy.Machine {
	t.Helper()
	ctx := ctxFor(t, h)
	m, err := h.Backend.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := m.Destroy(ctx); err != nil && !errors.Is(err, deploy.ErrNotFound) {
			t.Errorf("cleanup: destroy %s: %v", m.ID(), err)
		}
	})
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", m.ID(), err)
	}
	return m
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// get polls GET / until it answers 200 (apps take a moment to listen) or the timeout.
func get(t *testing.T, h Harness, m deploy.Machine) string {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + m.Addr() + "/")
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				return string(b)
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(20 * time.Millisecond) // the app is booting; poll again
	}
	t.Fatalf("machine %s at %s never answered: %v", m.ID(), m.Addr(), last)
	return ""
}

func testLaunchServes(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Serve(app, "v1"))
	if h.CheckAddr != nil {
		if err := h.CheckAddr(m.Addr()); err != nil {
			t.Errorf("address %q: %v", m.Addr(), err)
		}
	} else if !strings.HasPrefix(m.Addr(), "127.0.0.1:") {
		t.Errorf("address %q: want 127.0.0.1:port", m.Addr())
	}
	if body := get(t, h, m); !strings.Contains(body, "v1") {
		t.Errorf("body %q does not contain the version", body)
	}
	if st := m.State(); st != deploy.StateStarted {
		t.Errorf("state %s, want started", st)
	}
	if m.Spec().App != app {
		t.Errorf("spec app %q, want %q", m.Spec().App, app)
	}
}

func testList(t *testing.T, h Harness, app string) {
	a := launch(t, h, h.Serve(app, "v1"))
	b := launch(t, h, h.Serve(app, "v1"))
	launch(t, h, h.Serve(app+"-other", "v1"))
	ms, err := h.Backend.List(ctxFor(t, h), app)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range ms {
		got[m.ID()] = true
		if m.Spec().App != app {
			t.Errorf("listed machine %s of app %q", m.ID(), m.Spec().App)
		}
	}
	if len(ms) != 2 || !got[a.ID()] || !got[b.ID()] {
		t.Errorf("list %s: got %v, want %s and %s", app, got, a.ID(), b.ID())
	}
	m, err := h.Backend.Get(ctxFor(t, h), a.ID())
	if err != nil {
		t.Fatalf("get %s: %v", a.ID(), err)
	}
	if m.Addr() != a.Addr() {
		t.Errorf("get: address %q, want %q", m.Addr(), a.Addr())
	}
}

func testGetMissing(t *testing.T, h Harness, _ string) {
	_, err := h.Backend.Get(ctxFor(t, h), "no-such-machine-0123456789")
	if !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("get missing: %v, want ErrNotFound", err)
	}
}

// stopServing launches spec, waits until it serves, stops it and returns its
// exit and how long Stop and Wait took.
func stopServing(t *testing.T, h Harness, spec deploy.MachineSpec) (deploy.Machine, deploy.ExitStatus, time.Duration) {
	t.Helper()
	m := launch(t, h, spec)
	get(t, h, m)
	ctx := ctxFor(t, h)
	start := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	st, err := m.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return m, st, time.Since(start)
}

func testGracefulStop(t *testing.T, h Harness, app string) {
	m, st, _ := stopServing(t, h, h.Serve(app, "v1"))
	if st.Code != 0 {
		t.Errorf("graceful stop: %s, want exit code 0", st)
	}
	if s := m.State(); s != deploy.StateStopped {
		t.Errorf("state %s, want stopped", s)
	}
}

func testStopKills(t *testing.T, h Harness, app string) {
	_, st, took := stopServing(t, h, h.Stubborn(app, time.Second))
	if st.Code != 137 {
		t.Errorf("stop past timeout: %s, want exit code 137 (killed)", st)
	}
	if took < 900*time.Millisecond {
		t.Errorf("killed after %s, before the 1s stop timeout", took)
	}
}

// A Stop given a context that has already ended kills the machine at once
// (ctx bounds the grace, not the stop) and returns ctx's error.
func testStopEndedContext(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Stubborn(app, time.Minute))
	get(t, h, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := m.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("stop with an ended ctx: %v, want context.Canceled", err)
	}
	st, err := m.Wait(ctxFor(t, h))
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if st.Code != 137 {
		t.Errorf("stop with an ended ctx: %s, want exit code 137 (killed)", st)
	}
	if took := time.Since(start); took > h.Timeout/2 {
		t.Errorf("stop with an ended ctx took %s", took)
	}
	if s := m.State(); s != deploy.StateStopped {
		t.Errorf("state %s, want stopped", s)
	}
}

func testDestroyTwice(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Serve(app, "v1"))
	ctx := ctxFor(t, h)
	if err := m.Destroy(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Fatalf("destroy again: %v", err)
	}
	if _, err := h.Backend.Get(ctx, m.ID()); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("get destroyed: %v, want ErrNotFound", err)
	}
	ms, err := h.Backend.List(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 0 {
		t.Errorf("list after destroy: %d machines", len(ms))
	}
}

func testCancelled(t *testing.T, h Harness, app string) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if _, err := h.Backend.Create(ctx, h.Serve(app, "v1")); err == nil {
		t.Error("create with a cancelled ctx succeeded")
	}
	if _, err := h.Backend.List(ctx, app); err == nil {
		t.Error("list with a cancelled ctx succeeded")
	}
	m := launch(t, h, h.Serve(app, "v1"))
	if _, err := m.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled ctx: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > h.Timeout/2 {
		t.Errorf("cancelled calls took %s", took)
	}
	ms, err := h.Backend.List(ctxFor(t, h), app)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Errorf("a cancelled create left %d machines, want only the launched one", len(ms)-1)
	}
}

func testConcurrent(t *testing.T, h Harness, app string) {
	const n = 4
	ms := make([]deploy.Machine, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	ctx := ctxFor(t, h)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := h.Backend.Create(ctx, h.Serve(app, "v1"))
			if err == nil {
				ms[i] = m
				err = m.Start(ctx)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range ms {
			if m != nil {
				_ = m.Destroy(context.Background())
			}
		}
	})
	if len(errs) > 0 {
		t.Fatalf("concurrent launches: %v", errors.Join(errs...))
	}
	addrs := map[string]bool{}
	for _, m := range ms {
		get(t, h, m)
		addrs[m.Addr()] = true
	}
	if len(addrs) != n {
		t.Errorf("%d distinct addresses for %d machines", len(addrs), n)
	}
}

func testLogs(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Exit(app, "hello from the machine", 0))
	lr, ok := m.(deploy.LogReader)
	if !ok {
		t.Skip("backend machines do not implement deploy.LogReader")
	}
	ctx := ctxFor(t, h)
	rc, err := lr.Logs(ctx, true) // follow: ends when the machine exits
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("follow logs: %v", err)
	}
	if !strings.Contains(string(out), "hello from the machine") {
		t.Errorf("followed logs %q lack the line", out)
	}
	if _, err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err = lr.Logs(ctx, false) // tail of an exited machine
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(out), "hello from the machine") {
		t.Errorf("logs %q lack the line", out)
	}
}

func testExitCode(t *testing.T, h Harness, app string) {
	for _, code := range []int{0, 3} {
		m := launch(t, h, h.Exit(app, "exiting", code))
		st, err := m.Wait(ctxFor(t, h))
		if err != nil {
			t.Fatal(err)
		}
		if st.Code != code {
			t.Errorf("command exit: %s, want code %d", st, code)
		}
	}
}

// The readiness checks a deploy can rely on: the default one, the TCP one
// (deploy.DialCheck, which health.TCP is) and an HTTP check that wants any answer.
var readiness = []struct {
	name string
	hc   deploy.HealthChecker
}{
	{"DefaultCheck", deploy.DefaultCheck{}},
	{"DialCheck", deploy.DialCheck{}},
	{"HTTPReadyCheck", deploy.HTTPReadyCheck{}},
}

// An app that listens 2s after it starts is not ready before: every readiness
// check fails at first (whatever a port forwarder in front of it does), then
// passes once it listens, and the first request after that is answered.
func testListensLate(t *testing.T, h Harness, app string) {
	const late = 2 * time.Second
	m := launch(t, h, h.Boot(app, Boot{ListenAfter: late}))
	started := time.Now()
	for _, c := range readiness {
		if err := c.hc.Check(ctxFor(t, h), m); err == nil && time.Since(started) < late/2 {
			t.Errorf("%s passed %s after start, before the app listens (%s after start)", c.name, time.Since(started).Round(time.Millisecond), late)
		}
	}
	ctx := ctxFor(t, h)
	if err := deploy.WaitHealthy(ctx, m, deploy.DefaultCheck{}); err != nil {
		t.Fatalf("wait for readiness: %v", err)
	}
	if took := time.Since(started); took < late/2 {
		t.Errorf("ready %s after start; the app listens only %s after it", took.Round(time.Millisecond), late)
	}
	resp, err := client.Get("http://" + m.Addr() + "/") // once, no retry: ready means it answers
	if err != nil {
		t.Fatalf("first request once ready: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("first request once ready: status %d", resp.StatusCode)
	}
	for _, c := range readiness {
		if err := c.hc.Check(ctx, m); err != nil {
			t.Errorf("%s once the app listens: %v", c.name, err)
		}
	}
}

// waitFails checks that a wait of 2s for every readiness check ends in ErrUnhealthy.
func waitFails(t *testing.T, h Harness, m deploy.Machine) {
	t.Helper()
	var wg sync.WaitGroup
	for _, c := range readiness {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := deploy.WaitHealthy(ctx, m, c.hc)
			cancel()
			if !errors.Is(err, deploy.ErrUnhealthy) {
				t.Errorf("%s: wait: %v, want ErrUnhealthy", c.name, err)
				return
			}
			t.Logf("%s: %v", c.name, err)
		}()
	}
	wg.Wait()
	if st := m.State(); st != deploy.StateStarted {
		t.Errorf("state %s, want started", st)
	}
}

// An app that accepts every connection and closes it at once is never ready.
func testClosesConns(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Boot(app, Boot{CloseConns: true}))
	waitFails(t, h, m)
}

// An app that never listens is never ready.
func testNeverListens(t *testing.T, h Harness, app string) {
	m := launch(t, h, h.Boot(app, Boot{NeverListen: true}))
	waitFails(t, h, m)
}

// An app that exits while it boots fails the wait as soon as it exits, with
// ErrExited, not at the wait's end, and its exit code is kept.
func testExitsDuringBoot(t *testing.T, h Harness, app string) {
	spec := h.Boot(app, Boot{ExitAfter: 500 * time.Millisecond, ExitCode: 3})
	// Not restarted (the default policy restarts it), so its exit code is the one seen.
	spec.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	m := launch(t, h, spec)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctxFor(t, h), h.Timeout/2)
	defer cancel()
	err := deploy.WaitHealthy(ctx, m, deploy.DefaultCheck{})
	if !errors.Is(err, deploy.ErrExited) {
		t.Fatalf("wait: %v, want ErrExited", err)
	}
	if took := time.Since(start); took > h.Timeout/4 {
		t.Errorf("wait ended %s after start; the app exited after 500ms", took)
	}
	st, err := m.Wait(ctxFor(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 {
		t.Errorf("exit during boot: %s, want code 3", st)
	}
}
