package swarm_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/backend/internal/enginetest"
	swarmbackend "github.com/cutover/deploy/backend/swarm"
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
	s := enginetest.ExtraPortSpec(spec(app, "v1"), 5500)
	m := launch(t, b, s)
	s.Ports[0] = 1 // the machine keeps its own copy
	if got := m.Spec().Ports; !slices.Equal(got, []int{5500}) {
		t.Fatalf("Spec().Ports = %v", got)
	}
	if got := m.Spec().Restart; got != (deploy.RestartPolicy{}).Normalized() {
		t.Fatalf("Spec().Restart = %+v, want the normalized default", got)
	}

	addr := enginetest.CheckExtraPort(t, m, 5500, "v1")
	if !strings.HasPrefix(addr, strings.Split(m.Addr(), ":")[0]+":") {
		t.Fatalf("AddrOf(5500) = %s, want a port of the app's node (%s)", addr, m.Addr())
	}
	ctx := ctxFor(t, 30*time.Second)
	res, err := b.Client().ServiceInspect(ctx, m.ID(), client.ServiceInspectOptions{})
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
	enginetest.CheckAdoptedPort(t, am, 5500, addr)
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
	enginetest.WaitExit(t, m, 3) // the entrypoint's exit 3
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

// A machine whose process dies is restarted by the swarm (the default
// policy, on-failure with 10 retries): a new task on a new port that Addr and
// AddrOf follow. Wait returns the killed run's exit; an adopting handle
// counts the restart; a later Stop is not restarted.
func TestRestartAfterKill(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	m := launch(t, b, enginetest.ExtraPortSpec(spec(app, "v1"), 5500))
	if p := restartPolicy(t, b, m); p == nil || p.Condition != swarm.RestartPolicyConditionOnFailure || p.MaxAttempts == nil || *p.MaxAttempts != deploy.DefaultRestartRetries {
		t.Fatalf("task restart policy = %+v, want on-failure with %d attempts", p, deploy.DefaultRestartRetries)
	}
	enginetest.Body(t, m.Addr())
	before, cid := m.Addr(), m.ContainerID()
	wc := enginetest.WaitLater(t, m)
	killTask(t, b, m)
	if w := <-wc; w.Err != nil || w.Status.Code != 137 {
		t.Fatalf("Wait = %v, %v; want the exit (137) of the killed run", w.Status, w.Err)
	}
	enginetest.WaitRestarted(t, b, m, 1, 60*time.Second)
	if m.ContainerID() == cid {
		t.Fatalf("the restarted machine has the killed container %s", cid)
	}
	t.Logf("Addr %s before the restart, %s after", before, m.Addr())
	if got := enginetest.Body(t, m.Addr()); got != "v1" {
		t.Fatalf("GET / after the restart = %q", got)
	}
	xaddr, err := deploy.AddrOf(m, 5500)
	if err != nil {
		t.Fatal(err)
	}
	if got := enginetest.Body(t, xaddr); got != "check port" {
		t.Fatalf("GET on 5500 after the restart = %q", got)
	}

	am, err := second(t).Get(ctxFor(t, 10*time.Second), m.ID())
	if err != nil {
		t.Fatal(err)
	}
	enginetest.CheckAdoptedRestarts(t, am, m, 1)

	t.Cleanup(func() { // what the swarm did, when the test fails
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, _ := b.Client().TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", m.ID())})
		for _, tk := range res.Items {
			t.Logf("task %s created %s: %s (desired %s) %s", tk.ID, tk.CreatedAt, tk.Status.State, tk.DesiredState, tk.Status.Err)
		}
	})
	enginetest.StopStays(t, b, m, 1, 2*swarmbackend.RestartDelay)
}

// With policy never a killed task stays down; with always a clean exit is
// restarted too.
func TestRestartPolicies(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever}
	never := launch(t, b, s)
	enginetest.Body(t, never.Addr())
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

	// always, launched once never had exited, has been restarted twice, each
	// after RestartDelay: a restart of never would have come by now.
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
