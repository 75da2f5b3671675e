package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
)

// hostTransport sends every request to addr, whatever the URL's host.
func hostTransport(t *testing.T, addr string) *http.Transport {
	d := &net.Dialer{}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// loadTwo starts load on apps a and b (their base URLs, both sent through
// tr) and waits until each answered 50 requests. Stop them with stopTwo.
func loadTwo(t *testing.T, urlA, urlB string, tr http.RoundTripper) (la, lb *deploytest.Load) {
	t.Helper()
	ctx := context.Background()
	la = deploytest.StartLoad(ctx, urlA, deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Transport: tr})
	lb = deploytest.StartLoad(ctx, urlB, deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Transport: tr})
	t.Cleanup(func() { la.Stop(); lb.Stop() })
	require.NoError(t, la.WaitRequests(ctx, 50))
	require.NoError(t, lb.WaitRequests(ctx, 50))
	return la, lb
}

// stopTwo stops the loads of loadTwo and checks that no request failed and
// that only bBody answered on b: a deploy of a left b's traffic untouched.
func stopTwo(t *testing.T, la, lb *deploytest.Load, bBody string) {
	t.Helper()
	ra, rb := la.Stop(), lb.Stop()
	t.Logf("a: %v; b: %v", ra, rb)
	require.Zero(t, ra.Failed, "%v", ra.Errors)
	require.Zero(t, rb.Failed, "%v", rb.Errors)
	require.Equal(t, map[string]int64{bBody: rb.Requests}, rb.ByBody, "b's traffic untouched")
}

// `serve --host a.test --app b/fly.toml=b.test`: two apps behind one port,
// each deployed, paused and listed on its own (the commands pick the app of
// their fly.toml); a deploy of one under load fails no request and leaves the
// other's traffic untouched; an unknown host gets 404.
func TestServeTwoApps(t *testing.T) {
	e := newEnv(t, "appa", "demo:a1")
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, "b"), 0o755))
	// b has a body limit of its own (this project's extension key); a has the flag's default.
	bconf := fmt.Appendf(nil, flyTOML, "appb", "demo:b1")
	bconf = bytes.Replace(bconf, []byte("internal_port = 8080"), []byte("internal_port = 8080\n  max_body_bytes = 1024"), 1)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "b", "fly.toml"), bconf, 0o644))
	daemon(t, e.dir, e.url(), "--backend", "mem", "--port", strconv.Itoa(e.port), "--host", "a.test", "--app", "b/fly.toml=b.test")
	b := []string{"-c", "b/fly.toml", "--state-dir", ".cutover"}
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)
	r := e.run(append([]string{"deploy", "--count", "2"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)

	tr := hostTransport(t, "127.0.0.1:"+strconv.Itoa(e.port))
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	res, err := hc.Get("http://other.test/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 404, res.StatusCode)
	for host, want := range map[string]int{"a.test": http.StatusOK, "b.test": http.StatusRequestEntityTooLarge} {
		res, err := hc.Post("http://"+host+"/", "application/octet-stream", bytes.NewReader(make([]byte, 4096)))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, want, res.StatusCode, "a 4 KiB body to %s", host)
	}

	ctx := context.Background()
	la, lb := loadTwo(t, "http://a.test", "http://b.test", tr)
	r = e.run("deploy", "--image", "demo:a2")
	require.Equal(t, 0, r.code, r.stderr)
	n := la.Mark()
	require.NoError(t, la.WaitEpoch(ctx, n, 50))

	// Pause b only: a flows, b's requests wait, then resume.
	r = e.run(append([]string{"pause"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)
	nb, na := lb.Mark(), la.Mark()
	require.NoError(t, la.WaitEpoch(ctx, na, 50))
	require.Empty(t, lb.Epoch(nb), "b answered during its pause")
	require.Equal(t, 0, e.run(append([]string{"resume"}, b...)...).code)
	require.NoError(t, lb.WaitEpoch(ctx, nb, 20))

	stopTwo(t, la, lb, "b1")
	require.Equal(t, map[string]int64{"a2": la.Epoch(n)["a2"]}, la.Epoch(n))

	r = e.run(append([]string{"releases", "--json"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "demo:b1")
	require.NotContains(t, r.stdout, "demo:a2")
	r = e.run(append([]string{"status", "--json"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"app": "appb"`)
	r = e.run("status", "--json", "-a", "appb") // from app a's directory and fly.toml
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"app": "appb"`)
	r = e.run("status", "-a", "nope")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `runs no app "nope"`)
}

// A daemon that takes over (serve --upgrade) brings back every app it
// serves, the apps of --app as well as the first: on the mem backend it
// starts their machines again, at their counts, and recovers each under the
// deploy lock the last daemon held. The old daemon hands over only while no
// deploy of any of its apps runs.
func TestUpgradeTwoApps(t *testing.T) {
	e := newEnv(t, "appa", "demo:a1")
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, "b"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "b", "fly.toml"), fmt.Appendf(nil, flyTOML, "appb", "demo:b1"), 0o644))
	flags := []string{"--host", "a.test", "--app", "b/fly.toml=b.test"}
	e.start("mem", flags...)
	b := []string{"-c", "b/fly.toml", "--state-dir", ".cutover"}
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)
	r := e.run(append([]string{"deploy", "--count", "2"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)

	// No handover while a deploy of either app runs.
	r = e.run(append([]string{"deploy", "--strategy", "bluegreen", "--hold", "--image", "demo:b9", "--detach"}, b...)...)
	require.Equal(t, 0, r.code, r.stderr)
	e.waitOperation(func(op *control.Operation) bool { return op.Held }, b...)
	r = e.run(append([]string{"serve", "--backend", "mem", "--port", strconv.Itoa(e.port), "--upgrade"}, flags...)...)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "a deploy of appb runs: upgrade once it ends")
	require.Equal(t, 0, e.run(append([]string{"abort"}, b...)...).code)
	require.Eventually(t, func() bool {
		var st control.Status
		r := e.run(append([]string{"status", "--json"}, b...)...)
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st.Operation == nil
	}, time.Minute, 100*time.Millisecond)

	e.upgrade("mem", flags...)
	hc := &http.Client{Transport: hostTransport(t, "127.0.0.1:"+strconv.Itoa(e.port)), Timeout: 10 * time.Second}
	for host, want := range map[string]string{"a.test": "a1", "b.test": "b1"} {
		res, err := hc.Get("http://" + host + "/")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, want, string(body), "%s after the upgrade", host)
	}
	r = e.run(append([]string{"deploy", "--image", "demo:b2"}, b...)...)
	require.Equal(t, 0, r.code, "b deploys after the upgrade: %s", r.stderr)
}
