package docker

import (
	"testing"
	"time"

	"github.com/cutover/deploy/backend/internal/enginetest"
	"github.com/moby/moby/client"
)

// The spec's other ports are published on loopback too, each on its own
// ephemeral host port; AddrOf finds them, an adopted machine included, and a
// health check with a Port dials that one.
func TestExtraPortsPublished(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	m := launch(t, b, enginetest.ExtraPortSpec(spec(app, "v1"), 5500))
	addr := enginetest.CheckExtraPort(t, m, 5500, "v1")

	res, err := b.cli.ContainerInspect(ctxFor(t, 10*time.Second), m.ID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Container.HostConfig.PortBindings); n != 2 {
		t.Fatalf("%d ports published, want 2", n)
	}
	for port, bindings := range res.Container.HostConfig.PortBindings {
		for _, pb := range bindings {
			if pb.HostIP.String() != "127.0.0.1" {
				t.Errorf("port %v bound on %v, want 127.0.0.1", port, pb.HostIP)
			}
		}
	}

	// A handle rebuilt from the engine (as another process adopts it) knows the port too.
	got, err := adopt(b, res.Container)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.CheckAdoptedPort(t, got, 5500, addr)
}

// An entrypoint override runs, with the command as its arguments, and an
// adopted handle knows it.
func TestEntrypointOverride(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Entrypoint = []string{BinaryPath, "exit"}
	s.Cmd = []string{"3"}
	m := launch(t, b, s)
	enginetest.WaitExit(t, m, 3) // the entrypoint's exit 3
	res, err := b.cli.ContainerInspect(ctxFor(t, 10*time.Second), m.ID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := adopt(b, res.Container)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Spec().Entrypoint; len(got) != 2 || got[0] != BinaryPath || got[1] != "exit" {
		t.Fatalf("adopted Entrypoint = %q", got)
	}
}
