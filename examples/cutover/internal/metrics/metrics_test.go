package metrics_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/examples/cutover/internal/metrics"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape GETs url and returns each sample's value by its name and labels as
// written ("name{a=\"b\"}"), and the sums of each name's samples.
func scrape(t *testing.T, url string) (samples, sums map[string]float64) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	samples, sums = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		samples[line[:i]] = v
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		sums[name] += v
	}
	require.NoError(t, sc.Err())
	return samples, sums
}

// TestScrapeDuringDeploy serves the metrics on loopback, deploys two
// versions under load (mem backend) and scrapes during the second deploy
// and after: requests, latency, deploys, their duration and health check
// results move; the deploy shows as running while it runs.
func TestScrapeDuringDeploy(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	b.Register("v2", deploytest.App("v2"))
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.CloseIdleConnections()
	front := httptest.NewServer(px)
	defer front.Close()

	coll := metrics.New()
	coll.AddApp("web", px)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := coll.Server("")
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/metrics"

	d := &deploy.Deployer{Backend: b, Router: px, Strategy: rolling.Strategy{},
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond},
		WaitTimeout: 10 * time.Second, OnEvent: coll.Event}
	ctx := context.Background()
	spec := func(v string) deploy.MachineSpec { return deploy.MachineSpec{App: "web", Image: v, Version: v} }
	res, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2})
	coll.Result(res)
	require.NoError(t, err)

	run := deploytest.StartLoad(ctx, front.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	_, before := scrape(t, url)
	assert.Positive(t, before["cutover_proxy_requests_total"])

	b.Inject(mem.Fault{ListenAfter: 300 * time.Millisecond}) // a deploy long enough to scrape during
	done := make(chan error, 1)
	go func() {
		res, err := d.Deploy(ctx, deploy.Request{Spec: spec("v2")})
		coll.Result(res)
		done <- err
	}()
	var during map[string]float64
	require.Eventually(t, func() bool {
		var s map[string]float64
		s, during = scrape(t, url)
		return s[`cutover_deploys_running{app="web"}`] == 1 && during["cutover_proxy_requests_total"] > before["cutover_proxy_requests_total"]
	}, 20*time.Second, 10*time.Millisecond, "a scrape during the deploy shows it running and requests counted")
	require.NoError(t, <-done)
	lr := run.Stop()
	require.Zero(t, lr.Failed, "%v", lr.Errors)

	after, sums := scrape(t, url)
	t.Logf("requests %v -> %v -> %v", before["cutover_proxy_requests_total"], during["cutover_proxy_requests_total"], sums["cutover_proxy_requests_total"])
	assert.Equal(t, 2.0, after[`cutover_deploys_total{app="web",outcome="succeeded",strategy="rolling"}`])
	assert.Equal(t, 2.0, after[`cutover_deploy_duration_seconds_count{app="web",outcome="succeeded",strategy="rolling"}`])
	assert.Positive(t, after[`cutover_deploy_duration_seconds_sum{app="web",outcome="succeeded",strategy="rolling"}`])
	assert.Equal(t, 0.0, after[`cutover_deploys_running{app="web"}`])
	assert.GreaterOrEqual(t, after[`cutover_health_checks_total{app="web",result="healthy"}`], 4.0)
	assert.Equal(t, 0.0, after[`cutover_proxy_paused{app="web"}`])
	// Two v2 targets now; their latency histograms count what they served.
	var v2served, histCount float64
	for addr, st := range px.Stats() {
		v2served += float64(st.Requests)
		histCount += after[`cutover_proxy_request_duration_seconds_count{app="web",target="`+addr+`"}`]
		inf := after[`cutover_proxy_request_duration_seconds_bucket{app="web",target="`+addr+`",le="+Inf"}`]
		assert.Equal(t, after[`cutover_proxy_request_duration_seconds_count{app="web",target="`+addr+`"}`], inf)
	}
	assert.Positive(t, histCount)
	assert.InDelta(t, v2served, sums["cutover_proxy_requests_total"], v2served*0.01+1) // the old targets left the set
	assert.Contains(t, after, `cutover_proxy_queue_waiting{app="web"}`)
	assert.Contains(t, after, `cutover_proxy_retries_total{app="web"}`)
}
