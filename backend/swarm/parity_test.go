package swarm_test

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	swarmbackend "github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/health"
)

// second returns another backend on the same namespace, as another process
// would make to adopt the machines.
func second(t *testing.T) *swarmbackend.Backend {
	t.Helper()
	b, err := swarmbackend.New(ctxFor(t, 30*time.Second), swarmbackend.Options{Namespace: testNamespace, LocalImages: true, NodeEngines: cluster.NodeEngines()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// engineOf returns a client of the engine of the node m's task runs on.
func engineOf(t *testing.T, b *swarmbackend.Backend, m *swarmbackend.Machine) *client.Client {
	t.Helper()
	host, ok := cluster.NodeEngines()[m.NodeID()]
	if !ok {
		return b.Client() // the manager
	}
	c, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// killTask kills m's container with SIGKILL through its node's engine: for
// the swarm, the task's process died on its own (exit 137).
func killTask(t *testing.T, b *swarmbackend.Backend, m *swarmbackend.Machine) {
	t.Helper()
	cid := m.ContainerID()
	if cid == "" {
		t.Fatalf("machine %s has no container", m.ID())
	}
	if _, err := engineOf(t, b, m).ContainerKill(ctxFor(t, 10*time.Second), cid, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
}

func getPort(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func restartPolicy(t *testing.T, b *swarmbackend.Backend, m *swarmbackend.Machine) *swarm.RestartPolicy {
	t.Helper()
	res, err := b.Client().ServiceInspect(ctxFor(t, 10*time.Second), m.ServiceID(), client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Service.Spec.TaskTemplate.RestartPolicy
}

// The spec's other ports are published in host mode too; AddrOf finds them
// on the task's node, an adopted machine included, and a health check with
// a Port dials that one. The spec is normalized as the Docker backend's.
func TestExtraPortsPublished(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Env["CHECK_PORT"] = "5500"
	s.Ports = []int{5500}
	m := launch(t, b, s)
	s.Ports[0] = 1 // the machine keeps its own copy
	if got := m.Spec().Ports; !slices.Equal(got, []int{5500}) {
		t.Fatalf("Spec().Ports = %v", got)
	}
	if got := m.Spec().Restart; got != (deploy.RestartPolicy{}).Normalized() {
		t.Fatalf("Spec().Restart = %+v, want the normalized default", got)
	}

	addr, err := deploy.AddrOf(m, 5500)
	if err != nil {
		t.Fatalf("AddrOf(5500): %v", err)
	}
	if addr == m.Addr() || !strings.HasPrefix(addr, strings.Split(m.Addr(), ":")[0]+":") {
		t.Fatalf("AddrOf(5500) = %s, want another port of the app's node (%s)", addr, m.Addr())
	}
	ctx := ctxFor(t, 30*time.Second)
	if err := deploy.WaitHealthy(ctx, m, health.HTTP{Port: 5500, Interval: 50 * time.Millisecond}); err != nil {
		t.Fatalf("check on 5500: %v", err)
	}
	if got := getPort(t, addr); got != "check port" {
		t.Fatalf("GET on 5500 = %q, want the check port's answer", got)
	}
	if got := body(t, m.Addr()); got != "v1" {
		t.Fatalf("GET / on the app port = %q", got)
	}
	if _, err := deploy.AddrOf(m, 7000); !errors.Is(err, deploy.ErrPortNotPublished) {
		t.Fatalf("AddrOf(7000) = %v, want ErrPortNotPublished", err)
	}
	res, err := b.Client().ServiceInspect(ctx, m.ServiceID(), client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ports := res.Service.Spec.EndpointSpec.Ports
	if len(ports) != 2 {
		t.Fatalf("%d ports published, want 2", len(ports))
	}
	for _, p := range ports {
		if p.PublishMode != swarm.PortConfigPublishModeHost {
			t.Errorf("port %d published in mode %s, want host", p.TargetPort, p.PublishMode)
		}
	}

	am, err := second(t).Get(ctx, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := am.Spec().Ports; !slices.Equal(got, []int{5500}) {
		t.Fatalf("adopted spec Ports = %v", got)
	}
	if a, err := deploy.AddrOf(am, 5500); err != nil || a != addr {
		t.Fatalf("adopted AddrOf(5500) = %q, %v; want %s", a, err, addr)
	}
}

// An entrypoint override runs, with the command as its arguments, and an
// adopted handle knows it and the restart policy.
func TestEntrypointOverride(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Entrypoint = []string{docker.BinaryPath, "exit"}
	s.Cmd = []string{"3"}
	s.Restart = deploy.RestartPolicy{Policy: "no"}
	m := launch(t, b, s)
	st, err := m.Wait(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 {
		t.Fatalf("exit %v, want code 3 from the entrypoint's exit 3", st)
	}
	if p := restartPolicy(t, b, m); p == nil || p.Condition != swarm.RestartPolicyConditionNone {
		t.Fatalf("task restart policy = %+v, want condition none", p)
	}
	am, err := second(t).Get(ctxFor(t, 10*time.Second), m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got := am.Spec().Entrypoint; !slices.Equal(got, s.Entrypoint) {
		t.Fatalf("adopted Entrypoint = %q", got)
	}
	if got := am.Spec().Restart; got.Policy != deploy.RestartNever {
		t.Fatalf("adopted Restart = %+v, want never", got)
	}
	if n := deploy.RestartsOf(am); n != 0 {
		t.Fatalf("restarts = %d, want 0", n)
	}
}

// waitRestarted polls List until m was restarted n times and runs again.
func waitRestarted(t *testing.T, b *swarmbackend.Backend, m *swarmbackend.Machine, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := b.List(ctxFor(t, 10*time.Second), m.Spec().App); err != nil {
			t.Fatal(err)
		}
		if m.Restarts() >= n && m.State() == deploy.StateStarted && m.Addr() != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s: %d restarts, %s, want %d restarts and started", m.ID(), m.Restarts(), m.State(), n)
		}
		time.Sleep(100 * time.Millisecond) // the swarm replaces the task after RestartDelay; look again
	}
}

// A machine whose process dies is restarted by the swarm (the default
// policy, on-failure with 10 retries): a new task on a new port that Addr and
// AddrOf follow. Wait returns the killed run's exit; an adopting handle
// counts the restart; a later Stop is not restarted.
func TestRestartAfterKill(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Env["CHECK_PORT"] = "5500"
	s.Ports = []int{5500}
	m := launch(t, b, s)
	if p := restartPolicy(t, b, m); p == nil || p.Condition != swarm.RestartPolicyConditionOnFailure || p.MaxAttempts == nil || *p.MaxAttempts != deploy.DefaultRestartRetries {
		t.Fatalf("task restart policy = %+v, want on-failure with %d attempts", p, deploy.DefaultRestartRetries)
	}
	body(t, m.Addr())
	before, cid := m.Addr(), m.ContainerID()
	type waited struct {
		st  deploy.ExitStatus
		err error
	}
	wc := make(chan waited, 1)
	go func() {
		st, err := m.Wait(ctxFor(t, 60*time.Second))
		wc <- waited{st, err}
	}()
	killTask(t, b, m)
	if w := <-wc; w.err != nil || w.st.Code != 137 {
		t.Fatalf("Wait = %v, %v; want the exit (137) of the killed run", w.st, w.err)
	}
	waitRestarted(t, b, m, 1)
	if m.ContainerID() == cid {
		t.Fatalf("the restarted machine has the killed container %s", cid)
	}
	t.Logf("Addr %s before the restart, %s after", before, m.Addr())
	if got := body(t, m.Addr()); got != "v1" {
		t.Fatalf("GET / after the restart = %q", got)
	}
	xaddr, err := deploy.AddrOf(m, 5500)
	if err != nil {
		t.Fatal(err)
	}
	if got := getPort(t, xaddr); got != "check port" {
		t.Fatalf("GET on 5500 after the restart = %q", got)
	}

	am, err := second(t).Get(ctxFor(t, 10*time.Second), m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if p := am.Spec().Restart; p.Policy != deploy.RestartOnFailure || p.MaxRetries != deploy.DefaultRestartRetries {
		t.Errorf("adopted restart policy = %v", p)
	}
	if n := deploy.RestartsOf(am); n != 1 {
		t.Errorf("adopted restarts = %d, want 1", n)
	}
	if am.Addr() != m.Addr() {
		t.Errorf("adopted Addr = %s, want %s", am.Addr(), m.Addr())
	}

	if err := m.Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * swarmbackend.RestartDelay) // a restart would have come by now
	if _, err := b.List(ctxFor(t, 10*time.Second), app); err != nil {
		t.Fatal(err)
	}
	if m.State() != deploy.StateStopped || m.Restarts() != 1 {
		res, _ := b.Client().TaskList(ctxFor(t, 5*time.Second), client.TaskListOptions{Filters: make(client.Filters).Add("service", m.ServiceID())})
		for _, tk := range res.Items {
			t.Logf("task %s created %s: %s (desired %s) %s", tk.ID, tk.CreatedAt, tk.Status.State, tk.DesiredState, tk.Status.Err)
		}
		t.Fatalf("after Stop: %s with %d restarts, want stopped with 1", m.State(), m.Restarts())
	}
}

// With policy never a killed task stays down; with always a clean exit is
// restarted too.
func TestRestartPolicies(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	never := launch(t, b, s)
	body(t, never.Addr())
	killTask(t, b, never)
	if st, err := never.Wait(ctxFor(t, 30*time.Second)); err != nil || st.Code != 137 {
		t.Fatalf("Wait = %v, %v; want exit code 137", st, err)
	}

	a := spec(app, "v1")
	a.Cmd = []string{docker.BinaryPath, "exit", "0", "bye"}
	a.Restart = deploy.RestartPolicy{Policy: deploy.RestartAlways}
	always := launch(t, b, a)
	if p := restartPolicy(t, b, always); p == nil || p.Condition != swarm.RestartPolicyConditionAny {
		t.Fatalf("task restart policy = %+v, want condition any", p)
	}
	deadline := time.Now().Add(60 * time.Second)
	for always.Restarts() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("always: %d restarts after its clean exits, want 2", always.Restarts())
		}
		if _, err := b.List(ctxFor(t, 10*time.Second), app); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the swarm replaces the task after RestartDelay; look again
	}

	time.Sleep(2 * swarmbackend.RestartDelay) // a restart of never would have come by now
	if _, err := b.List(ctxFor(t, 10*time.Second), app); err != nil {
		t.Fatal(err)
	}
	if never.State() != deploy.StateStopped || never.Restarts() != 0 {
		t.Errorf("never: %s with %d restarts, want stopped with none", never.State(), never.Restarts())
	}
	if err := always.Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}
