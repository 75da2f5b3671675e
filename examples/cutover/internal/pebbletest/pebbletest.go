// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for the
// tests of the cutover daemon: installed from the Go module proxy into the
// user's cache folder (once per machine), with its DNS server answering
// 127.0.0.1 for every name, everything on loopback.
package pebbletest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/deploy/examples/cutover/internal/testlog"
)

// Version is the ACME test server the tests run, from the Go module proxy.
const Version = "v2.10.3"

var (
	buildOnce sync.Once
	pebbleBin string // the pebble and pebble-challtestsrv binaries' directory
	pebbleSrc string // the module's source (its test certificates)
	buildErr  error
)

// buildPebble installs pebble and pebble-challtestsrv into a cache folder
// (once per machine: later runs reuse them) and finds the module's source.
func buildPebble() (bin, src string, err error) {
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		pebbleBin = filepath.Join(cache, "cutover-test", "pebble-"+Version)
		mod := "github.com/letsencrypt/pebble/v2"
		env := append(os.Environ(), "GOBIN="+pebbleBin, "GOFLAGS=", "CGO_ENABLED=0")
		run := func(args ...string) ([]byte, error) {
			cmd := exec.Command("go", args...)
			cmd.Env, cmd.Dir = env, os.TempDir() // outside this module
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("go %v: %v: %s", args, err, stderr.Bytes())
			}
			return out, nil
		}
		if _, err := os.Stat(filepath.Join(pebbleBin, "pebble-challtestsrv")); err != nil {
			if _, buildErr = run("install", mod+"/cmd/pebble@"+Version, mod+"/cmd/pebble-challtestsrv@"+Version); buildErr != nil {
				return
			}
		}
		out, err := run("mod", "download", "-json", mod+"@"+Version)
		if err != nil {
			buildErr = err
			return
		}
		var m struct{ Dir string }
		if buildErr = json.Unmarshal(out, &m); buildErr == nil {
			pebbleSrc = m.Dir
		}
	})
	return pebbleBin, pebbleSrc, buildErr
}

// pebble is a running Pebble ACME server with its DNS server (every name
// resolves to 127.0.0.1), all on loopback.
type Pebble struct {
	DirectoryURL string
	Client       *http.Client   // trusts Pebble's HTTPS certificate (its minica root)
	Roots        *x509.CertPool // the root of the certificates it issues
	CAFile       string         // Pebble's minica root (PEM): what Client trusts
	stop         func()
}

// Stop stops Pebble and its DNS server.
func (p *Pebble) Stop() { p.stop() }

// Start runs Pebble with its HTTP-01 validation on httpPort and its
// TLS-ALPN-01 validation on tlsPort of 127.0.0.1. It skips the test, with
// one line, when Pebble cannot be built, and fails it under CI=true.
func Start(t testing.TB, httpPort, tlsPort int) *Pebble {
	t.Helper()
	bin, src, err := buildPebble()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot build pebble %s: %v", Version, err)
		}
		t.Skipf("pebble %s cannot be built here (%v); skipping the ACME test", Version, firstLine(err))
	}
	dir := t.TempDir()
	dnsPort, mgmtPort, acmePort, pmgmtPort := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	logs := &testlog.Buffer{}
	var stops []func()
	start := func(name string, env []string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
			})
		}
		stops = append(stops, stop)
		t.Cleanup(stop)
	}
	start("pebble-challtestsrv", nil, "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
		"-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort), "-management", "127.0.0.1:"+strconv.Itoa(mgmtPort),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(pmgmtPort),
		"certificate":                    filepath.Join(src, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(src, "test/certs/localhost/key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	start("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", filepath.Join(dir, "pebble.json"), "-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort))

	minica, err := os.ReadFile(filepath.Join(src, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	p := &Pebble{CAFile: filepath.Join(src, "test/certs/pebble.minica.pem"), stop: func() {
		for _, s := range stops {
			s()
		}
	}, DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort), Client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := p.Client.Get(p.DirectoryURL)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble does not answer at %s: %v\n%s", p.DirectoryURL, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := p.Client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", pmgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	root, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root is not PEM: %q", root)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", testlog.Tail(logs.String(), 40))
		}
	})
	return p
}

// FreePort returns a loopback port where nothing listens now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func firstLine(err error) string {
	s := err.Error()
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
