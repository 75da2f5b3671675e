package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
)

// groupsTOML is a two-group fly.toml: web serves (the image's own command),
// worker runs the app's worker command and takes no traffic.
const groupsTOML = `app = %q
kill_timeout = 5

[build]
  image = %q

[processes]
  web = ""
  worker = "/app worker --queue orders"

[http_service]
  internal_port = 8080
  processes = ["web"]
  [[http_service.checks]]
    path = "/health"
    interval = "100ms"
    timeout = "2s"
`

func (e *env) groupsRequest(t *testing.T, version string) deploy.Request {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, groupsTOML, e.App, image(version)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Groups {
		p.Groups[i].Count = map[string]int{"web": 2, "worker": 1}[p.Groups[i].Name]
	}
	req, err := p.Request()
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// checkGroups checks the containers per group and version, that the proxy
// routes the web containers only, and that the workers run their command.
func (e *env) checkGroups(t *testing.T, version string) {
	t.Helper()
	ms, err := e.Backend.List(testenv.CtxFor(t, 30*time.Second), e.App)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	web := map[string]bool{}
	for _, m := range ms {
		g := m.Spec().Labels[deploy.LabelGroup]
		got[g+"/"+m.Spec().Version]++
		if g == "web" {
			web[m.Addr()] = true
			continue
		}
		rc, err := m.(deploy.LogReader).Logs(testenv.CtxFor(t, 10*time.Second), false)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(out), `worker: version `) || !strings.Contains(string(out), `group worker, args ["--queue" "orders"]`) {
			t.Errorf("worker %s logs: %q", m.ID(), out)
		}
	}
	wantVersions(t, "containers", got, map[string]int{"web/" + version: 2, "worker/" + version: 1})
	targets := e.Proxy.Targets()
	if len(targets) != 2 {
		t.Errorf("targets %v, want the 2 web containers", targets)
	}
	for a := range targets {
		if !web[a] {
			t.Errorf("routed %s is no web container", a)
		}
	}
}

// A two-group app on the engine: v1 to v2 under load with no failed request,
// the worker containers run their own command and take no traffic, and a
// rollback restores both groups.
func TestDockerProcessGroups(t *testing.T) {
	e := newEnv(t)
	e.Deployer.Store = release.NewMemory()
	e.Deployer.FromRelease = config.FromRelease
	if _, err := e.Deployer.Deploy(testenv.CtxFor(t, 2*time.Minute), e.groupsRequest(t, "v1")); err != nil {
		t.Fatal(err)
	}
	e.checkGroups(t, "v1")
	run := e.Load(t)
	res, err := e.Deployer.Deploy(testenv.CtxFor(t, 2*time.Minute), e.groupsRequest(t, "v2"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "v2" || len(res.Machines) != 3 {
		t.Errorf("result: %s, machines %v", res.Version, res.Machines)
	}
	deploytest.OnlyVersion(t, run, "v2", 100)
	e.checkGroups(t, "v2")

	if _, err := e.Deployer.Rollback(testenv.CtxFor(t, 2*time.Minute), e.App, 1); err != nil {
		t.Fatal(err)
	}
	after := settle(t, run)
	if got := run.Epoch(after); len(got) != 1 || got["v1"] == 0 {
		t.Errorf("after the rollback, served by %v; want v1 only", got)
	}
	e.checkGroups(t, "v3")
}
