package main_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
)

// statusOf returns the daemon's status (cutover status --json more...).
func statusOf(t *testing.T, e *env, more ...string) control.Status {
	t.Helper()
	r := e.run(append([]string{"status", "--json"}, more...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var st control.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	return st
}

// machinesRouted counts the status's machines by version and how many of
// them the proxy routes to.
func machinesRouted(st control.Status) (map[string]int, int) {
	versions, routed := map[string]int{}, 0
	for _, m := range st.Machines {
		versions[m.Version]++
		if st.Targets[m.Addr] > 0 {
			routed++
		}
	}
	return versions, routed
}

// `cutover scale` under load: 2 -> 4 -> 1 machines of the current release,
// no new release, no request failed; the count survives an upgrade of the
// daemon (mem: the new daemon starts the release at its recorded count).
func TestScaleCLI(t *testing.T) {
	e := newEnv(t, "scale", "demo:v1")
	e.start("mem")
	r := e.run("scale", "3")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "scale has no release to scale: deploy first")
	r = e.run("deploy", "--count", "2")
	require.Equal(t, 0, r.code, r.stderr)

	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Mixed: true})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 100))

	r = e.run("scale", "4")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "==> scaling scale v1: 2 -> 4 machines")
	assert.Regexp(t, `✔ scale v1 scaled in \S+: 4 machines: `, r.stdout)
	versions, routed := machinesRouted(statusOf(t, e))
	assert.Equal(t, map[string]int{"v1": 4}, versions)
	assert.Equal(t, 4, routed)
	require.NoError(t, run.WaitEpoch(ctx, run.Mark(), 100))

	e.upgrade("mem") // the new daemon runs the release at its recorded count
	versions, routed = machinesRouted(statusOf(t, e))
	assert.Equal(t, map[string]int{"v1": 4}, versions, "the scaled count survives a restart")
	assert.Equal(t, 4, routed)

	r = e.run("scale", "1", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var res control.Result
	lastJSON(t, r.stdout, &res)
	assert.Equal(t, "scale", res.Strategy)
	assert.Len(t, res.Machines, 1)
	assert.Equal(t, 3, res.Counts["machine_draining"])
	versions, routed = machinesRouted(statusOf(t, e))
	assert.Equal(t, map[string]int{"v1": 1}, versions)
	assert.Equal(t, 1, routed)
	require.NoError(t, run.WaitEpoch(ctx, run.Mark(), 100))

	r = e.run("releases", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var rels []releaseLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rels))
	assert.Len(t, rels, 1, "a scale makes no release")

	for _, bad := range [][]string{{"scale", "0"}, {"scale", "web=2", "3"}, {"scale"}, {"scale", "x=0"}, {"scale", "--process-group", "web", "web=2"}} {
		r = e.run(bad...)
		assert.Equal(t, 2, r.code, "%v", bad)
	}
	r = e.run("scale", "nosuch=2")
	assert.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, `cutover scale: scale scale: invalid: no process group "nosuch": the app has none; give its count alone`)

	lr := run.Stop()
	t.Logf("load across scale 2 -> 4, an upgrade, scale 4 -> 1: %s", lr)
	assert.Zero(t, lr.Failed, "no request failed: %v", lr.Errors)
}
