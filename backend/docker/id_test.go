package docker

import (
	"errors"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
)

var shortID = regexp.MustCompile(`^[0-9a-f]{12}$`)

// A machine's ID is its container's ID as docker ps prints it: the engine
// finds the container by it (docker inspect, docker ps --filter id=, docker
// logs), the container's name ends with it, Get takes it and the full ID,
// and a new process sees the same ID.
func TestMachineIDIsContainerID(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, spec(app, "v1")).(*Machine)
	id := m.ID()
	if !shortID.MatchString(id) || !strings.HasPrefix(m.ContainerID(), id) || len(m.ContainerID()) != 64 {
		t.Fatalf("ID %q, ContainerID %q: want the 12-digit short form of the 64-digit container ID", id, m.ContainerID())
	}
	ctx := ctxFor(t, 30*time.Second)

	// docker inspect ID
	res, err := b.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	if res.Container.ID != m.ContainerID() {
		t.Fatalf("inspect %s found container %s, want %s", id, res.Container.ID, m.ContainerID())
	}
	if want := "/cutover-" + app + "-" + id; res.Container.Name != want {
		t.Errorf("container name %q, want %q", res.Container.Name, want)
	}
	if v, ok := res.Container.Config.Labels[eng.LabelLegacyMachine]; ok {
		t.Errorf("label %s = %q: a second ID", eng.LabelLegacyMachine, v)
	}
	// docker ps --filter id=ID
	list, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("id", id)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].ID != m.ContainerID() {
		t.Fatalf("docker ps --filter id=%s: %d containers", id, len(list.Items))
	}
	// docker logs ID
	rc, err := b.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs %s: %v", id, err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()

	// Get takes the short and the full ID; a new process sees the same ID.
	for _, ref := range []string{id, m.ContainerID()} {
		if g, err := b.Get(ctx, ref); err != nil || g != deploy.Machine(m) {
			t.Fatalf("Get(%s) = %v, %v; want the machine's handle", ref, g, err)
		}
	}
	fresh, err := New(ctx, Options{Namespace: testNamespace})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	g, err := fresh.Get(ctx, id)
	if err != nil || g.ID() != id {
		t.Fatalf("fresh Get(%s) = %v, %v", id, g, err)
	}
	for _, ref := range []string{id[:6], "no-such-machine-0123456789", strings.Repeat("0", 12)} {
		if _, err := b.Get(ctx, ref); !errors.Is(err, deploy.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	// Another namespace does not find it by its ID.
	other, err := New(ctx, Options{Namespace: testNamespace + "-other"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Get(ctx, id); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("other namespace Get = %v, want ErrNotFound", err)
	}
}

// A container an earlier version made, labelled with the random machine ID
// it generated and named after it, is adopted: its ID is now its container's,
// and the old label stays out of its spec.
func TestAdoptLegacyContainer(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	ctx := ctxFor(t, 30*time.Second)
	s := normalize(spec(app, "v1"))
	labels, err := eng.Labels("docker", b.opts.Namespace, s)
	if err != nil {
		t.Fatal(err)
	}
	labels[eng.LabelLegacyMachine] = "0123456789ab"
	res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: s.Image, Env: eng.EnvList(s.Env), Labels: labels},
		Name:   b.containerName(app, "0123456789ab"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := b.List(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID() != eng.ShortID(res.ID) {
		t.Fatalf("List = %v, want the container %s", ids(ms), eng.ShortID(res.ID))
	}
	if !reflect.DeepEqual(ms[0].Spec().Labels, s.Labels) {
		t.Fatalf("adopted labels %v, want %v", ms[0].Spec().Labels, s.Labels)
	}
	if g, err := b.Get(ctx, ms[0].ID()); err != nil || g != ms[0] {
		t.Fatalf("Get(%s) = %v, %v; want the adopted handle", ms[0].ID(), g, err)
	}
	if _, err := b.Get(ctx, "0123456789ab"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("Get by the old label's ID = %v, want ErrNotFound", err)
	}
}
