//go:build unix

package edge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/examples/cutover/internal/edge"
)

// answer is an app that reads the request body and answers name.
func answer(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	})
}

// Two Fronts on one listening socket (as the old and the new daemon of an
// upgrade): Drain moves every keep-alive client of the old one, uploads
// included, to the new one without a failed request; then the old one shuts
// down with no connection left.
func TestDrainHandsClientsOver(t *testing.T) {
	ln := listen(t, 0)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	ln2, err := net.FileListener(f) // the same socket, as a handover gives it
	f.Close()
	require.NoError(t, err)

	old, err := edge.New(answer("old"), edge.Options{})
	require.NoError(t, err)
	oldDone := make(chan error, 1)
	go func() { oldDone <- old.Serve(ln, nil) }()
	ctx := context.Background()
	run := deploytest.StartLoad(ctx, "http://"+ln.Addr().String(), deploytest.LoadOptions{Workers: 8, Duration: time.Minute, Mixed: true})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 200))

	next, err := edge.New(answer("new"), edge.Options{})
	require.NoError(t, err)
	stopNext := serve(t, next, ln2, nil)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, old.Drain(dctx), "every client left the old Front")
	require.NoError(t, old.Shutdown(dctx))
	require.NoError(t, <-oldDone)

	n := run.Mark()
	require.NoError(t, run.WaitEpoch(ctx, n, 200))
	assert.Equal(t, map[string]int64{"new": run.Epoch(n)["new"]}, run.Epoch(n), "only the new Front answers")
	lr := run.Stop()
	t.Logf("load across the drain: %s", lr)
	assert.Zero(t, lr.Failed, "%v", lr.Errors)
	assert.NotZero(t, lr.ByBody["old"])
	stopNext()
}
