package deploytest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

func get(t *testing.T, m deploy.Machine, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + m.Addr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// Every machine of a SlowBoot image boots on its own clock: one started
// after another has booted answers 503 while the first serves its version.
func TestSlowBootIsPerMachine(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	defer b.Close()
	b.RegisterPerMachine("v1", deploytest.SlowBoot(500*time.Millisecond))
	start := func() deploy.Machine {
		m, err := b.Create(ctx, deploy.MachineSpec{App: "web", Image: "v1", Version: "v1"})
		require.NoError(t, err)
		require.NoError(t, m.Start(ctx))
		return m
	}
	m1 := start()
	code, body := get(t, m1, "/health")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "booting\n", body)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, deploy.WaitHealthy(wctx, m1, health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}))

	m2 := start()
	code, _ = get(t, m2, "/")
	assert.Equal(t, http.StatusServiceUnavailable, code, "the second machine boots from its own start")
	code, body = get(t, m1, "/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "v1", body)
}

// A rolling deploy to machines that listen at once but boot for a while
// loses no request: traffic waits for their HTTP health checks.
func TestRollingWaitsForSlowBoot(t *testing.T) {
	ctx := context.Background()
	b := mem.New()
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	b.RegisterPerMachine("v2", deploytest.SlowBoot(300*time.Millisecond))
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.Close()
	front := httptest.NewServer(px)
	defer front.Close()
	d := &deploy.Deployer{Backend: b, Router: px, Strategy: rolling.Strategy{}, WaitTimeout: 10 * time.Second,
		Health: health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}}
	spec := func(v string) deploy.MachineSpec { return deploy.MachineSpec{App: "web", Image: v, Version: v} }
	_, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2})
	require.NoError(t, err)

	run := deploytest.StartLoad(ctx, front.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 50))
	_, err = d.Deploy(ctx, deploy.Request{Spec: spec("v2"), Count: 2})
	require.NoError(t, err)
	after := run.Mark()
	require.NoError(t, run.WaitEpoch(ctx, after, 50))
	res := run.Stop()
	assert.Zero(t, res.Failed, "failures: %v", res.FailedBy)
	assert.Equal(t, []string{"v2"}, keys(run.Epoch(after)))
}
