package docker

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/internal/enginetest"
	"github.com/moby/moby/client"
)

// killProcess kills the container's main process with SIGKILL from the host,
// as the kernel's OOM killer or a crash would: the engine sees the process
// die on its own, and its restart policy applies. (A kill sent through the
// engine, docker kill, counts as a stop and is not restarted.) It skips the
// test when this process may not signal the container's.
func killProcess(t *testing.T, m *Machine) {
	t.Helper()
	c, err := m.inspect(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.State == nil || c.State.Pid == 0 {
		t.Fatalf("container %s has no process", m.ID())
	}
	if err := syscall.Kill(c.State.Pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot signal the container's process (run as root to test restarts): %v", err)
		}
		t.Fatal(err)
	}
}

// A machine whose process is killed is restarted by the engine (the default
// policy, on-failure), on a new host port that Addr follows; Wait returns the
// killed run's exit, and a later Stop is not restarted.
func TestRestartAfterKill(t *testing.T) {
	// The engine requests pass through a proxy that says when Wait's reached it.
	waiting := make(chan struct{})
	var once sync.Once
	b := engineProxy(t, func(w http.ResponseWriter, r *http.Request, engine http.Handler) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/wait") {
			once.Do(func() { close(waiting) })
		}
		engine.ServeHTTP(w, r)
	})
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1")).(*Machine)
	get(t, m, "/health")
	before := m.Addr()
	// Wait begun before the death returns its exit; one begun after the
	// engine restarted the container waits for the next.
	wc := enginetest.WaitLater(t, m)
	<-waiting // Wait's request is on its way to the engine, which restarts 100ms after the kill
	killProcess(t, m)
	if w := <-wc; w.Err != nil || !strings.Contains(w.Status.Reason, "restarted") {
		t.Fatalf("Wait = %v, %v; want the exit of a restarted run", w.Status, w.Err)
	}
	enginetest.WaitRestarted(t, b, m, 1, 30*time.Second)
	// The engine restarted the same container: the machine keeps its ID.
	res, err := b.cli.ContainerInspect(ctxFor(t, 10*time.Second), m.ID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s after the restart: %v", m.ID(), err)
	}
	if res.Container.RestartCount != 1 {
		t.Fatalf("inspect %s after the restart: restart count %d, want 1", m.ID(), res.Container.RestartCount)
	}
	if m.Addr() == before {
		t.Logf("the restart kept host port %s (the engine may reuse it)", before)
	}
	if got := get(t, m, "/"); got != "v1" {
		t.Fatalf("GET / after the restart = %q", got)
	}
	// Adopted by a new handle, the machine keeps its policy and count.
	b2, err := New(ctxFor(t, 10*time.Second), Options{Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	am, err := b2.Get(ctxFor(t, 10*time.Second), m.ID())
	if err != nil {
		t.Fatal(err)
	}
	enginetest.CheckAdoptedRestarts(t, am, m, 1)
	enginetest.StopStays(t, b, m, 1, time.Second) // the engine's first restart comes after 100ms
}

// With policy never a killed process stays down; a kill through the engine
// (docker kill -s KILL) is never restarted, whatever the policy.
func TestNoRestart(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	never := launch(t, b, s).(*Machine)
	always := spec(app, "v1")
	always.Restart = deploy.RestartPolicy{Policy: deploy.RestartAlways}
	engineKilled := launch(t, b, always).(*Machine)
	get(t, never, "/health")
	get(t, engineKilled, "/health")
	killProcess(t, never)
	if _, err := b.cli.ContainerKill(ctxFor(t, 10*time.Second), engineKilled.cid, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Machine{never, engineKilled} {
		if st, err := m.Wait(ctxFor(t, 30*time.Second)); err != nil || st.Code != 137 {
			t.Fatalf("Wait = %v, %v; want exit code 137", st, err)
		}
	}
	// A control machine of the default policy, its process killed after
	// theirs had exited: once the engine has restarted it, a restart of
	// either would have come too (the engine's first comes after 100ms).
	control := launch(t, b, spec(app, "v1")).(*Machine)
	get(t, control, "/health")
	killProcess(t, control)
	enginetest.WaitRestarted(t, b, control, 1, 30*time.Second)
	for _, m := range []*Machine{never, engineKilled} {
		if m.State() != deploy.StateStopped || m.Restarts() != 0 {
			t.Errorf("%s: %s with %d restarts, want stopped with none", m.ID(), m.State(), m.Restarts())
		}
	}
}
