package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func spec(app, version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: app, Image: testImage, Version: version, Env: map[string]string{"VERSION": version}}
}

func launch(t *testing.T, b *Backend, s deploy.MachineSpec) deploy.Machine {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	m, err := b.Create(ctx, s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}

// get polls path on the machine until it answers 200 or the deadline passes.
func get(t *testing.T, m deploy.Machine, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get("http://" + m.Addr() + path)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			lastErr = errors.New(resp.Status)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s on %s: %v", path, m.Addr(), lastErr)
	return ""
}

func TestLaunchServesHTTP(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))

	if !strings.HasPrefix(m.Addr(), "127.0.0.1:") || strings.HasSuffix(m.Addr(), ":") {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", m.Addr())
	}
	if got := get(t, m, "/"); got != "v1" {
		t.Fatalf("GET / = %q, want v1", got)
	}
	get(t, m, "/health")
	if st := m.State(); st != deploy.StateStarted {
		t.Fatalf("State = %s, want started", st)
	}
	sp := m.Spec()
	if sp.Port != DefaultPort || sp.Labels[deploy.LabelApp] != app || sp.Labels[deploy.LabelVersion] != "v1" {
		t.Fatalf("Spec = %+v", sp)
	}

	// The port is published on loopback only, and labels are set.
	res, err := b.cli.ContainerInspect(ctxFor(t, 10*time.Second), m.(*Machine).ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for port, bindings := range res.Container.HostConfig.PortBindings {
		for _, pb := range bindings {
			if pb.HostIP.String() != "127.0.0.1" {
				t.Errorf("port %v bound on %v, want 127.0.0.1", port, pb.HostIP)
			}
		}
	}
	l := res.Container.Config.Labels
	for k, want := range map[string]string{deploy.LabelApp: app, deploy.LabelVersion: "v1", LabelManaged: "true", LabelNamespace: testNamespace} {
		if l[k] != want {
			t.Errorf("label %s = %q, want %q", k, l[k], want)
		}
	}
}

