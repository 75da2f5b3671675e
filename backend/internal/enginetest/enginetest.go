// Package enginetest holds the checks that the tests of backend/docker and
// backend/swarm share: machines whose engine restarts them, and machines
// that publish more ports than their app port. The test app of
// backend/docker/internal/testapp answers "check port" on its CHECK_PORT.
package enginetest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ExtraPortSpec returns s publishing port besides its app port, the test
// app answering "check port" on it.
func ExtraPortSpec(s deploy.MachineSpec, port int) deploy.MachineSpec {
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	s.Env["CHECK_PORT"] = strconv.Itoa(port)
	s.Ports = []int{port}
	return s
}

// CheckExtraPort checks a started machine of ExtraPortSpec serving version:
// AddrOf finds port at an address of its own, a health check with that Port
// passes, the port answers "check port", the app port answers version, and
// another port is deploy.ErrPortNotPublished. It returns port's address.
func CheckExtraPort(t testing.TB, m deploy.Machine, port int, version string) string {
	t.Helper()
	addr, err := deploy.AddrOf(m, port)
	if err != nil {
		t.Fatalf("AddrOf(%d): %v", port, err)
	}
	if addr == m.Addr() {
		t.Fatalf("AddrOf(%d) = the app's address %s", port, addr)
	}
	if err := deploy.WaitHealthy(ctxFor(t, 30*time.Second), m, health.HTTP{Port: port, Interval: 50 * time.Millisecond}); err != nil {
		t.Fatalf("check on %d: %v", port, err)
	}
	if got := Body(t, addr); got != "check port" {
		t.Fatalf("GET on %d = %q, want the check port's answer", port, got)
	}
	if got := Body(t, m.Addr()); got != version {
		t.Fatalf("GET / on the app port = %q, want %q", got, version)
	}
	if _, err := deploy.AddrOf(m, 7000); !errors.Is(err, deploy.ErrPortNotPublished) {
		t.Fatalf("AddrOf(7000) = %v, want ErrPortNotPublished", err)
	}
	return addr
}

// CheckAdoptedPort checks that am, a handle that adopted a machine of
// ExtraPortSpec, knows port and finds it at addr.
func CheckAdoptedPort(t testing.TB, am deploy.Machine, port int, addr string) {
	t.Helper()
	if got := am.Spec().Ports; !slices.Equal(got, []int{port}) {
		t.Fatalf("adopted spec Ports = %v", got)
	}
	if a, err := deploy.AddrOf(am, port); err != nil || a != addr {
		t.Fatalf("adopted AddrOf(%d) = %q, %v; want %s", port, a, err, addr)
	}
}

// Body returns the body of a GET of "/" on addr, once it answers 200 (within 30s).
func Body(t testing.TB, addr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // the app is booting; poll again
	}
}

// WaitExit waits for m's process to exit with code, within 30s.
func WaitExit(t testing.TB, m deploy.Machine, code int) {
	t.Helper()
	st, err := m.Wait(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != code {
		t.Fatalf("exit %v, want code %d", st, code)
	}
}

// Waited is the outcome of a Wait begun by WaitLater.
type Waited struct {
	Status deploy.ExitStatus
	Err    error
}

// WaitLater begins m.Wait (within 60s) and returns where its outcome comes.
func WaitLater(t testing.TB, m deploy.Machine) <-chan Waited {
	ctx := ctxFor(t, 60*time.Second)
	c := make(chan Waited, 1)
	go func() {
		st, err := m.Wait(ctx)
		c <- Waited{st, err}
	}()
	return c
}

// WaitRestarted polls b.List until m was restarted n times and runs again,
// for up to within.
func WaitRestarted(t testing.TB, b deploy.Backend, m deploy.Machine, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := b.List(ctxFor(t, 10*time.Second), m.Spec().App); err != nil {
			t.Fatal(err)
		}
		if deploy.RestartsOf(m) >= n && m.State() == deploy.StateStarted && m.Addr() != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s: %d restarts, %s, want %d restarts and started", m.ID(), deploy.RestartsOf(m), m.State(), n)
		}
		time.Sleep(50 * time.Millisecond) // the engine restarts it after a delay; look again
	}
}

// CheckAdoptedRestarts checks am, a handle that adopted m (of the default
// restart policy) after n restarts: its policy, its count, its address.
func CheckAdoptedRestarts(t testing.TB, am, m deploy.Machine, n int) {
	t.Helper()
	if am.ID() != m.ID() {
		t.Errorf("adopted ID = %s, want %s", am.ID(), m.ID())
	}
	if p := am.Spec().Restart.Normalized(); p.Policy != deploy.RestartOnFailure || p.MaxRetries != deploy.DefaultRestartRetries {
		t.Errorf("adopted restart policy = %v", p)
	}
	if got := deploy.RestartsOf(am); got != n {
		t.Errorf("adopted restarts = %d, want %d", got, n)
	}
	if am.Addr() != m.Addr() {
		t.Errorf("adopted Addr = %s, want %s", am.Addr(), m.Addr())
	}
}

// StopStays stops m, waits settle (past the engine's restart delay: a
// restart would have come by then), lists its app, and checks that m stays
// stopped with n restarts.
func StopStays(t testing.TB, b deploy.Backend, m deploy.Machine, n int, settle time.Duration) {
	t.Helper()
	if err := m.Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle) // a restart would have come by now
	if _, err := b.List(ctxFor(t, 10*time.Second), m.Spec().App); err != nil {
		t.Fatal(err)
	}
	if m.State() != deploy.StateStopped || deploy.RestartsOf(m) != n {
		t.Fatalf("after Stop: %s with %d restarts, want stopped with %d", m.State(), deploy.RestartsOf(m), n)
	}
}
