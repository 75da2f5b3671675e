package deploytest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

// Failures are counted by request kind and reason; successes by version.
func TestLoadCountsFailuresByKindAndReason(t *testing.T) {
	app := deploytest.App("v1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/slow" || r.URL.Path == "/stream" {
			r.URL.Path = "/"
		}
		app.ServeHTTP(w, r)
	}))
	defer srv.Close()
	run := deploytest.StartLoad(context.Background(), srv.URL, deploytest.LoadOptions{Workers: 4, Max: 200, Mixed: true})
	require.NoError(t, run.WaitRequests(context.Background(), 200))
	res := run.Stop()
	assert.Equal(t, int64(200), res.Requests)
	assert.InDelta(t, 50, res.Failed, 4, "about one request in four is an upload")
	assert.Equal(t, map[string]int64{"POST /upload: status 502": res.Failed}, res.FailedBy)
	assert.Equal(t, map[string]int64{"v1": res.Requests - res.Failed}, res.ByBody)
}
