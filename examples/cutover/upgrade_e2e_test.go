package main_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

// `cutover serve --upgrade` takes over the running daemon's sockets under
// load: no request is refused or fails across the restart; the old daemon
// drains and exits 0, the new one serves the app at its count and deploys.
// On the mem backend the machines live in the daemon, so the new one starts
// its own (the current release, at its count) before it takes traffic.
func TestUpgradeUnderLoad(t *testing.T) {
	e := newEnv(t, "upgrade", "demo:v1")
	e.start("mem")
	r := e.run("deploy", "--image", "demo:v1", "--count", "2")
	require.Equal(t, 0, r.code, r.stderr)

	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 100))

	for i := range 2 { // twice: the new daemon hands over as well
		oldDone, oldStop, oldLog := e.done, e.stop, e.log
		e.start("mem", "--upgrade")
		select {
		case <-oldDone:
			assert.NoError(t, e.exitErr, "the old daemon exits 0")
		case <-time.After(2 * time.Minute):
			t.Fatalf("the old daemon did not exit after the handover:\n%s", oldLog.String())
		}
		oldStop() // logs its output
		assert.Contains(t, oldLog.String(), "a new daemon took over the sockets")
		require.NoError(t, run.WaitRequests(ctx, int64(300*(i+2))))
	}

	r = e.run("deploy", "--image", "demo:v2")
	require.Equal(t, 0, r.code, r.stderr)
	testOnly := run.Mark()
	require.NoError(t, run.WaitEpoch(ctx, testOnly, 100))
	lr := run.Stop()
	t.Logf("load across two upgrades and a deploy: %s", lr)
	assert.Zero(t, lr.Failed, "no request refused or failed: %v", lr.Errors)
	assert.Equal(t, map[string]int64{"v2": run.Epoch(testOnly)["v2"]}, run.Epoch(testOnly))
}
