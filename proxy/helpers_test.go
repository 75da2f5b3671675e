package proxy

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if name := os.Getenv(childBackendEnv); name != "" {
		os.Exit(runChildBackend(name)) // a backend process of TestTargetSIGKILL
	}
	goleak.VerifyTestMain(m)
}

// Router and WeightReporter mirror the root package's interfaces, declared here so
// the proxy need not import it: the assertion below holds the structural contract.
type Router interface {
	SetTargets(ctx context.Context, targets map[string]int) error
}

type WeightReporter interface {
	Targets() map[string]int
}

var (
	_ Router         = (*Proxy)(nil)
	_ WeightReporter = (*Proxy)(nil)
	_ http.Handler   = (*Proxy)(nil)
)

// backend is a test upstream on 127.0.0.1 that counts requests it is serving.
type backend struct {
	name   string
	srv    *httptest.Server
	active atomic.Int64
	served atomic.Int64
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// newBackend starts an upstream that answers its name; a POST body is echoed after
// the name ("name:body"). A handler h, when given, replaces that behaviour.
func newBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if len(body) > 0 {
				_, _ = io.WriteString(w, name+":"+string(body))
				return
			}
			_, _ = io.WriteString(w, name)
		}
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.active.Add(1)
		defer b.active.Add(-1)
		b.served.Add(1)
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// newFront starts a proxy with opts and an HTTP server in front of it, and returns
// them with a client whose connections are closed at cleanup.
func newFront(t testing.TB, opts Options) (*Proxy, *httptest.Server, *http.Client) {
	t.Helper()
	p := New(opts)
	t.Cleanup(p.CloseIdleConnections)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return p, front, &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func setTargets(t testing.TB, p *Proxy, targets map[string]int) {
	t.Helper()
	if err := p.SetTargets(context.Background(), targets); err != nil {
		t.Fatalf("SetTargets(%v): %v", targets, err)
	}
}

// do sends a request (body and header optional) and returns status and body.
func do(c *http.Client, method, url, body string, hdr http.Header) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// result is the outcome of a request made by goGet.
type result struct {
	code int
	body string
	err  error
}

// goGet sends a GET to url from a new goroutine; the channel delivers its result.
func goGet(c *http.Client, url string) <-chan result {
	res := make(chan result, 1)
	go func() {
		code, body, err := do(c, "GET", url, "", nil)
		res <- result{code, body, err}
	}()
	return res
}

// heldBackend starts a backend for one request: it closes started when the
// request arrives, then answers reply once release is closed (by the test, or
// at cleanup if a failed test did not).
func heldBackend(t *testing.T, reply string) (b *backend, started, release chan struct{}) {
	t.Helper()
	started, release = make(chan struct{}), make(chan struct{})
	b = newBackend(t, "held", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, reply)
	})
	t.Cleanup(func() { // runs before the backend's own cleanup, which waits for the request
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return b, started, release
}

// dialRaw connects to addr for a raw exchange, with a deadline so that a
// test never hangs on it. The caller closes the connection.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
