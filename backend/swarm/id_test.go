package swarm_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
)

// A machine's ID is its service's ID as docker service ls prints it: the
// manager finds the service by it (docker service inspect, docker service ps,
// docker service logs), Get takes it and the full ID, and a new process sees
// the same ID. A service is named after its app, version and number.
func TestMachineIDIsServiceID(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1"))
	id := m.ID()
	if len(id) != 12 || !strings.HasPrefix(m.ServiceID(), id) || len(m.ServiceID()) <= 12 {
		t.Fatalf("ID %q, ServiceID %q: want the 12-character short form of the service ID", id, m.ServiceID())
	}
	ctx := ctxFor(t, time.Minute)
	cli := b.Client()

	// docker service inspect ID
	res, err := cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("service inspect %s: %v", id, err)
	}
	if res.Service.ID != m.ServiceID() {
		t.Fatalf("service inspect %s found %s, want %s", id, res.Service.ID, m.ServiceID())
	}
	if want := "cutover-" + app + "-v1-1"; res.Service.Spec.Name != want {
		t.Errorf("service name %q, want %q", res.Service.Spec.Name, want)
	}
	for k, v := range res.Service.Spec.Labels {
		if v == id || k == eng.LabelLegacyMachine {
			t.Errorf("label %s = %q: the ID is the service's own", k, v)
		}
	}
	// docker service ps ID
	tasks, err := cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", id)})
	if err != nil {
		t.Fatalf("service ps %s: %v", id, err)
	}
	if len(tasks.Items) == 0 || tasks.Items[0].ServiceID != m.ServiceID() {
		t.Fatalf("service ps %s: %d tasks", id, len(tasks.Items))
	}
	// docker service logs ID
	rc, err := cli.ServiceLogs(ctx, id, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("service logs %s: %v", id, err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()

	// Get takes the short and the full ID; a new process sees the same ID.
	for _, ref := range []string{id, m.ServiceID()} {
		if g, err := b.Get(ctx, ref); err != nil || g != deploy.Machine(m) {
			t.Fatalf("Get(%s) = %v, %v; want the machine's handle", ref, g, err)
		}
	}
	if g, err := second(t).Get(ctx, id); err != nil || g.ID() != id {
		t.Fatalf("second backend Get(%s) = %v, %v", id, g, err)
	}
	for _, ref := range []string{id[:6], "no-such-machine-0123456789"} {
		if _, err := b.Get(ctx, ref); !errors.Is(err, deploy.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", ref, err)
		}
	}

	// The next machine of the version takes the next number.
	m2, err := b.Create(ctx, spec(app, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	res, err = cli.ServiceInspect(ctx, m2.ID(), client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "cutover-" + app + "-v1-2"; res.Service.Spec.Name != want {
		t.Errorf("second service name %q, want %q", res.Service.Spec.Name, want)
	}
}
