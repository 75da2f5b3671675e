package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/deploytest"
)

// selfSigned writes a certificate for hosts and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string, hosts ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// `serve --https-port --cert --key --host`: HTTPS with HTTP/2 for the
// host, HTTP redirected, other hosts 404, a deploy under load over HTTPS
// fails no request; TLS without --host is refused (exit 2).
func TestServeTLSCertFiles(t *testing.T) {
	e := newEnv(t, "tl", "demo:v1")
	certFile, keyFile, pool := selfSigned(t, e.dir, "app.test")
	r := e.run("serve", "--backend", "mem", "--port", strconv.Itoa(e.port), "--https-port", strconv.Itoa(freePort(t)), "--cert", certFile, "--key", keyFile)
	require.Equal(t, 2, r.code, "TLS without --host")
	require.Contains(t, r.stderr, "--host")

	httpsPort := freePort(t)
	tr := hostTransport(t, "127.0.0.1:"+strconv.Itoa(httpsPort))
	tr.ForceAttemptHTTP2, tr.TLSClientConfig = true, &tls.Config{RootCAs: pool}
	daemon(t, e.dir, e.url(), "--backend", "mem", "--port", strconv.Itoa(e.port), "--https-port", strconv.Itoa(httpsPort),
		"--cert", certFile, "--key", keyFile, "--host", "app.test")
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)

	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	res, err := hc.Get("https://app.test/")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, "v1", string(body))
	require.Equal(t, 2, res.ProtoMajor, "HTTP/2 over TLS")

	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer plain.CloseIdleConnections()
	req, _ := http.NewRequest("GET", e.url()+"/x", nil)
	req.Host = "app.test"
	res, err = plain.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusPermanentRedirect, res.StatusCode)
	require.Equal(t, "https://app.test:"+strconv.Itoa(httpsPort)+"/x", res.Header.Get("Location"))
	req, _ = http.NewRequest("GET", e.url()+"/x", nil)
	req.Host = "other.test"
	res, err = plain.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 404, res.StatusCode)

	ctx := context.Background()
	run := deploytest.StartLoad(ctx, "https://app.test", deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute, Transport: tr})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	r = e.run("deploy", "--image", "demo:v2")
	require.Equal(t, 0, r.code, r.stderr)
	n := run.Mark()
	require.NoError(t, run.WaitEpoch(ctx, n, 50))
	lr := run.Stop()
	require.Zero(t, lr.Failed, "%v", lr.Errors)
	require.Equal(t, map[string]int64{"v2": run.Epoch(n)["v2"]}, run.Epoch(n))
	t.Logf("over HTTPS: %v", lr)
	require.True(t, strings.Contains(e.run("status").stdout, "v2"))
}