func TestListAndAdopt(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	other := newApp(t, b)
	s1 := spec(app, "v2")
	s1.StopSignal = "SIGINT"
	s1.StopTimeout = 3 * time.Second
	s1.Labels = map[string]string{"team": "core", deploy.LabelRole: "app"}
	s1.Env["EXTRA"] = "a b=c"
	running := launch(t, b, s1)
	ctx := ctxFor(t, 30*time.Second)
	created, err := b.Create(ctx, spec(app, "v2"))
	if err != nil {
		t.Fatal(err)
	}
	launch(t, b, spec(other, "v1"))

	ms, err := b.List(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0] != running || ms[1] != created {
		t.Fatalf("List = %v, want the same two handles in creation order", ids(ms))
	}

	// A fresh backend (a new process) adopts them from labels and inspect.
	fresh, err := New(ctx, Options{Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	adopted, err := fresh.List(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(adopted) != 2 {
		t.Fatalf("fresh List = %v, want 2", ids(adopted))
	}
	for i, m := range []deploy.Machine{running, created} {
		a := adopted[i]
		if a.ID() != m.ID() || a.State() != m.State() || a.Addr() != m.Addr() {
			t.Errorf("adopted %d: id %s state %s addr %q; want %s %s %q", i, a.ID(), a.State(), a.Addr(), m.ID(), m.State(), m.Addr())
		}
		if !reflect.DeepEqual(a.Spec(), m.Spec()) {
			t.Errorf("adopted %d spec:\n got %+v\nwant %+v", i, a.Spec(), m.Spec())
		}
	}
	g, err := fresh.Get(ctx, running.ID())
	if err != nil || g != adopted[0] {
		t.Fatalf("fresh Get = %v, %v; want the adopted handle", g, err)
	}
	if got := get(t, g, "/"); got != "v2" {
		t.Fatalf("adopted GET / = %q", got)
	}
	// Another namespace sees nothing.
	elsewhere, err := New(ctx, Options{Namespace: testNamespace + "-other"})
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	if ms, err := elsewhere.List(ctx, app); err != nil || len(ms) != 0 {
		t.Fatalf("other namespace List = %v, %v", ids(ms), err)
	}
	// The adopted handle can stop the machine, with its spec's stop signal.
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := running.Wait(ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("Wait after adopted stop = %v, %v", st, err)
	}
}

func TestGetMissing(t *testing.T) {
	b := engine(t)
	ctx := ctxFor(t, 10*time.Second)
	if _, err := b.Get(ctx, "no-such-machine"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Image = "cutover-dockertest-no-such-image:latest"
	if _, err := b.Create(ctx, s); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Create with a missing image: %v, want ErrNotFound", err)
	}
	if _, err := b.Create(ctx, deploy.MachineSpec{Image: testImage}); !errors.Is(err, deploy.ErrInvalid) {
		t.Fatalf("Create without app: %v, want ErrInvalid", err)
	}
}

func TestGracefulStop(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))
	get(t, m, "/health")
	ctx := ctxFor(t, 30*time.Second)
	start := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("graceful stop took %v", d)
	}
	st, err := m.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || st.Reason != "stopped" {
		t.Fatalf("exit = %v, want code 0 (stopped)", st)
	}
	if s := m.State(); s != deploy.StateStopped {
		t.Fatalf("State = %s, want stopped", s)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Env["IGNORE_SIGTERM"] = "1"
	s.StopTimeout = 500 * time.Millisecond
	m := launch(t, b, s)
	get(t, m, "/health")
	ctx := ctxFor(t, 30*time.Second)

	waited := make(chan deploy.ExitStatus, 1)
	go func() {
		st, _ := m.Wait(ctx)
		waited <- st
	}()
	start := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < s.StopTimeout || d > 10*time.Second {
		t.Errorf("stop took %v, want about %v", d, s.StopTimeout)
	}
	st := <-waited
	if st.Code != 137 || st.Reason != "killed after stop timeout" {
		t.Fatalf("exit = %v, want 137 (killed after stop timeout)", st)
	}
}

func TestDestroyTwice(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))
	ctx := ctxFor(t, 30*time.Second)
	if err := m.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if s := m.State(); s != deploy.StateDestroyed {
		t.Fatalf("State = %s", s)
	}
	if _, err := b.Get(ctx, m.ID()); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Get destroyed: %v, want ErrNotFound", err)
	}
	if err := m.Stop(ctx); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Stop destroyed: %v, want ErrNotFound", err)
	}
	if ms, err := b.List(ctx, app); err != nil || len(ms) != 0 {
		t.Fatalf("List = %v, %v", ids(ms), err)
	}
	// A second handle to a removed container also destroys without error.
	m2, err := b.Create(ctx, spec(app, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := New(ctx, Options{Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	a, err := fresh.Get(ctx, m2.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Destroy(ctx); err != nil {
		t.Fatalf("Destroy of an already removed container: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := m.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait returned after %v", d)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	start = time.Now()
	if _, err := b.Create(cctx, spec(app, "v1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create: %v, want Canceled", err)
	}
	if _, err := b.List(cctx, app); !errors.Is(err, context.Canceled) {
		t.Fatalf("List: %v, want Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled calls took %v", d)
	}

	if ms, err := b.List(ctxFor(t, 10*time.Second), app); err != nil || len(ms) != 1 {
		t.Fatalf("List = %v, %v; want the launched machine only", ids(ms), err)
	}
}

// A Stop cut short while the stop signal is on its way, or once the app has it,
// kills the app and returns promptly (backendtest covers a ctx that ended
// before Stop). The engine is reached through engineProxy, so that ctx ends at
// a known step however slow the engine is.
func TestStopCancelled(t *testing.T) {
	engine(t)
	stubborn := func(app string) deploy.MachineSpec {
		s := spec(app, "v1")
		s.Env["IGNORE_SIGTERM"] = "1"
		s.StopTimeout = time.Minute
		return s
	}
	// stopCutShort launches a stubborn app through b, stops it with ctx, and
	// checks that Stop returned want promptly and the app was killed.
	stopCutShort := func(t *testing.T, b *Backend, ctx context.Context, want error) {
		t.Helper()
		m := launch(t, b, stubborn(newApp(t, tb)))
		get(t, m, "/health")
		start := time.Now()
		if err := m.Stop(ctx); !errors.Is(err, want) {
			t.Fatalf("Stop: %v, want %v", err, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancelled Stop took %v", d)
		}
		st, err := m.Wait(ctxFor(t, 10*time.Second))
		if err != nil || st.Code != 137 {
			t.Fatalf("Wait after the cancelled stop = %v, %v; want 137", st, err)
		}
		if got := m.State(); got != deploy.StateStopped {
			t.Fatalf("State = %v, want stopped", got)
		}
	}

	t.Run("while the engine holds the signal", func(t *testing.T) {
		b := engineProxy(t, func(w http.ResponseWriter, r *http.Request, engine http.Handler) {
			if isKill(r, "SIGTERM") {
				<-r.Context().Done() // never forwarded: the caller gives up
				return
			}
			engine.ServeHTTP(w, r)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		stopCutShort(t, b, ctx, context.DeadlineExceeded)
	})

	t.Run("once the engine has the signal", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := engineProxy(t, func(w http.ResponseWriter, r *http.Request, engine http.Handler) {
			engine.ServeHTTP(w, r)
			if isKill(r, "SIGTERM") {
				// The app has the signal; Stop may be reading this answer or
				// waiting for the exit when ctx ends, and either must kill.
				cancel()
			}
		})
		stopCutShort(t, b, ctx, context.Canceled)
	})
}

// An engine answer given before Start took effect and delivered after Start
// returned (a Refresh or State that raced Start on a busy engine) does not
// turn the running machine back into a created one.
func TestStaleInspectAfterStart(t *testing.T) {
	engine(t)
	var armed, held atomic.Bool
	startSeen, staleHeld := make(chan struct{}), make(chan struct{})
	startGo, staleGo := make(chan struct{}), make(chan struct{})
	releaseStart, releaseStale := sync.OnceFunc(func() { close(startGo) }), sync.OnceFunc(func() { close(staleGo) })
	b := engineProxy(t, func(w http.ResponseWriter, r *http.Request, engine http.Handler) {
		switch {
		case armed.Load() && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/start"):
			close(startSeen)
			<-startGo
		case armed.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/json") && held.CompareAndSwap(false, true):
			rec := httptest.NewRecorder()
			engine.ServeHTTP(rec, r) // the container is not started yet
			close(staleHeld)
			<-staleGo
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		engine.ServeHTTP(w, r)
	})
	t.Cleanup(releaseStart) // before the proxy closes: Cleanup runs last-in first
	t.Cleanup(releaseStale)

	ctx := ctxFor(t, 30*time.Second)
	m, err := b.Create(ctx, spec(newApp(t, tb), "v1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	armed.Store(true)
	started := make(chan error, 1)
	go func() { started <- m.Start(ctx) }()
	<-startSeen // Start is under way
	refreshed := make(chan error, 1)
	go func() { refreshed <- m.(*Machine).Refresh(ctx) }()
	<-staleHeld // the engine has answered "created"; the answer is held
	releaseStart()
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	releaseStale()
	if err := <-refreshed; err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got := m.State(); got != deploy.StateStarted {
		t.Fatalf("State after a stale answer = %v, want started", got)
	}
	get(t, m, "/health")
}

func isKill(r *http.Request, signal string) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/kill") && r.URL.Query().Get("signal") == signal
}

// engineProxy returns a Backend in testNamespace whose engine requests pass
// through a proxy on loopback, which hands each request to hook with the
// handler that forwards it to the engine.
func engineProxy(t *testing.T, hook func(w http.ResponseWriter, r *http.Request, engine http.Handler)) *Backend {
	t.Helper()
	dial := tb.cli.Dialer()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	engine := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport:     tr,
		FlushInterval: -1,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook(w, r, engine)
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	b, err := New(ctxFor(t, 10*time.Second), Options{Host: "tcp://" + srv.Listener.Addr().String(), Namespace: testNamespace})
	if err != nil {
		t.Fatalf("New through the proxy: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConcurrentLaunches(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	const n = 4
	ms := make([]deploy.Machine, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m, err := b.Create(ctx, spec(app, "v1"))
			if err == nil {
				err = m.Start(ctx)
			}
			ms[i], errs[i] = m, err
		})
	}
	wg.Wait()
	addrs := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("launch %d: %v", i, errs[i])
		}
		addrs[ms[i].Addr()] = true
		if got := get(t, ms[i], "/"); got != "v1" {
			t.Fatalf("machine %d: GET / = %q", i, got)
		}
	}
	if len(addrs) != n {
		t.Fatalf("addresses not distinct: %v", addrs)
	}
	if l, err := b.List(ctxFor(t, 10*time.Second), app); err != nil || len(l) != n {
		t.Fatalf("List = %v, %v", ids(l), err)
	}
}

func TestLogs(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))
	get(t, m, "/first")
	lr := m.(deploy.LogReader)
	ctx := ctxFor(t, 30*time.Second)

	// The engine's log driver copies output asynchronously: a line the app
	// wrote may reach the log a moment after the response. Read until it has.
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		rc, err := lr.Logs(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Both streams, demultiplexed: no 8-byte frame headers left.
		if strings.Contains(string(out), `testapp: version "v1" listening on :8080`) && strings.Contains(string(out), "testapp: GET /first") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs = %q", out)
		}
		time.Sleep(20 * time.Millisecond) // poll the log again
	}
	if bytes.ContainsAny(out, "\x00\x01\x02") {
		t.Fatalf("logs hold stream headers: %q", out)
	}

	rc, err := m.(*Machine).ReadLogs(ctx, LogOptions{Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(rc)
	rc.Close()
	if got := strings.TrimSpace(string(out)); got != "testapp: GET /first" {
		t.Fatalf("tail 1 = %q", got)
	}

	// Follow sees new lines, and ends when the machine stops.
	rc, err = lr.Logs(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	get(t, m, "/second")
	waitLine(t, lines, "testapp: GET /second")
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "testapp: bye")
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return // the stream ended with the machine
			}
		case <-timeout:
			t.Fatal("follow did not end after the machine stopped")
		}
	}
}

func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("log stream ended before %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("no log line %q", want)
		}
	}
}

func TestCommandOverride(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Cmd = []string{BinaryPath, "exit", "3"}
	s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	s.Labels = map[string]string{deploy.LabelRole: "release_command"}
	ctx := ctxFor(t, 30*time.Second)
	m, err := b.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// Waiting on a created machine waits for the run that Start begins.
	waited := make(chan deploy.ExitStatus, 1)
	go func() {
		st, _ := m.Wait(ctx)
		waited <- st
	}()
	select { // before Start, Wait does not return
	case st := <-waited:
		t.Fatalf("Wait returned %v before the machine started", st)
	case <-time.After(100 * time.Millisecond):
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := <-waited
	if st.Code != 3 {
		t.Fatalf("exit = %v, want code 3", st)
	}
	if s := m.State(); s != deploy.StateStopped {
		t.Fatalf("State = %s, want stopped", s)
	}
	rc, err := m.(deploy.LogReader).Logs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(out), "testapp: exiting with code 3") || !strings.Contains(string(out), "testapp: stderr before exit 3") {
		t.Fatalf("logs = %q", out)
	}
	// A fresh backend sees the command and the exit.
	fresh, err := New(ctx, Options{Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	a, err := fresh.Get(ctx, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Spec().Cmd, s.Cmd) || a.Spec().Labels[deploy.LabelRole] != "release_command" || a.State() != deploy.StateStopped {
		t.Fatalf("adopted spec %+v state %s", a.Spec(), a.State())
	}
	if st, err := a.Wait(ctx); err != nil || st.Code != 3 {
		t.Fatalf("adopted Wait = %v, %v", st, err)
	}
}

func TestStopCreatedMachine(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	ctx := ctxFor(t, 30*time.Second)
	m, err := b.Create(ctx, spec(app, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if s := m.State(); s != deploy.StateCreated {
		t.Fatalf("State = %s", s)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := m.Wait(ctx)
		waited <- err
	}()
	select { // before Stop, Wait does not return
	case err := <-waited:
		t.Fatalf("Wait returned (%v) before the machine was stopped", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Stop of a created machine")
	}
	if s := m.State(); s != deploy.StateStopped {
		t.Fatalf("State = %s, want stopped", s)
	}
}

func TestImageImportErrors(t *testing.T) {
	b := engine(t)
	ctx := ctxFor(t, 30*time.Second)
	const bad = "cutover-dockertest-bad:latest"
	t.Cleanup(func() { _ = b.RemoveImage(context.Background(), bad) })
	err := b.ImportImage(ctx, bad, strings.NewReader("this is not a tar archive"), ImageOptions{})
	if err == nil {
		t.Fatal("import of a bad tar succeeded")
	}
	t.Logf("bad tar: %v", err)
	if err := b.BuildBinaryImage(ctx, bad, filepath.Join(t.TempDir(), "missing"), ImageOptions{}); err == nil {
		t.Fatal("BuildBinaryImage of a missing file succeeded")
	}
	if err := b.ImportImage(ctx, "Not A Valid:Name", strings.NewReader(""), ImageOptions{}); err == nil {
		t.Fatal("import with an invalid name succeeded")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { undefined() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.BuildGoImage(ctx, bad, dir, ImageOptions{}); err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("BuildGoImage of a broken package: %v", err)
	}
}

func TestReadJSONStream(t *testing.T) {
	ok := `{"status":"a"}` + "\n" + `{"status":"sha256:abc"}`
	if err := readJSONStream(strings.NewReader(ok)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`{"status":"a"}{"errorDetail":{"message":"boom"},"error":"boom"}`,
		`{"error":"boom"}`,
	} {
		if err := readJSONStream(strings.NewReader(s)); err == nil || err.Error() != "boom" {
			t.Errorf("%s: %v, want boom", s, err)
		}
	}
	if err := readJSONStream(strings.NewReader(`{"status":`)); err == nil {
		t.Error("truncated stream: no error")
	}
}

func TestAPIVersionNegotiated(t *testing.T) {
	b := engine(t)
	v, err := b.cli.ServerVersion(ctxFor(t, 10*time.Second), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Negotiation picks the lower of the engine's version and the client's highest.
	want := v.APIVersion
	if versions.LessThan(client.MaxAPIVersion, want) {
		want = client.MaxAPIVersion
	}
	if b.APIVersion() != want {
		t.Fatalf("client API %s, want %s (engine API %s, client max %s)", b.APIVersion(), want, v.APIVersion, client.MaxAPIVersion)
	}
}

func ids(ms []deploy.Machine) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID())
	}
	return out
}

func TestStateSeesExit(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Cmd = []string{BinaryPath, "exit", "1"}
	s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	m := launch(t, b, s)
	// No Wait: State asks the engine while the machine is thought to run.
	deadline := time.Now().Add(10 * time.Second)
	for m.State() != deploy.StateStopped {
		if time.Now().After(deadline) {
			t.Fatalf("State = %s, want stopped after the process exited", m.State())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := m.Wait(ctxFor(t, 10*time.Second))
	if err != nil || st.Code != 1 || st.Reason != "exited with error" {
		t.Fatalf("Wait = %v, %v; want code 1 (exited with error)", st, err)
	}
}
