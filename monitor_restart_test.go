package deploy_test

import (
	"bytes"
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

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/rolling"
)

// countingApp is one machine's app: deploytest's App for its version plus
// /stream, counting the requests that reached it: started and still in flight.
type countingApp struct {
	started, inFlight atomic.Int64
	h                 http.Handler
}

func newCountingApp(spec deploy.MachineSpec) http.Handler {
	a := &countingApp{}
	mux := http.NewServeMux()
	mux.Handle("/", deploytest.App(spec.Version))
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 5 { // five chunks over 100ms
			fmt.Fprintf(w, "%s chunk %d\n", spec.Version, i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	a.h = mux
	return a
}

func (a *countingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.started.Add(1)
	a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	if r.Method == http.MethodPost {
		if _, err := io.Copy(io.Discard, r.Body); err != nil { // an upload
			return
		}
	}
	a.h.ServeHTTP(w, r)
}

// mixedLoad sends, from 16 clients, a mix of quick GETs, 200ms requests,
// 64 KiB uploads and streams through the proxy, until stopped (bounded to
// 2 minutes). Failures are timestamped.
type mixedLoad struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	ok       atomic.Int64
	mu       sync.Mutex
	failures []failure
}

type failure struct {
	at  time.Time
	err string
}

func startMixedLoad(t *testing.T, url string) *mixedLoad {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	l := &mixedLoad{cancel: cancel}
	client := &http.Client{Timeout: 10 * time.Second}
	upload := bytes.Repeat([]byte("u"), 64<<10)
	for w := range 16 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var req *http.Request
				switch (w + i) % 4 {
				case 0:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
				case 1:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url+"/slow?ms=200", nil)
				case 2:
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, url+"/", bytes.NewReader(upload))
				case 3:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url+"/stream", nil)
				}
				err := do(client, req)
				if ctx.Err() != nil {
					return // cut by the end of the run, not a failure
				}
				if err != nil {
					l.mu.Lock()
					l.failures = append(l.failures, failure{at: time.Now(), err: err.Error()})
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func do(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func (l *mixedLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// failedSince returns the failures at or after t.
func (l *mixedLoad) failedSince(t time.Time) []failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []failure
	for _, f := range l.failures {
		if !f.at.Before(t) {
			out = append(out, f)
		}
	}
	return out
}

// waitOK waits for n more successful requests.
func (l *mixedLoad) waitOK(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	require.Eventually(t, func() bool { return l.ok.Load() >= want }, 30*time.Second, time.Millisecond)
}

// waitFor returns the monitor's first event of type typ (others are logged;
// "" takes any), failing after 20s.
func waitFor(t *testing.T, events <-chan deploy.Event, typ deploy.EventType) deploy.Event {
	t.Helper()
	return waitForMachine(t, events, typ, "")
}

// waitForMachine is waitFor for the events of one machine ("" any): under
// load the checks of the others can time out, and their events come too.
func waitForMachine(t *testing.T, events <-chan deploy.Event, typ deploy.EventType, id string) deploy.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			t.Log("monitor:", ev)
			if (ev.Type == typ || typ == "") && (id == "" || ev.Machine == id) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 20s", typ)
			return deploy.Event{}
		}
	}
}

