package main_test

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/examples/cutover/internal/pebbletest"
)

// `serve --acme` against a real ACME server (Pebble, validating over
// HTTP-01 on the daemon's HTTP port): certificates for two apps by host,
// HTTPS with HTTP/2, HTTP redirected; a deploy of one app under load over
// HTTPS fails no request and leaves the other's traffic untouched; after a
// restart of the daemon, with Pebble gone, the cached certificate is served.
func TestServeACME(t *testing.T) {
	e := newEnv(t, "acmea", "demo:a1")
	require.NoError(t, os.Mkdir(filepath.Join(e.dir, "b"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "b", "fly.toml"), []byte(`app = "acmeb"
[build]
  image = "demo:b1"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    path = "/health"
    interval = "200ms"
`), 0o644))
	httpsPort := pebbletest.FreePort(t)
	pb := pebbletest.Start(t, e.port, pebbletest.FreePort(t)) // TLS-ALPN-01 to a closed port: HTTP-01 must work
	args := []string{"--backend", "mem", "--port", strconv.Itoa(e.port), "--https-port", strconv.Itoa(httpsPort),
		"--acme", "--acme-directory", pb.DirectoryURL, "--acme-ca-file", pb.CAFile,
		"--host", "a.test", "--app", "b/fly.toml=b.test"}
	stop := daemon(t, e.dir, e.url(), args...)
	b := []string{"-c", "b/fly.toml", "--state-dir", ".cutover"}
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)
	require.Equal(t, 0, e.run(append([]string{"deploy", "--count", "2"}, b...)...).code)

	tr := hostTransport(t, "127.0.0.1:"+strconv.Itoa(httpsPort))
	tr.ForceAttemptHTTP2, tr.TLSClientConfig = true, &tls.Config{RootCAs: pb.Roots}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	get := func(url string) (string, *big.Int) {
		t.Helper()
		res, err := hc.Get(url)
		require.NoError(t, err, url)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, 200, res.StatusCode, "%s: %s", url, body)
		require.Equal(t, 2, res.ProtoMajor, "HTTP/2 over TLS")
		return string(body), res.TLS.PeerCertificates[0].SerialNumber
	}
	body, serialA := get("https://a.test/")
	require.Equal(t, "a1", body)
	body, _ = get("https://b.test/")
	require.Equal(t, "b1", body)

	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer plain.CloseIdleConnections()
	req, _ := http.NewRequest("GET", e.url()+"/p?q=1", nil)
	req.Host = "b.test"
	res, err := plain.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusPermanentRedirect, res.StatusCode)
	require.Equal(t, "https://b.test:"+strconv.Itoa(httpsPort)+"/p?q=1", res.Header.Get("Location"))

	ctx := context.Background()
	la, lb := loadTwo(t, "https://a.test", "https://b.test", tr)
	r := e.run("deploy", "--image", "demo:a2")
	require.Equal(t, 0, r.code, r.stderr)
	n := la.Mark()
	require.NoError(t, la.WaitEpoch(ctx, n, 50))
	stopTwo(t, la, lb, "b1")

	// Restart with Pebble gone: the certificate comes from <state-dir>/acme.
	stop()
	tr.CloseIdleConnections()
	pb.Stop()
	_, err = os.Stat(filepath.Join(e.dir, ".cutover", "acme", "a.test"))
	require.NoError(t, err)
	daemon(t, e.dir, e.url(), args...) // it returns once its recovery ended
	require.Equal(t, 0, e.run("deploy", "--image", "demo:a3", "--count", "1").code)
	body, serial := get("https://a.test/")
	require.Equal(t, "a3", body)
	require.Equal(t, 0, serialA.Cmp(serial), "the same certificate after the restart")
}
