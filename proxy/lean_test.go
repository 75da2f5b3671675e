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
	"net/http/httptrace"
	"net/textproto"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer serves each accepted loopback connection with serve, which may
// return without closing it, until the test ends: cleanup closes the
// connections still open and waits for serve to return.
func rawServer(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn // read only once accepting is closed
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	}()
	tb.Cleanup(func() {
		_ = ln.Close()
		<-accepting
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	})
	return ln.Addr().String()
}

// scriptedBackend answers each connection's first request head with resp, then
// closes the connection.
func scriptedBackend(t *testing.T, resp string) string {
	t.Helper()
	return rawServer(t, func(c net.Conn) {
		if skipRequestHead(bufio.NewReader(c)) {
			_, _ = io.WriteString(c, resp)
		}
	})
}

// skipRequestHead reads a request head up to its empty line, and reports
// whether it got there.
func skipRequestHead(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" {
			return true
		}
	}
}

// TestStaleIdleConnectionPOST: the backend closed the pooled connection while
// it was idle; a POST on the proxy still succeeds.
func TestStaleIdleConnectionPOST(t *testing.T) {
	b := newBackend(t, "b", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for i := range 3 {
		if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 {
			t.Fatalf("GET: %d %q %v", code, body, err)
		}
		b.srv.CloseClientConnections() // the backend drops its idle connections
		if code, body, err := do(c, "POST", front.URL, fmt.Sprint("p", i), nil); err != nil || code != 200 || body != fmt.Sprint("b:p", i) {
			t.Fatalf("POST after the backend closed the idle connection: %d %q %v", code, body, err)
		}
	}
}

// TestStaleIdleConnectionGET: after the backend closed its idle connections, a
// GET and a POST with an Idempotency-Key succeed over one new connection to
// the same target (the only one), and no error is counted. The peek they skip
// cannot be seen from outside; TestNoResponseResentOnce shows the resend that
// stands in for it.
func TestStaleIdleConnectionGET(t *testing.T) {
	b := newBackend(t, "b", nil)
	rec := &dialRecorder{}
	p, front, c := newFront(t, Options{DialContext: rec.DialContext})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for i := range 3 {
		if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "b" {
			t.Fatalf("GET: %d %q %v", code, body, err)
		}
		b.srv.CloseClientConnections() // the backend drops its idle connections
		dials := rec.count()
		for _, hdr := range []http.Header{nil, {"Idempotency-Key": {fmt.Sprint("k", i)}}} {
			method := "GET"
			if hdr != nil {
				method = "POST"
			}
			if code, body, err := do(c, method, front.URL, "", hdr); err != nil || code != 200 || body != "b" {
				t.Fatalf("%s %d after the backend closed the idle connection: %d %q %v", method, i, code, body, err)
			}
		}
		if n := rec.count() - dials; n != 1 {
			t.Fatalf("round %d: %d new upstream connections, want 1", i, n)
		}
	}
	st := p.Stats()[b.addr()]
	if st.Requests != 9 || st.Errors != 0 {
		t.Fatalf("stats: %d requests, %d errors; want 9 and 0", st.Requests, st.Errors)
	}
}

// TestIdle408: a backend that sends "408 Request Timeout" on an idle
// connection before closing it (as some servers do) fails no idempotent
// request: the 408 is not taken for the response, and the request goes once
// more over a new connection.
func TestIdle408(t *testing.T) {
	idle, closed, done := make(chan struct{}), make(chan struct{}, 1), make(chan struct{})
	var conns atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		conns.Add(1)
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		select {
		case <-idle:
		case <-done:
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		_ = c.Close()
		closed <- struct{}{}
	})
	t.Cleanup(func() { close(done) })
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{addr: 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("first GET: %d %q %v", code, body, err)
	}
	idle <- struct{}{}
	<-closed // the 408 is waiting in the idle connection
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("GET after an idle 408: %d %q %v, want 200 from a new connection", code, body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d upstream connections, want 2", n)
	}
}