// killUnderLoad deploys 3 machines of spec behind a Monitor, runs the mixed
// load, kills one routed machine abruptly (as SIGKILL), and returns what the
// test needs to check its recovery.
func killUnderLoad(t *testing.T, restart deploy.RestartPolicy, kill func(*testing.T, *testenv.Env, string)) (e *testenv.Env, mon *deploy.Monitor, events chan deploy.Event, load *mixedLoad, victim string, inFlight int, killed time.Time) {
	e = testenv.New(t)
	e.Backend.RegisterPerMachine("v1", newCountingApp)
	events = make(chan deploy.Event, 64)
	mon = &deploy.Monitor{
		Router: e.Proxy, Backend: e.Backend, App: testenv.App,
		Health:   health.HTTP{Path: "/health", Timeout: 500 * time.Millisecond},
		Interval: 20 * time.Millisecond,
		OnEvent:  func(ev deploy.Event) { events <- ev },
		Replace:  true,
		Lock:     e.Deployer.Lock,
	}
	e.Deployer.Router = mon
	deploytest.RunMonitor(t, mon)

	spec := e.Spec("v1")
	spec.Restart = restart
	res, err := e.Deployer.Deploy(context.Background(), deploy.Request{Spec: spec, Count: 3, Strategy: rolling.Strategy{}})
	require.NoError(t, err)
	load = startMixedLoad(t, e.URL)
	load.waitOK(t, 200)

	victim = res.Machines[1]
	vm, err := e.Backend.Machine(victim)
	require.NoError(t, err)
	addr := vm.Addr()
	st0 := e.Proxy.Stats()[addr]
	app := vm.Handler().(*countingApp) // the killed run's, even once a restart made another
	startedBefore, inFlightBefore := app.started.Load(), app.inFlight.Load()
	killed = time.Now()
	kill(t, e, victim)
	startedAfter := app.started.Load()
	st1 := e.Proxy.Stats()[addr]
	// What the proxy had in flight on it, or sent to it while it was being
	// killed (unknown if the monitor removed it meanwhile, which drops its
	// figures); the app's own count is logged beside it.
	inFlight = int(st0.InFlight)
	if st1.Requests >= st0.Requests {
		inFlight += int(st1.Requests - st0.Requests)
	}
	t.Logf("in flight on %s when killed: %d as the proxy counts, %d as the app counts", victim, inFlight, inFlightBefore+startedAfter-startedBefore)
	return e, mon, events, load, victim, inFlight, killed
}

func sigkill(t *testing.T, e *testenv.Env, id string) {
	m, err := e.Backend.Machine(id)
	require.NoError(t, err)
	m.Kill()
}

// A routed machine killed under mixed load is restarted by the backend (its
// restart policy, on a new port); the Monitor follows it to its new address
// and readmits it once it passes its checks. Only the requests in flight on it
// when it died fail, and the app keeps its three machines in traffic.
func TestMonitorReadmitsRestartedMachine(t *testing.T) {
	e, mon, events, load, victim, inFlight, killed := killUnderLoad(t, deploy.RestartPolicy{}, sigkill)
	m, err := e.Backend.Machine(victim)
	require.NoError(t, err)
	oldAddr := mon.Targets()
	waitForMachine(t, events, deploy.MachineRestarted, victim)
	waitForMachine(t, events, deploy.MachineHealthy, victim)
	readmitted := time.Now()

	assert.Equal(t, 1, m.Restarts())
	assert.NotContains(t, oldAddr, m.Addr(), "restarted on a new port")
	assert.Contains(t, e.Proxy.Targets(), m.Addr(), "readmitted at its new address")
	// The others may be out for a moment when a check timed out under load.
	assert.Eventually(t, func() bool { return len(e.Proxy.Targets()) == 3 }, 10*time.Second, 5*time.Millisecond, "count kept")
	assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t))
	require.Eventually(t, func() bool { return e.Proxy.Stats()[m.Addr()].Requests > 20 }, 10*time.Second, time.Millisecond, "serves again")
	load.waitOK(t, 200)
	load.stop()

	failed := load.failedSince(time.Time{})
	t.Logf("killed %s with %d requests in flight on it; %d requests failed; %d succeeded; readmitted after %v", victim, inFlight, len(failed), load.ok.Load(), readmitted.Sub(killed).Round(time.Millisecond))
	for _, f := range failed {
		t.Logf("failed at kill+%v: %s", f.at.Sub(killed).Round(time.Millisecond), f.err)
	}
	assert.Empty(t, load.failedSince(readmitted), "no failure after readmission")
	assert.Empty(t, failedBefore(failed, killed), "no failure before the kill")
	assert.LessOrEqual(t, len(failed), inFlight, "only the requests in flight on the killed machine fail")
}

