package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dialRecorder wraps a dialer and records every address it was asked to dial.
type dialRecorder struct {
	mu    sync.Mutex
	addrs []string
	d     net.Dialer
}

func (r *dialRecorder) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, addr)
	r.mu.Unlock()
	return r.d.DialContext(ctx, network, addr)
}

// count returns how many dials were recorded.
func (r *dialRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.addrs)
}

// others returns the recorded addresses that are not allowed.
func (r *dialRecorder) others(allowed ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, a := range r.addrs {
		ok := false
		for _, b := range allowed {
			ok = ok || a == b
		}
		if !ok {
			bad = append(bad, a)
		}
	}
	return bad
}

// rawExchange writes raw to addr, half-closes, and returns what came back
// (bounded by a deadline, so it never hangs).
func rawExchange(t testing.TB, addr, raw string) string {
	t.Helper()
	conn := dialRaw(t, addr)
	defer conn.Close()
	_, _ = io.WriteString(conn, raw)
	_ = conn.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(conn)
	return string(b)
}

// rawRequest writes one raw request to addr and returns the response the
// server sends back after any interim responses, read through to the end of
// its body. Unlike rawExchange it
// keeps the connection open for writing, so the server never sees a client that
// went away (net/http cancels the request's context on a client half-close).
func rawRequest(t testing.TB, addr, raw string) string {
	t.Helper()
	conn := dialRaw(t, addr)
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	for err == nil && res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
		res, err = http.ReadResponse(br, nil) // skip interim responses (100 Continue)
	}
	if err != nil {
		t.Fatalf("%q: reading the response: %v", raw, err)
	}
	out, err := httputil.DumpResponse(res, true)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%q: reading the response body: %v", raw, err)
	}
	return string(out)
}

func TestNewServerDefaults(t *testing.T) {
	srv := NewServer("127.0.0.1:0", http.NotFoundHandler(), ServerOptions{})
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.IdleTimeout != DefaultIdleTimeout ||
		srv.MaxHeaderBytes != DefaultMaxHeaderBytes || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Fatalf("defaults: %+v", srv)
	}
	srv = NewServer("", nil, ServerOptions{ReadHeaderTimeout: -1, IdleTimeout: -1, MaxHeaderBytes: 1 << 20})
	if srv.ReadHeaderTimeout != 0 || srv.IdleTimeout != 0 || srv.MaxHeaderBytes != 1<<20 {
		t.Fatalf("overrides: %+v", srv)
	}
}

// serve runs srv on a loopback listener until the test ends.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// TestServerTimeoutsAndLimits: a client that never finishes its headers and a
// client that stays idle are disconnected; oversized headers get 431.
func TestServerTimeoutsAndLimits(t *testing.T) {
	b := newBackend(t, "b", nil)
	p := New(Options{})
	defer p.CloseIdleConnections()
	setTargets(t, p, map[string]int{b.addr(): 1})
	srv := NewServer("", p, ServerOptions{ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond, MaxHeaderBytes: 4096})
	addr := serve(t, srv)

	t.Run("slow headers", func(t *testing.T) {
		conn := dialRaw(t, addr)
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a\r\n")
		b, err := io.ReadAll(conn) // the server closes the connection
		if err != nil {
			t.Fatalf("connection not closed by the server: %v (read %q)", err, b)
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dialRaw(t, addr)
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: %v, want EOF (closed by the server)", err)
		}
	})
	t.Run("header bytes", func(t *testing.T) {
		out := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("x", 8192)+"\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 431") {
			t.Fatalf("big header: %.60q", out)
		}
	})
}

func TestHopByHopStripped(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		var seen []string
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "X-Private", "Proxy-Authorization", "Upgrade"} {
			if v := r.Header.Get(k); v != "" {
				seen = append(seen, k+"="+v)
			}
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "s")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Public", "p")
		fmt.Fprintf(w, "%v|%s", seen, r.Header.Get("X-Kept"))
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for _, method := range []string{"GET", "POST"} {
		body := ""
		if method == "POST" {
			body = "x"
		}
		req, _ := http.NewRequest(method, front.URL, strings.NewReader(body))
		req.Header.Set("Connection", "X-Private")
		req.Header.Set("X-Private", "1")
		req.Header.Set("Keep-Alive", "timeout=9")
		req.Header.Set("Proxy-Connection", "keep-alive")
		req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
		req.Header.Set("Te", "gzip")
		req.Header.Set("X-Kept", "yes")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(got) != "[]|yes" {
			t.Fatalf("%s: upstream saw hop-by-hop headers: %q", method, got)
		}
		if res.Header.Get("X-Secret") != "" || res.Header.Get("Keep-Alive") != "" || res.Header.Get("X-Public") != "p" {
			t.Fatalf("%s: response headers %v", method, res.Header)
		}
	}
}

func TestForwardedHeadersPolicy(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s", r.Header.Values("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	})
	for _, tc := range []struct {
		trust bool
		want  string
	}{
		{false, "[127.0.0.1]|app.example|http"},
		{true, "[10.0.0.1, 10.0.0.2, 127.0.0.1]|orig.example|https"},
	} {
		for _, method := range []string{"GET", "POST"} {
			p, front, c := newFront(t, Options{TrustForwarded: tc.trust})
			setTargets(t, p, map[string]int{b.addr(): 1})
			req, _ := http.NewRequest(method, front.URL, strings.NewReader("x"))
			req.Host = "app.example"
			req.Header["X-Forwarded-For"] = []string{"10.0.0.1", "10.0.0.2"}
			req.Header.Set("X-Forwarded-Host", "orig.example")
			req.Header.Set("X-Forwarded-Proto", "https")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) != tc.want {
				t.Errorf("trust=%v %s: upstream saw %q, want %q", tc.trust, method, got, tc.want)
			}
		}
	}
}