// TestKeepAlive408PassedOn: a 408 that keeps the connection open is the
// backend's answer, not an idle close: the client gets it, and the request is
// not sent again.
func TestKeepAlive408PassedOn(t *testing.T) {
	var hits atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			hits.Add(1)
			if n == 0 {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			} else {
				_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
			}
		}
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{addr: 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("first GET: %d %q %v", code, body, err)
	}
	if code, _, err := do(c, "GET", front.URL, "", nil); err != nil || code != http.StatusRequestTimeout {
		t.Fatalf("second GET: %d %v, want the backend's 408", code, err)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("the backend got %d requests, want 2 (the 408 was not resent)", n)
	}
}

// TestNoResponseResentOnce: a backend that reads each request and closes the
// connection without answering gets an idempotent request twice (the reused
// connection, then a new one) and a POST without an Idempotency-Key once.
func TestNoResponseResentOnce(t *testing.T) {
	var hits atomic.Int64
	hang := rawServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if hits.Add(1) > 1 {
				return // closes without an answer
			}
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{hang: 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("first GET: %d %q %v", code, body, err)
	}
	for _, tc := range []struct {
		method string
		sends  int64
	}{{"GET", 2}, {"POST", 1}} {
		before := hits.Load()
		if code, _, err := do(c, tc.method, front.URL, "x", nil); err != nil || code != http.StatusBadGateway {
			t.Fatalf("%s: %d %v, want 502", tc.method, code, err)
		}
		if n := hits.Load() - before; n != tc.sends {
			t.Fatalf("%s reached the backend %d times, want %d", tc.method, n, tc.sends)
		}
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done(): // the proxy closed the upstream connection
			close(cancelled)
		case <-time.After(20 * time.Second): // a bound, not a condition
		}
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", front.URL, nil)
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	<-errc
	select {
	case <-cancelled:
	case <-time.After(15 * time.Second):
		t.Fatal("upstream request not cancelled after the client went away")
	}
}

// TestResponseHeaderTimeout: a backend slower than the response-header timeout
// gets a 502, whether the timeout is shorter than the first, hook-less wait for
// the response (hookDelay) or longer.
func TestResponseHeaderTimeout(t *testing.T) {
	for _, d := range []time.Duration{hookDelay / 2, 5 * hookDelay} {
		t.Run(d.String(), func(t *testing.T) {
			release := make(chan struct{})
			b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			defer close(release)
			p, front, c := newFront(t, Options{ResponseHeaderTimeout: d})
			setTargets(t, p, map[string]int{b.addr(): 1})
			start := time.Now()
			if code, _, err := do(c, "GET", front.URL, "", nil); err != nil || code != http.StatusBadGateway {
				t.Fatalf("slow upstream: %d %v, want 502", code, err)
			}
			if took := time.Since(start); took < d {
				t.Fatalf("502 after %v, before the %v timeout", took, d)
			}
		})
	}
}

// lateConn is an upstream connection whose reader, once its first wait ends
// at a deadline, calls late before going on: a goroutine that runs late.
type lateConn struct {
	net.Conn
	once sync.Once
	late func()
}

func (c *lateConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.once.Do(c.late)
	}
	return n, err
}

// TestLateWakeReadsResponse: the response arrives after the first wait ended
// (hookDelay) and before the response-header timeout, but the proxy's
// goroutine runs only after the timeout has passed. The response is still
// passed on, as a single blocking read until the timeout would have.
func TestLateWakeReadsResponse(t *testing.T) {
	const rht = 500 * time.Millisecond
	written := make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		if !skipRequestHead(bufio.NewReader(c)) {
			return
		}
		time.Sleep(3 * hookDelay) // after the first wait, well before rht
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err == nil {
			close(written)
		}
	})
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &lateConn{Conn: nc, late: func() {
			<-written
			time.Sleep(rht) // run only once the timeout has passed
		}}, nil
	}
	p, front, c := newFront(t, Options{ResponseHeaderTimeout: rht, DialContext: dial})
	setTargets(t, p, map[string]int{addr: 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("got %d %q %v, want 200 ok", code, body, err)
	}
}

