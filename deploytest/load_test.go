package deploytest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
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

// The JSON line says "failed" before "nodes", as .ci/run's checks read it.
func TestTrialSummaryJSON(t *testing.T) {
	res := &deploy.Result{Strategy: "rolling", FromVersion: "v1", Version: "v2", Status: deploy.StatusSucceeded}
	tr := &deploytest.Trial{Result: res, Count: 4, Load: deploytest.LoadResult{Requests: 10}, Nodes: 2}
	b, err := json.Marshal(tr.Summary())
	require.NoError(t, err)
	assert.Contains(t, string(b), `"failed":0,`)
	assert.Regexp(t, `"failed":0,.*"nodes":2`, string(b))
	var sb strings.Builder
	tr.Print(&sb)
	assert.Contains(t, sb.String(), "requests: 10, failed: 0")
	assert.Contains(t, sb.String(), "nodes serving: 2")
}
