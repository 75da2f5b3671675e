package edge_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/examples/cutover/internal/edge"
	"github.com/cutover/deploy/examples/cutover/internal/pebbletest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// httpsTransport reaches every host name at 127.0.0.1:port over TLS,
// trusting roots, with HTTP/2.
func httpsTransport(t *testing.T, port int, tc *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
		},
		TLSClientConfig:   tc,
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// get returns the status, body and protocol of a GET of url.
func get(t *testing.T, c *http.Client, url string) (int, string, *http.Response) {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err, url)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b), res
}

// listen listens on 127.0.0.1:port (0: any).
func listen(t *testing.T, port int) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	return ln
}

// serve starts f on the listeners; the returned function stops it and waits.
func serve(t *testing.T, f *edge.Front, httpLn, tlsLn net.Listener) func() {
	done := make(chan error, 1)
	go func() { done <- f.Serve(httpLn, tlsLn) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, f.Shutdown(ctx))
		assert.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

// TestACME: a certificate from a real ACME server (Pebble; the HTTP-01
// challenge answered on the HTTP port, the only way Pebble can validate
// here), HTTPS with HTTP/2 for two apps by host, HTTP redirected to HTTPS, a
// deploy of one app under load over HTTPS that fails no request and leaves
// the other app's traffic untouched, and after a restart (Pebble stopped) the
// certificate served from the cache directory.
func TestACME(t *testing.T) {
	httpLn, tlsLn := listen(t, 0), listen(t, 0)
	httpPort, tlsPort := httpLn.Addr().(*net.TCPAddr).Port, tlsLn.Addr().(*net.TCPAddr).Port
	pb := pebbletest.Start(t, httpPort, pebbletest.FreePort(t)) // TLS-ALPN-01 goes to a closed port: HTTP-01 must work

	b := mem.New()
	defer b.Close()
	for _, v := range []string{"v1", "v2", "api"} {
		b.Register(v, deploytest.App(v))
	}
	ctx := context.Background()
	var mux proxy.Mux
	deployers := map[string]*deploy.Deployer{}
	for _, app := range []string{"web", "api"} {
		px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
		defer px.CloseIdleConnections()
		require.NoError(t, mux.Handle(app+".test", "", px))
		deployers[app] = &deploy.Deployer{Backend: b, Router: px, Strategy: rolling.Strategy{},
			Health: health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}, WaitTimeout: 10 * time.Second}
	}
	_, err := deployers["web"].Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "v1", Version: "v1"}, Count: 2})
	require.NoError(t, err)
	_, err = deployers["api"].Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "api", Image: "api", Version: "api"}, Count: 2})
	require.NoError(t, err)

	cacheDir := filepath.Join(t.TempDir(), "acme")
	opts := edge.Options{
		Hosts:     []string{"web.test", "api.test"},
		ACME:      &edge.ACME{CacheDir: cacheDir, DirectoryURL: pb.DirectoryURL, HTTPClient: pb.Client},
		HTTPSPort: tlsPort,
	}
	f, err := edge.New(&mux, opts)
	require.NoError(t, err)
	stop := serve(t, f, httpLn, tlsLn)

	tr := httpsTransport(t, tlsPort, &tls.Config{RootCAs: pb.Roots})
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	start := time.Now()
	code, body, res := get(t, hc, "https://web.test/")
	require.Equal(t, 200, code)
	require.Equal(t, "v1", body)
	require.Equal(t, 2, res.ProtoMajor, "HTTP/2 over TLS")
	webSerial := res.TLS.PeerCertificates[0].SerialNumber
	t.Logf("first HTTPS request (certificate issued) in %v", time.Since(start))
	code, body, res = get(t, hc, "https://api.test/")
	require.Equal(t, 200, code)
	require.Equal(t, "api", body)
	require.Equal(t, 2, res.ProtoMajor)
	require.Equal(t, []string{"api.test"}, res.TLS.PeerCertificates[0].DNSNames)

	// HTTP: redirected, 308 keeps the method; a host not served is 404.
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, httpLn.Addr().String())
		}}}
	defer plain.CloseIdleConnections()
	code, _, res = get(t, plain, "http://web.test/a/b?c=d")
	require.Equal(t, http.StatusPermanentRedirect, code)
	require.Equal(t, "https://web.test:"+strconv.Itoa(tlsPort)+"/a/b?c=d", res.Header.Get("Location"))
	code, _, _ = get(t, plain, "http://other.test/")
	require.Equal(t, 404, code)
	// HTTPS for a name not served: no certificate, no handshake.
	_, err = hc.Get("https://other.test/")
	require.Error(t, err)

	// Deploy web under load over HTTPS; api's load goes on beside it.
	webLoad := deploytest.StartLoad(ctx, "https://web.test", deploytest.LoadOptions{Workers: 4, Duration: 2 * time.Minute, Transport: tr})
	apiLoad := deploytest.StartLoad(ctx, "https://api.test", deploytest.LoadOptions{Workers: 4, Duration: 2 * time.Minute, Transport: tr})
	require.NoError(t, webLoad.WaitRequests(ctx, 100))
	require.NoError(t, apiLoad.WaitRequests(ctx, 100))
	b.Inject(mem.Fault{ListenAfter: 200 * time.Millisecond}) // machines that take a while to listen
	res2, err := deployers["web"].Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "v2", Version: "v2"}})
	require.NoError(t, err)
	n := webLoad.Mark()
	require.NoError(t, webLoad.WaitEpoch(ctx, n, 100))
	wr, ar := webLoad.Stop(), apiLoad.Stop()
	t.Logf("deploy %s in %v; web: %v; api: %v", res2.Status, res2.Duration(), wr, ar)
	require.Zero(t, wr.Failed, "%v", wr.Errors)
	require.Zero(t, ar.Failed, "%v", ar.Errors)
	require.Positive(t, wr.ByBody["v2"])
	require.Equal(t, map[string]int64{"v2": webLoad.Epoch(n)["v2"]}, webLoad.Epoch(n))
	require.Equal(t, map[string]int64{"api": ar.Requests}, ar.ByBody, "api's traffic untouched")

	// Restart with Pebble gone: the certificate comes from the cache.
	stop()
	tr.CloseIdleConnections()
	pb.Stop()
	_, err = os.Stat(filepath.Join(cacheDir, "web.test"))
	require.NoError(t, err, "the certificate is in the cache directory")
	f2, err := edge.New(&mux, opts)
	require.NoError(t, err)
	serve(t, f2, listen(t, httpPort), listen(t, tlsPort))
	code, body, res = get(t, hc, "https://web.test/")
	require.Equal(t, 200, code)
	require.Equal(t, "v2", body)
	require.Equal(t, 0, webSerial.Cmp(res.TLS.PeerCertificates[0].SerialNumber), "the same certificate after the restart")
}

// TestValidate: TLS without hosts is refused (ErrNoHosts), and so are half
// a key pair and ACME for a wildcard.
func TestValidate(t *testing.T) {
	_, err := edge.New(http.NotFoundHandler(), edge.Options{ACME: &edge.ACME{CacheDir: t.TempDir()}})
	require.True(t, errors.Is(err, edge.ErrNoHosts), "%v", err)
	_, err = edge.New(http.NotFoundHandler(), edge.Options{CertFile: "c.pem", KeyFile: "k.pem"})
	require.True(t, errors.Is(err, edge.ErrNoHosts), "%v", err)
	_, err = edge.New(http.NotFoundHandler(), edge.Options{Hosts: []string{"a.test"}, CertFile: "c.pem"})
	require.Error(t, err)
	_, err = edge.New(http.NotFoundHandler(), edge.Options{Hosts: []string{"*.a.test"}, ACME: &edge.ACME{CacheDir: t.TempDir()}})
	require.Error(t, err)
	_, err = edge.New(http.NotFoundHandler(), edge.Options{})
	require.NoError(t, err)
}