// TestSlowHeadAndBody: the first wait for a response ends at hookDelay without
// failing it, and the response-header timeout covers the head only. A head
// that starts and trickles in after hookDelay, and a body that comes after the
// timeout, reach the client whole.
func TestSlowHeadAndBody(t *testing.T) {
	const rht = 40 * hookDelay // far above the head's 2*2*hookDelay, so a loaded machine does not fail it
	for _, tc := range []struct{ name, framing, part1, part2 string }{
		{"length", "Content-Length: 10\r\n", "hello", "world"},
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n", "5\r\nworld\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The pauses are the behaviour under test: a backend this slow.
			addr := rawServer(t, func(c net.Conn) {
				if !skipRequestHead(bufio.NewReader(c)) {
					return
				}
				steps := []struct {
					pause time.Duration
					data  string
				}{
					{2 * hookDelay, "HTTP/1.1 200 OK\r\n"},
					{2 * hookDelay, "X-Slow: yes\r\n" + tc.framing + "\r\n" + tc.part1},
					{rht + 2*hookDelay, tc.part2},
				}
				for _, s := range steps {
					time.Sleep(s.pause)
					if _, err := io.WriteString(c, s.data); err != nil {
						return
					}
				}
			})
			p, front, c := newFront(t, Options{ResponseHeaderTimeout: rht})
			setTargets(t, p, map[string]int{addr: 1})
			res, err := c.Get(front.URL)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || res.Header.Get("X-Slow") != "yes" || string(body) != "helloworld" {
				t.Fatalf("got %d %v %q %v, want 200 with X-Slow and helloworld", res.StatusCode, res.Header, body, err)
			}
		})
	}
}

// TestPeekAfterDeadlinePassed: an attempt leaves its connection's read deadline
// set (the next attempt sets its own), so the peek before a POST reuses a
// pooled connection must not trip over a deadline that passed while it was idle.
func TestPeekAfterDeadlinePassed(t *testing.T) {
	b := newBackend(t, "b", nil)
	rec := &dialRecorder{}
	p, front, c := newFront(t, Options{DialContext: rec.DialContext})
	setTargets(t, p, map[string]int{b.addr(): 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "b" {
		t.Fatalf("GET: %d %q %v", code, body, err)
	}
	// What must happen here is time passing: the GET's read deadline, hookDelay
	// after it was sent, passes while the connection is idle.
	time.Sleep(2 * hookDelay)
	if code, body, err := do(c, "POST", front.URL, "x", nil); err != nil || code != 200 || body != "b:x" {
		t.Fatalf("POST: %d %q %v", code, body, err)
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("%d upstream connections, want 1: the idle one was not reused", n)
	}
}

// TestClientGoneDuringBlockedWrite: a request head larger than the upstream
// write buffer arms the client-disconnect hook before it is written, so a
// client that goes away while the proxy is stuck writing to a backend that
// does not read ends the attempt.
func TestClientGoneDuringBlockedWrite(t *testing.T) {
	accepted := make(chan struct{}, 1)
	hold := make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		<-hold // never reads
	})
	p := New(Options{})
	t.Cleanup(p.CloseIdleConnections)
	setTargets(t, p, map[string]int{addr: 1})
	front := httptest.NewUnstartedServer(p)
	front.Config.MaxHeaderBytes = 64 << 20
	front.Start()
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(hold) }) // first: lets a stuck attempt end before front.Close waits for it

	conn := dialRaw(t, front.Listener.Addr().String())
	defer conn.Close()
	// 16 MB is far more than the loopback socket buffers hold for a backend that
	// does not read, so the proxy's write blocks.
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: app\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<20)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not connect to the backend")
	}
	_ = conn.Close()
	for deadline := time.Now().Add(10 * time.Second); p.Stats()[addr].InFlight != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the attempt is still writing to a backend that does not read, 10s after the client went away")
		}
	}
}

func TestMaxConnsPerTarget(t *testing.T) {
	const limit, n = 2, 6
	var active, peak atomic.Int64
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		a := active.Add(1)
		defer active.Add(-1)
		for {
			m := peak.Load()
			if a <= m || peak.CompareAndSwap(m, a) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "ok")
	})
	p, front, c := newFront(t, Options{MaxConnsPerTarget: limit})
	setTargets(t, p, map[string]int{b.addr(): 1})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 {
				failed.Add(1)
			}
		}()
	}
	for range limit {
		<-arrived
	}
	// Every request is claimed (limit at the backend, the rest waiting for a
	// connection) before any is released.
	for p.Stats()[b.addr()].InFlight < n {
		runtime.Gosched()
	}
	if a := active.Load(); a > limit {
		t.Fatalf("%d requests at the backend, cap %d", a, limit)
	}
	close(release)
	wg.Wait()
	if failed.Load() != 0 || peak.Load() > limit {
		t.Fatalf("failed %d, peak concurrency %d (cap %d)", failed.Load(), peak.Load(), limit)
	}
}

