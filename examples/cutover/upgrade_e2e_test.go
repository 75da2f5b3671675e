package main_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

// upgrade starts `cutover serve --backend backend --upgrade more...` and
// waits until the old daemon handed its sockets over and exited 0.
func (e *env) upgrade(backend string, more ...string) {
	e.t.Helper()
	oldDone, oldStop, oldLog, oldPID := e.done, e.stop, e.log, e.pid
	e.start(backend, append([]string{"--upgrade"}, more...)...)
	select {
	case <-oldDone:
	case <-time.After(2 * time.Minute):
		// SIGQUIT makes the stuck daemon print its goroutines into its log.
		_ = syscall.Kill(oldPID, syscall.SIGQUIT)
		select {
		case <-oldDone:
		case <-time.After(10 * time.Second):
		}
		e.t.Fatalf("the old daemon did not exit after the handover:\n%s", oldLog.String())
	}
	oldStop() // checks it exited 0 and logs its output
	assert.Contains(e.t, oldLog.String(), "a new daemon took over the sockets")
}

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
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Mixed: true})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 100))

	for i := range 2 { // twice: the new daemon hands over as well
		e.upgrade("mem")
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

// A daemon serving HTTPS (and metrics) hands over every listening socket:
// `serve --upgrade` with the same --https-port and --metrics-addr takes them
// over under load through HTTPS, HTTP/2 and HTTP/1.1 at once, both with
// mixed requests (uploads, streams, slow answers); no request is refused or fails across two
// upgrades, the metrics answer on the same address from the new daemon, and
// HTTP still redirects to HTTPS.
func TestUpgradeTLSUnderLoad(t *testing.T) {
	e := newEnv(t, "upgradetls", "demo:v1")
	certFile, keyFile, pool := selfSigned(t, e.dir, "app.test")
	httpsPort, metricsAddr := freePort(t), "127.0.0.1:"+strconv.Itoa(freePort(t))
	flags := []string{"--https-port", strconv.Itoa(httpsPort), "--cert", certFile, "--key", keyFile, "--host", "app.test", "--metrics-addr", metricsAddr}
	e.start("mem", flags...)
	r := e.run("deploy", "--image", "demo:v1", "--count", "2")
	require.Equal(t, 0, r.code, r.stderr)

	transport := func(h2 bool) *http.Transport {
		tr := hostTransport(t, "127.0.0.1:"+strconv.Itoa(httpsPort))
		tr.ForceAttemptHTTP2, tr.TLSClientConfig = h2, &tls.Config{RootCAs: pool}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
		}
		return tr
	}
	ctx := context.Background()
	h2 := deploytest.StartLoad(ctx, "https://app.test", deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Mixed: true, Transport: transport(true)})
	defer h2.Stop()
	h1 := deploytest.StartLoad(ctx, "https://app.test", deploytest.LoadOptions{Workers: 2, Duration: 5 * time.Minute, Mixed: true, Transport: transport(false)})
	defer h1.Stop()
	require.NoError(t, h2.WaitRequests(ctx, 100))
	require.NoError(t, h1.WaitRequests(ctx, 100))

	for i := range 2 {
		e.upgrade("mem", flags...)
		assert.Regexp(t, `took over the sockets of pid \d+ \(control on \S+, https on 127\.0\.0\.1:\d+, metrics on 127\.0\.0\.1:\d+, public on 127\.0\.0\.1:\d+\)`, e.log.String())
		assert.NotContains(t, e.log.String(), "not served here")
		require.NoError(t, h2.WaitRequests(ctx, int64(300*(i+2))))
		require.NoError(t, h1.WaitRequests(ctx, int64(300*(i+2))))
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		require.NoError(t, err, "the metrics address is served after the upgrade")
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode)
	}

	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", e.url()+"/x", nil)
	req.Host = "app.test"
	res, err := plain.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusPermanentRedirect, res.StatusCode, "the HTTP port, handed over too, redirects to HTTPS")

	r = e.run("deploy", "--image", "demo:v2")
	require.Equal(t, 0, r.code, r.stderr)
	n := h2.Mark()
	require.NoError(t, h2.WaitEpoch(ctx, n, 100))
	for name, run := range map[string]*deploytest.Load{"HTTP/2": h2, "HTTP/1.1": h1} {
		lr := run.Stop()
		t.Logf("HTTPS load (%s) across two upgrades and a deploy: %s", name, lr)
		assert.NotZero(t, lr.Requests)
		assert.Zero(t, lr.Failed, "%s: no request refused or failed: %v", name, lr.Errors)
	}
	assert.Equal(t, map[string]int64{"v2": h2.Epoch(n)["v2"]}, h2.Epoch(n))
}
