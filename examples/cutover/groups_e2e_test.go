package main_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

const groupsTOML = `app = "shop"

[build]
  image = "demo:v1"

[processes]
  web = "bin/web"
  worker = "bin/worker --queue orders"

[deploy]
  wait_timeout = "60s"

[http_service]
  internal_port = 8080
  processes = ["web"]
  [[http_service.checks]]
    path = "/health"
    interval = "200ms"

[[vm]]
  size = "shared-cpu-1x"
`

// A two-group fly.toml through the CLI on mem: the deploy warns about what it
// will not act on, deploys both groups under load with no failed request,
// status shows each machine's group (workers take no traffic), and a
// rollback restores both.
func TestEndToEndGroupsMem(t *testing.T) {
	e := newEnv(t, "shop", "demo:v1")
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "fly.toml"), []byte(groupsTOML), 0o644))
	e.start("mem")
	r := e.run("deploy")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "warning: fly.toml: vm: machine sizes are the backend's; not applied")

	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 10 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	r = e.run("deploy", "--image", "demo:v2")
	require.Equal(t, 0, r.code, r.stderr)
	deploytest.OnlyVersion(t, run, "v2", 50)

	status := func(version string) {
		t.Helper()
		st := statusOf(t, e)
		groups := map[string]int{}
		for _, m := range st.Machines {
			groups[m.Group]++
			assert.Equal(t, version, m.Version)
			assert.Equal(t, "passing", m.Health, "%s (%s)", m.ID, m.Group)
			if m.Group == "worker" {
				assert.Zero(t, st.Targets[m.Addr], "a worker takes no traffic")
			} else {
				assert.Equal(t, 1, st.Targets[m.Addr])
			}
		}
		assert.Equal(t, map[string]int{"web": 1, "worker": 1}, groups)
		assert.Len(t, st.Targets, 1)
	}
	status("v2")
	r = e.run("status")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `PROCESS\s+ID\s+VERSION`, r.stdout)
	assert.Regexp(t, `\nworker\s+m\d+\s+v2`, r.stdout)
	assert.Regexp(t, `\nweb\s+m\d+\s+v2`, r.stdout)

	r = e.run("rollback")
	require.Equal(t, 0, r.code, r.stderr)
	deploytest.OnlyVersion(t, run, "v1", 50)
	deploytest.AssertNoFailures(t, run.Stop())
	status("v3")
}