// TestEarlyResponse: the backend answers 413 without reading the body.
func TestEarlyResponse(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too big", http.StatusRequestEntityTooLarge)
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for _, size := range []int{100, 4 << 20} {
		code, _, err := do(c, "POST", front.URL, strings.Repeat("x", size), nil)
		if err != nil || code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d-byte body: %d %v, want 413", size, code, err)
		}
	}
}

func TestExpectContinue(t *testing.T) {
	b := newBackend(t, "b", nil)
	p, front, _ := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	conn := dialRaw(t, front.Listener.Addr().String())
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("interim: %q %v", line, err)
	}
	for line != "\r\n" && err == nil {
		line, err = br.ReadString('\n')
	}
	_, _ = io.WriteString(conn, "hello")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "b:hello" {
		t.Fatalf("final: %d %q", res.StatusCode, body)
	}
}

func TestInterimResponsesTrailersChunked(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "part1,")
		_ = http.NewResponseController(w).Flush() // chunked
		_, _ = fmt.Fprintf(w, "got %q", in)
		w.Header().Set("X-Sum", "42")
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for _, chunkedReq := range []bool{false, true} {
		var hints []int
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if h.Get("Link") != "" {
				hints = append(hints, code)
			}
			return nil
		}}
		var body io.Reader = strings.NewReader("abc")
		if chunkedReq {
			body = io.MultiReader(strings.NewReader("a"), strings.NewReader("bc")) // unknown length: chunked
		}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", front.URL, body)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(got) != `part1,got "abc"` || res.Trailer.Get("X-Sum") != "42" || len(hints) != 1 || hints[0] != 103 {
			t.Fatalf("chunked request %v: body %q trailer %v hints %v", chunkedReq, got, res.Trailer, hints)
		}
	}
}

func TestNoBodyResponses(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for range 2 { // twice: the pooled connections stay in sync
		for _, tc := range []struct {
			method, path, body string
			code               int
		}{
			{"HEAD", "/", "", 200}, {"GET", "/204", "", 204}, {"GET", "/304", "", 304}, {"GET", "/", "hello", 200},
		} {
			code, body, err := do(c, tc.method, front.URL+tc.path, "", nil)
			if err != nil || code != tc.code || body != tc.body {
				t.Fatalf("%s %s: %d %q %v", tc.method, tc.path, code, body, err)
			}
		}
	}
}

func TestReadUntilCloseAndBigHeader(t *testing.T) {
	cookie := strings.Repeat("c", 16<<10)
	until := scriptedBackend(t, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close")
	big := scriptedBackend(t, "HTTP/1.1 200 OK\r\nSet-Cookie: a="+cookie+"\r\nContent-Length: 2\r\n\r\nok")
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{until: 1})
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "body until close" {
		t.Fatalf("read until close: %d %q %v", code, body, err)
	}
	setTargets(t, p, map[string]int{big: 1})
	res, err := c.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Set-Cookie") != "a="+cookie {
		t.Fatalf("16 KiB Set-Cookie: %d, %d bytes", res.StatusCode, len(res.Header.Get("Set-Cookie")))
	}
}

// TestMalformedBackendHeaders: responses that could be read two ways are
// refused (502), never passed on.
func TestMalformedBackendHeaders(t *testing.T) {
	for name, resp := range map[string]string{
		"folded":             "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"space before colon": "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"bad length":         "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
		"unknown coding":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"no colon":           "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 2\r\n\r\nok",
		"bad status":         "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
		"control char":       "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			addr := scriptedBackend(t, resp)
			p, front, c := newFront(t, Options{})
			setTargets(t, p, map[string]int{addr: 1})
			if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != http.StatusBadGateway {
				t.Fatalf("%d %q %v, want 502", code, body, err)
			}
		})
	}
}

// TestIsTokenChar checks every byte against RFC 9110's tchar.
func TestIsTokenChar(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		want := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		if got := isTokenChar(b); got != want {
			t.Errorf("isTokenChar(%q) = %v, want %v", b, got, want)
		}
	}
}
