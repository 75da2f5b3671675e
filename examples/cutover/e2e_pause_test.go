package main_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

// `cutover pause` and `cutover resume` under load: no request fails, and
// none of those sent during the pause is answered before the resume.
func TestPauseResume(t *testing.T) {
	e := newEnv(t, "pz", "demo:v1")
	e.start("mem")
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)
	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	for range 2 {
		r := e.run("pause", "--timeout", "1m")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "paused")
		n := run.Mark()
		held := e.run("status", "--json") // a command's length of pause, at least
		require.Equal(t, 0, held.code)
		require.Empty(t, run.Epoch(n), "requests sent during the pause were answered before the resume")
		r = e.run("resume")
		require.Equal(t, 0, r.code, r.stderr)
		require.NoError(t, run.WaitEpoch(ctx, n, 20))
	}
	lr := run.Stop()
	require.Zero(t, lr.Failed, "failed requests: %v", lr.Errors)
	t.Logf("load: %v", lr)
	r := e.run("pause", "--timeout", "0")
	require.Equal(t, 2, r.code)
}