// TestClientCannotChooseUpstream: absolute-form request URIs and forged Host
// headers reach only the targets; the proxy never dials anything else.
func TestClientCannotChooseUpstream(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host+" "+r.RequestURI)
		mu.Unlock()
		_, _ = io.WriteString(w, "target")
	})
	evil := newBackend(t, "evil", nil)
	rec := &dialRecorder{}
	p, front, _ := newFront(t, Options{DialContext: rec.DialContext})
	setTargets(t, p, map[string]int{b.addr(): 1})
	addr := front.Listener.Addr().String()
	for _, raw := range []string{
		"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET http://" + evil.addr() + "/x HTTP/1.1\r\nHost: " + evil.addr() + "\r\n\r\n",
		"GET http://" + evil.addr() + "/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + evil.addr() + "\r\n\r\n",
		"POST http://" + evil.addr() + "/ HTTP/1.1\r\nHost: " + evil.addr() + "\r\nContent-Length: 2\r\n\r\nhi",
		"GET / HTTP/1.1\r\nHost: " + evil.addr() + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"GET http://" + evil.addr() + "/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
	} {
		out := rawRequest(t, addr, raw)
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.HasSuffix(out, "target") || strings.Contains(out, "evil") {
			t.Errorf("%q: got %.80q", raw, out)
		}
	}
	if bad := rec.others(b.addr()); len(bad) != 0 {
		t.Fatalf("proxy dialled non-target addresses %v", bad)
	}
	if n := evil.served.Load(); n != 0 {
		t.Fatalf("the non-target served %d requests", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) == 0 {
		t.Fatal("the target saw no request")
	}
	t.Logf("target saw %q", hosts)
}

func TestMaxBodyBytes(t *testing.T) {
	var oversized atomic.Int64 // bodies above the limit the backend read
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if len(body) > 1000 {
			oversized.Add(1)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "b:"+string(body))
	})
	p, front, c := newFront(t, Options{MaxBodyBytes: 1000})
	setTargets(t, p, map[string]int{b.addr(): 1})
	ok := strings.Repeat("a", 1000)
	if code, body, err := do(c, "POST", front.URL, ok, nil); err != nil || code != 200 || body != "b:"+ok {
		t.Fatalf("at the limit: %d %.40q %v", code, body, err)
	}
	if code, _, err := do(c, "POST", front.URL, ok+"a", nil); err != nil || code != http.StatusRequestEntityTooLarge {
		t.Fatalf("Content-Length above the limit: %d %v", code, err)
	}
	// A chunked body that grows beyond the limit.
	req, _ := http.NewRequest("POST", front.URL, io.MultiReader(strings.NewReader(ok), strings.NewReader(ok)))
	req.ContentLength = -1
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body above the limit: %d", res.StatusCode)
	}
	b.srv.Close() // waits for the backend's handlers, so the count is final
	if n := oversized.Load(); n != 0 {
		t.Fatalf("oversized body delivered to the backend %d times", n)
	}
}

// TestGracefulShutdownDrains: Shutdown while a slow request is in flight lets it
// complete, then returns.
func TestGracefulShutdownDrains(t *testing.T) {
	b, started, release := heldBackend(t, "slow done")
	p := New(Options{})
	defer p.CloseIdleConnections()
	setTargets(t, p, map[string]int{b.addr(): 1})
	srv := NewServer("", p, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res := goGet(&http.Client{Transport: tr}, "http://"+ln.Addr().String())
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	// Shutdown cannot return while the request is in flight.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case r := <-res:
		t.Fatalf("request ended before it was released: %+v", r)
	default:
	}
	close(release)
	if r := <-res; r.err != nil || r.code != 200 || r.body != "slow done" {
		t.Fatalf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// FuzzProxyRequest writes arbitrary request lines and headers to a proxy over a
// raw connection: the proxy never panics (a panic in a handler would be
// recovered by net/http, so the test records them) and never connects anywhere
// but its target.
func FuzzProxyRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
		"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-A\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"GET / HTTP/1.0\r\n\r\n",
		"GET //127.0.0.1:1/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add(s)
	}
	target := newBackend(f, "target", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	rec := &dialRecorder{}
	p := New(Options{DialContext: rec.DialContext, MaxBodyBytes: 1 << 16})
	f.Cleanup(p.CloseIdleConnections)
	var panics sync.Map
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panics.Store(fmt.Sprint(v), true)
				panic(v)
			}
		}()
		p.ServeHTTP(w, r)
	}))
	front.Config.ReadHeaderTimeout = 2 * time.Second
	front.Config.ErrorLog = discardLog()
	front.Start()
	f.Cleanup(front.Close)
	setTargets(f, p, map[string]int{target.addr(): 1})
	addr := front.Listener.Addr().String()

	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 8192 {
			return
		}
		_ = rawExchange(t, addr, raw)
		panics.Range(func(k, _ any) bool {
			t.Fatalf("handler panicked: %v", k)
			return false
		})
		if bad := rec.others(target.addr()); len(bad) != 0 {
			t.Fatalf("proxy dialled non-target addresses %v", bad)
		}
	})
}