// A routed machine killed under load with no restart to come (policy never),
// or one that disappears, is replaced by a new machine of its spec: the app
// keeps its count, and only the requests in flight on it fail.
func TestMonitorReplacesLostMachine(t *testing.T) {
	for _, c := range []struct {
		name string
		kill func(*testing.T, *testenv.Env, string)
	}{
		{"killed with restart policy never", sigkill},
		{"destroyed behind the deployer's back", func(t *testing.T, e *testenv.Env, id string) {
			m, err := e.Backend.Machine(id)
			require.NoError(t, err)
			require.NoError(t, m.Destroy(context.Background()))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, mon, events, load, victim, inFlight, killed := killUnderLoad(t, deploy.RestartPolicy{Policy: deploy.RestartNever}, c.kill)
			ev := waitFor(t, events, deploy.MachineReplaced)
			replaced := time.Now()
			assert.Contains(t, ev.Message, victim)
			assert.NotEqual(t, victim, ev.Machine)
			assert.Equal(t, "v1", ev.Version)
			assert.Contains(t, e.Proxy.Targets(), ev.Addr, "the replacement is in traffic")
			assert.Len(t, e.Proxy.Targets(), 3, "count kept")
			assert.Len(t, mon.Targets(), 3)
			assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t), "the lost machine is gone, its replacement runs")
			_, err := e.Backend.Machine(victim)
			assert.ErrorIs(t, err, deploy.ErrNotFound, "the lost machine was destroyed")
			require.Eventually(t, func() bool { return e.Proxy.Stats()[ev.Addr].Requests > 20 }, 10*time.Second, time.Millisecond)
			load.waitOK(t, 200)
			load.stop()

			failed := load.failedSince(time.Time{})
			t.Logf("lost %s with %d requests in flight on it; %d requests failed; %d succeeded; replaced after %v", victim, inFlight, len(failed), load.ok.Load(), replaced.Sub(killed).Round(time.Millisecond))
			for _, f := range failed {
				t.Logf("failed at kill+%v: %s", f.at.Sub(killed).Round(time.Millisecond), f.err)
			}
			assert.Empty(t, load.failedSince(replaced), "no failure after the replacement")
			assert.Empty(t, failedBefore(failed, killed), "no failure before the kill")
			assert.LessOrEqual(t, len(failed), inFlight, "only the requests in flight on the lost machine fail")

			// A later deploy sees the replacement as one of the app's machines.
			res, err := e.Deploy(context.Background(), rolling.Strategy{}, "v2", 3)
			require.NoError(t, err)
			assert.Equal(t, deploy.StatusSucceeded, res.Status)
			assert.Equal(t, map[string]int{"v2": 3}, e.Versions(t))
		})
	}
}

// A killed machine that crashes again after each restart exhausts its
// policy's retries and stays down; the Monitor then replaces it.
func TestMonitorReplacesMachineOutOfRetries(t *testing.T) {
	var crashing string
	e, mon, events, load, victim, inFlight, killed := killUnderLoad(t, deploy.RestartPolicy{MaxRetries: 2}, func(t *testing.T, e *testenv.Env, id string) {
		crashing = id
		e.Backend.Inject(mem.Fault{Machine: id, CrashAfter: 100 * time.Millisecond}) // from its next start on
		sigkill(t, e, id)
	})
	restarts := 0
	var ev deploy.Event
	for ev.Type != deploy.MachineReplaced {
		ev = waitFor(t, events, "")
		if ev.Type == deploy.MachineRestarted && ev.Machine == crashing {
			restarts++
		}
	}
	replaced := time.Now()
	assert.Contains(t, ev.Message, victim)
	assert.Contains(t, ev.Message, "no restart to come")
	assert.LessOrEqual(t, restarts, 2, "restart events, at most one per restart")
	assert.Len(t, e.Proxy.Targets(), 3, "count kept")
	assert.Len(t, mon.Targets(), 3)
	assert.Equal(t, map[string]int{"v1": 3}, e.Versions(t))
	require.Eventually(t, func() bool { return e.Proxy.Stats()[ev.Addr].Requests > 20 }, 10*time.Second, time.Millisecond)
	load.waitOK(t, 200)
	load.stop()
	failed := load.failedSince(time.Time{})
	t.Logf("%s crash-looped (%d restart events); %d in flight at the kill; %d requests failed; replaced after %v", victim, restarts, inFlight, len(failed), replaced.Sub(killed).Round(time.Millisecond))
	for _, f := range failed {
		t.Logf("failed at kill+%v: %s", f.at.Sub(killed).Round(time.Millisecond), f.err)
	}
	assert.Empty(t, failedBefore(failed, killed), "no failure before the kill")
	assert.Empty(t, load.failedSince(replaced), "no failure after the replacement")
}

func failedBefore(fs []failure, t time.Time) []failure {
	var out []failure
	for _, f := range fs {
		if f.at.Before(t) {
			out = append(out, f)
		}
	}
	return out
}
