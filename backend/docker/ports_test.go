package docker

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
)

// The spec's other ports are published on loopback too, each on its own
// ephemeral host port; AddrOf finds them, an adopted machine included, and a
// health check with a Port dials that one.
func TestExtraPortsPublished(t *testing.T) {
	b := engine(t)
	app := newApp(t, b)
	s := spec(app, "v1")
	s.Env["CHECK_PORT"] = "5500"
	s.Ports = []int{5500}
	m := launch(t, b, s)

	addr, err := deploy.AddrOf(m, 5500)
	if err != nil {
		t.Fatalf("AddrOf(5500): %v", err)
	}
	if addr == m.Addr() {
		t.Fatalf("AddrOf(5500) = the app's address %s", addr)
	}
	ctx := ctxFor(t, 30*time.Second)
	if err := deploy.WaitHealthy(ctx, m, health.HTTP{Port: 5500, Interval: 50 * time.Millisecond}); err != nil {
		t.Fatalf("check on 5500: %v", err)
	}
	resp, err := httpClient.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "check port" {
		t.Fatalf("GET on 5500 = %q, want the check port's answer", body)
	}
	if got := get(t, m, "/"); got != "v1" {
		t.Fatalf("GET / on the app port = %q", got)
	}
	if _, err := deploy.AddrOf(m, 7000); !errors.Is(err, deploy.ErrPortNotPublished) {
		t.Fatalf("AddrOf(7000) = %v, want ErrPortNotPublished", err)
	}

	res, err := b.cli.ContainerInspect(ctx, m.(*Machine).ContainerID(), client.ContainerInspectOptions{})
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
	if got.Spec().Ports[0] != 5500 {
		t.Fatalf("adopted spec Ports = %v", got.Spec().Ports)
	}
	if a, err := deploy.AddrOf(got, 5500); err != nil || a != addr {
		t.Fatalf("adopted AddrOf(5500) = %q, %v; want %s", a, err, addr)
	}
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
	st, err := m.Wait(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 3 {
		t.Fatalf("exit %v, want code 3 from the entrypoint's exit 3", st)
	}
	res, err := b.cli.ContainerInspect(ctxFor(t, 10*time.Second), m.(*Machine).ContainerID(), client.ContainerInspectOptions{})
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
