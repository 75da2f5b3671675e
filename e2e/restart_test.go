package e2e

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/rolling"
)

// TestDockerMachinesComeBack kills a routed container with SIGKILL under load
// through the proxy, with a deploy.Monitor in front of the proxy:
//
//   - "process killed": its process is killed from the host (as the OOM
//     killer or a crash would); the engine restarts it under the default
//     policy (on-failure) on a new host port, and the monitor readmits it
//     there once it passes its checks.
//   - "docker kill": it is killed through the engine (docker kill -s KILL),
//     which the engine counts as a stop and never restarts; the monitor
//     replaces it with a new container of the same spec.
//
// Either way the app keeps 3 containers in traffic, and the only failed
// requests are those in flight on the container when it died: the test counts
// them with the proxy's per-target figures.
func TestDockerMachinesComeBack(t *testing.T) {
	for _, c := range []struct {
		name string
		want deploy.EventType
		kill func(t *testing.T, m *docker.Machine)
	}{
		{"process killed", deploy.MachineRestarted, func(t *testing.T, m *docker.Machine) {
			pid, err := m.PID(testenv.CtxFor(t, 10*time.Second))
			if err != nil || pid == 0 {
				t.Fatalf("pid %d: %v", pid, err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				if errors.Is(err, syscall.EPERM) {
					t.Skipf("cannot signal the container's process (run as root): %v", err)
				}
				t.Fatal(err)
			}
		}},
		{"docker kill", deploy.MachineReplaced, func(t *testing.T, m *docker.Machine) {
			if err := m.Signal(testenv.CtxFor(t, 10*time.Second), "SIGKILL"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			events := make(chan deploy.Event, 64)
			mon := &deploy.Monitor{
				Router: e.Proxy, Backend: e.Backend, App: e.App,
				Health:   health.HTTP{Path: "/health", Timeout: time.Second},
				Interval: 100 * time.Millisecond,
				OnEvent:  func(ev deploy.Event) { events <- ev },
				Replace:  true,
				Lock:     e.Deployer.Lock,
			}
			e.Deployer.Router = mon
			deploytest.RunMonitor(t, mon)

			res := e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
			run := e.Load(t)
			before := run.Mark()
			if err := run.WaitEpoch(testenv.CtxFor(t, 20*time.Second), before, 200); err != nil {
				t.Fatal(err)
			}
			dm, err := e.Backend.Get(testenv.CtxFor(t, 10*time.Second), res.Machines[1])
			if err != nil {
				t.Fatal(err)
			}
			victim := dm.(*docker.Machine)
			addr := victim.Addr()
			st0 := e.Proxy.Stats()[addr]
			killed := run.Mark()
			c.kill(t, victim)
			st1 := e.Proxy.Stats()[addr]
			// In flight on it when it died, or sent to it while it was being
			// killed (unknown when the monitor removed it meanwhile, which
			// drops its figures: then only those in flight before count).
			inFlight := st0.InFlight
			if st1.Requests >= st0.Requests {
				inFlight += int64(st1.Requests - st0.Requests)
			}

			var ev deploy.Event
			deadline := time.After(60 * time.Second)
			for ev.Type != c.want {
				select {
				case ev = <-events:
					t.Log("monitor:", ev)
				case <-deadline:
					t.Fatalf("no %s event within 60s", c.want)
				}
			}
			// A restarted container is readmitted once it passes its checks,
			// at its new address.
			for c.want == deploy.MachineRestarted && (ev.Type != deploy.MachineHealthy || ev.Machine != victim.ID()) {
				select {
				case ev = <-events:
					t.Log("monitor:", ev)
				case <-deadline:
					t.Fatalf("%s not readmitted within 60s", victim.ID())
				}
			}
			back := ev.Addr
			readmitted := run.Mark()
			t.Logf("%s: %s at %s, back in traffic at %s", c.name, victim.ID(), addr, back)
			if back == addr {
				t.Logf("the engine kept host port %s", addr)
			}
			if got := e.Proxy.Targets(); len(got) != 3 {
				t.Errorf("targets = %v, want 3", got)
			}
			wantVersions(t, "routed", e.RoutedVersions(t), map[string]int{"v1": 3})
			if err := run.WaitEpoch(testenv.CtxFor(t, 20*time.Second), readmitted, 300); err != nil {
				t.Fatal(err)
			}
			if n := e.Proxy.Stats()[back].Requests; n == 0 {
				t.Errorf("no request reached %s after it came back", back)
			}
			lr := run.Stop()
			failed := run.Epoch(killed)["(failed)"]
			t.Logf("%d requests in flight on %s when it died; failed: %d before the kill, %d from the kill to readmission, %d after; %d requests in all (%v)",
				inFlight, victim.ID(), run.Epoch(before)["(failed)"], failed, run.Epoch(readmitted)["(failed)"], lr.Requests, lr.Errors)
			if n := run.Epoch(before)["(failed)"] + run.Epoch(readmitted)["(failed)"]; n != 0 {
				t.Errorf("%d requests failed outside the kill window", n)
			}
			if failed > inFlight {
				t.Errorf("%d requests failed, more than the %d in flight on the killed container", failed, inFlight)
			}
			if c.want == deploy.MachineReplaced {
				if _, err := e.Backend.Get(testenv.CtxFor(t, 10*time.Second), victim.ID()); !errors.Is(err, deploy.ErrNotFound) {
					t.Errorf("the replaced container is still there: %v", err)
				}
			} else if n := victim.Restarts(); n != 1 {
				t.Errorf("restarts = %d, want 1", n)
			}
			wantVersions(t, "containers", e.Versions(t), map[string]int{"v1": 3})
		})
	}
}
