package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWeightedSplit(t *testing.T) {
	canary := newBackend(t, "canary", nil)
	base := newBackend(t, "base", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{canary.addr(): 10, base.addr(): 90})

	const n = 2000
	counts := map[string]int{}
	for range n {
		code, body, err := do(c, "GET", front.URL, "", nil)
		if err != nil || code != 200 {
			t.Fatalf("request: %d %q %v", code, body, err)
		}
		counts[body]++
	}
	share := float64(counts["canary"]) / n
	if math.Abs(share-0.10) > 0.03 {
		t.Fatalf("canary share %.3f, want 0.10±0.03 (counts %v)", share, counts)
	}
	st := p.Stats()
	if got := st[canary.addr()].Requests + st[base.addr()].Requests; got != n {
		t.Fatalf("stats count %d requests, want %d", got, n)
	}
}

// TestPickShares checks the selection itself over many weight mixes, with no HTTP.
func TestPickShares(t *testing.T) {
	for _, weights := range [][]int{{10, 90}, {1, 99}, {1, 1, 1}, {5, 0, 95}, {3, 7, 90}, {100}} {
		m := map[string]int{}
		total := 0
		for i, w := range weights {
			m[fmt.Sprintf("127.0.0.1:%d", 1000+i)] = w
			total += w
		}
		s := newTargetSet(emptySet, m, nil)
		got := map[string]int{}
		const n = 10000
		for range n {
			t, _ := s.pick("", nil, 0, 0)
			got[t.addr]++
		}
		for addr, w := range m {
			want := float64(w) / float64(total)
			if share := float64(got[addr]) / n; math.Abs(share-want) > 0.005 {
				t.Errorf("weights %v: %s got %.4f, want %.4f", weights, addr, share, want)
			}
		}
	}
}

func TestSetTargetsUnderLoad(t *testing.T) {
	bs := []*backend{newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)}
	p, front, c := newFront(t, Options{})
	a, b, cc := bs[0].addr(), bs[1].addr(), bs[2].addr()
	setTargets(t, p, map[string]int{a: 1, b: 1})

	const workers, perWorker = 8, 250
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				var code int
				var body string
				var err error
				if i%2 == 0 {
					payload := fmt.Sprintf("w%d-%d", w, i)
					code, body, err = do(c, "POST", front.URL, payload, nil)
					if err == nil && code == 200 && !strings.HasSuffix(body, ":"+payload) {
						err = fmt.Errorf("echo %q for %q", body, payload)
					}
				} else {
					code, body, err = do(c, "GET", front.URL, "", nil)
				}
				if err != nil || code != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	sets := []map[string]int{
		{b: 1, cc: 1},
		{a: 1, cc: 3},
		{a: 0, b: 1},
		{b: 1, cc: 0},
		{a: 1, b: 1, cc: 1},
		{cc: 1},
		{a: 9, b: 1},
	}
	all := map[string]*backend{a: bs[0], b: bs[1], cc: bs[2]}
	switches := 0
loop:
	for i := 0; i < 200; i++ {
		select {
		case <-done:
			break loop
		default:
		}
		before := p.Targets()
		next := sets[i%len(sets)]
		setTargets(t, p, next)
		switches++
		// Invariant: a removed target has nothing in flight once SetTargets returns.
		for addr := range before {
			if _, ok := next[addr]; !ok {
				if n := all[addr].active.Load(); n != 0 {
					t.Errorf("%s removed but still serving %d requests", addr, n)
				}
			}
		}
	}
	<-done
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during %d switches; first: %v", n, workers*perWorker, switches, firstErr.Load())
	}
	t.Logf("%d requests, %d switches", workers*perWorker, switches)
}

func TestDrainWaitsForSlowRequest(t *testing.T) {
	started := make(chan struct{})
	var finished atomic.Bool
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond) // the workload: a slow request
		finished.Store(true)
		_, _ = io.WriteString(w, "slow done")
	})
	fast := newBackend(t, "fast", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{slow.addr(): 1})

	res := goGet(c, front.URL)
	<-started

	begin := time.Now()
	setTargets(t, p, map[string]int{fast.addr(): 1})
	if !finished.Load() {
		t.Fatalf("SetTargets returned after %v, before the in-flight request completed", time.Since(begin))
	}
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "slow done" {
		t.Fatalf("slow request: %d %q %v", r.code, r.body, r.err)
	}
	// New requests go to the remaining target.
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || body != "fast" {
		t.Fatalf("after switch: %d %q %v", code, body, err)
	}
}

func TestDrainTimeout(t *testing.T) {
	hang, started, release := heldBackend(t, "released")
	other := newBackend(t, "other", nil)
	const timeout = 150 * time.Millisecond
	p, front, c := newFront(t, Options{DrainTimeout: timeout})
	setTargets(t, p, map[string]int{hang.addr(): 1})

	res := goGet(c, front.URL)
	<-started

	begin := time.Now()
	err := p.SetTargets(context.Background(), map[string]int{other.addr(): 1})
	elapsed := time.Since(begin)
	if err != nil {
		t.Fatalf("SetTargets after drain timeout: %v, want nil", err)
	}
	if elapsed < timeout {
		t.Fatalf("SetTargets returned after %v, before the drain timeout %v", elapsed, timeout)
	}
	if hang.active.Load() != 1 {
		t.Fatalf("the hanging request should still be in flight")
	}

	// A context that ends first wins over the drain timeout.
	p2, _, _ := newFront(t, Options{DrainTimeout: time.Hour})
	setTargets(t, p2, map[string]int{hang.addr(): 1})
	// Claim the target directly to simulate a request in flight.
	tgt, _ := p2.claim(context.Background(), "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = p2.SetTargets(ctx, map[string]int{other.addr(): 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetTargets with an ending ctx: %v, want DeadlineExceeded", err)
	}
	select {
	case <-tgt.drained:
		t.Fatal("drained while a claim is held")
	default:
	}
	tgt.release()
	<-tgt.drained

	close(release)
	if r := <-res; r.err != nil || r.code != 200 || r.body != "released" {
		t.Fatalf("hanging request: %d %q %v", r.code, r.body, r.err)
	}
}

// TestTargetKilled kills one of two targets while load flows: no request may fail.
func TestTargetKilled(t *testing.T) {
	for _, tc := range []struct {
		name        string
		kill        func(b *backend)
		noKeepAlive bool
	}{
		// The machine stops accepting connections: new dials are refused. The victim
		// closes every connection after one request, so each request dials. (Closing
		// a listener also resets connections still in its accept queue: those
		// requests were sent, so only idempotent ones may be sent again.)
		{name: "listener closed", kill: func(b *backend) { _ = b.srv.Listener.Close() }, noKeepAlive: true},
		// The server goes away: listener and idle keep-alive connections closed; a
		// request written on a keep-alive connection just as it closes fails after
		// it was sent.
		{name: "server closed", kill: func(b *backend) { b.srv.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := newBackend(t, "victim", nil)
			if tc.noKeepAlive {
				victim.srv.Config.SetKeepAlivesEnabled(false)
			}
			healthy := newBackend(t, "healthy", nil)
			p, front, c := newFront(t, Options{})
			setTargets(t, p, map[string]int{victim.addr(): 1, healthy.addr(): 1})

			const workers, perWorker = 8, 200
			var completed, failed atomic.Int64
			var firstErr atomic.Value
			killNow := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWorker {
						method, payload := "GET", ""
						if i%2 == 0 {
							method, payload = "POST", fmt.Sprintf("payload-%d-%d", w, i)
						}
						// POSTs carry an Idempotency-Key: see the comments above, and
						// TestPostRetriedOnDialError for a plain POST.
						code, body, err := do(c, method, front.URL, payload, http.Header{"Idempotency-Key": {payload}})
						if err == nil && payload != "" && !strings.HasSuffix(body, ":"+payload) {
							err = fmt.Errorf("echo %q for %q", body, payload)
						}
						if err != nil || code != 200 {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %d %q %v", method, code, body, err))
						}
						if completed.Add(1) == workers*perWorker/4 {
							once.Do(func() { close(killNow) })
						}
					}
				}()
			}
			<-killNow
			tc.kill(victim)
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d requests failed; first: %v", n, firstErr.Load())
			}
			if st := p.Stats()[victim.addr()]; st.Errors == 0 {
				t.Errorf("no connection error recorded on the killed target: %+v", st)
			}
		})
	}
}

// TestPostRetriedOnDialError: a non-idempotent request with a body is retried on
// another target when the connection to the first cannot be made, and the failed
// target is then skipped for a while.
func TestPostRetriedOnDialError(t *testing.T) {
	live := newBackend(t, "live", nil)
	dead := deadAddr(t)
	p, front, c := newFront(t, Options{EjectionTime: time.Hour})
	setTargets(t, p, map[string]int{dead: 1, live.addr(): 1})
	for i := range 50 {
		payload := fmt.Sprintf("body-%d-%s", i, strings.Repeat("x", 10000))
		code, body, err := do(c, "POST", front.URL, payload, nil)
		if err != nil || code != 200 || body != "live:"+payload {
			t.Fatalf("POST %d: %d %.40q %v", i, code, body, err)
		}
	}
	if st := p.Stats()[dead]; st.Requests != 1 || st.Errors != 1 {
		t.Fatalf("dead target: %d attempts, %d errors; want 1, 1 (then ejected)", st.Requests, st.Errors)
	}
}

func TestNoTargets503(t *testing.T) {
	p, front, c := newFront(t, Options{})
	code, body, err := do(c, "GET", front.URL, "", nil)
	if err != nil || code != http.StatusServiceUnavailable || body != "no healthy targets\n" {
		t.Fatalf("empty proxy: %d %q %v", code, body, err)
	}
	b := newBackend(t, "b", nil)
	setTargets(t, p, map[string]int{b.addr(): 0})
	code, body, err = do(c, "GET", front.URL, "", nil)
	if err != nil || code != http.StatusServiceUnavailable || body != "no healthy targets\n" {
		t.Fatalf("all weights 0: %d %q %v", code, body, err)
	}
	if b.served.Load() != 0 {
		t.Fatal("a weight-0 target got a request")
	}
}

func TestDeadTarget502(t *testing.T) {
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{deadAddr(t): 1})
	for _, method := range []string{"GET", "POST"} {
		code, body, err := do(c, method, front.URL, map[string]string{"POST": "data"}[method], nil)
		if err != nil || code != http.StatusBadGateway || !strings.HasPrefix(body, "bad gateway") {
			t.Fatalf("%s to dead target: %d %q %v", method, code, body, err)
		}
	}
}

func TestInvalidTargets(t *testing.T) {
	p := New(Options{})
	defer p.CloseIdleConnections()
	for _, m := range []map[string]int{{"nohost": 1}, {"127.0.0.1:0": 1}, {"127.0.0.1:80": -1}, {":80": 1}} {
		if err := p.SetTargets(context.Background(), m); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("SetTargets(%v) = %v, want ErrInvalidTarget", m, err)
		}
	}
	if len(p.Targets()) != 0 {
		t.Fatal("invalid input changed the set")
	}
}

func TestTargetsAndForwardedHeaders(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s xff=%s xfh=%s xfp=%s uri=%s",
			r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"),
			r.Header.Get("X-Forwarded-Proto"), r.RequestURI)
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 3})
	if got := p.Targets(); len(got) != 1 || got[b.addr()] != 3 {
		t.Fatalf("Targets() = %v", got)
	}
	req, _ := http.NewRequest("GET", front.URL+"/path?a=1;b=2", nil)
	req.Host = "app.example"
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want := "host=app.example xff=127.0.0.1 xfh=app.example xfp=http uri=/path?a=1;b=2"
	if string(body) != want {
		t.Fatalf("upstream saw %q, want %q", body, want)
	}
}

func TestUpgradePassesThrough(t *testing.T) {
	b := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo " + line)
			_ = brw.Flush()
		}
	})
	p, front, _ := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})

	conn := dialRaw(t, front.Listener.Addr().String())
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "echo" {
		t.Fatalf("handshake: %d %v", res.StatusCode, res.Header)
	}
	for _, msg := range []string{"ping", "pong"} {
		_, _ = io.WriteString(conn, msg+"\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "echo "+msg+"\n" {
			t.Fatalf("tunnel: %q %v", line, err)
		}
	}
	if n := p.Stats()[b.addr()].InFlight; n != 1 {
		t.Fatalf("upgraded connection: InFlight = %d, want 1 (held until the tunnel ends)", n)
	}
	// Closing the client side ends the tunnel and releases the target.
	_ = conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.SetTargets(ctx, map[string]int{}); err != nil {
		t.Fatalf("target still claimed after the tunnel closed: %v", err)
	}
}

// TestFailedUpgradeReleasesTarget: when the upstream switches to a protocol the
// client did not ask for, the proxy answers 502 and the target is not left claimed.
func TestFailedUpgradeReleasesTarget(t *testing.T) {
	b := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = brw.ReadByte() // until the proxy closes the connection
	})
	p, front, c := newFront(t, Options{DrainTimeout: time.Hour})
	setTargets(t, p, map[string]int{b.addr(): 1})
	code, _, err := do(c, "GET", front.URL, "", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"echo"}})
	if err != nil || code != http.StatusBadGateway {
		t.Fatalf("mismatched upgrade: %d %v", code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.SetTargets(ctx, map[string]int{}); err != nil {
		t.Fatalf("target still claimed after a failed upgrade: %v", err)
	}
}

func TestStreamingFlushes(t *testing.T) {
	gotFirst := make(chan struct{})
	b := newBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-gotFirst: // the client saw the first chunk before the handler went on
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL, nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk: %q %v (not flushed through the proxy?)", line, err)
	}
	close(gotFirst)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestSticky(t *testing.T) {
	for _, mode := range []string{"header", "cookie"} {
		t.Run(mode, func(t *testing.T) {
			bs := []*backend{newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)}
			p, front, c := newFront(t, Options{StickyHeader: "X-User", StickyCookie: "user"})
			set := map[string]int{bs[0].addr(): 1, bs[1].addr(): 1, bs[2].addr(): 1}
			setTargets(t, p, set)
			hdr := func(u string) http.Header {
				if mode == "header" {
					return http.Header{"X-User": {u}}
				}
				return http.Header{"Cookie": {"other=1; user=" + u}}
			}
			owner := map[string]string{}
			for u := range 30 {
				user := fmt.Sprintf("user-%d", u)
				for i := range 10 {
					_, body, err := do(c, "GET", front.URL, "", hdr(user))
					if err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						owner[user] = body
					} else if body != owner[user] {
						t.Fatalf("%s went to %s then %s", user, owner[user], body)
					}
				}
			}
			used := map[string]bool{}
			for _, o := range owner {
				used[o] = true
			}
			if len(used) < 2 {
				t.Fatalf("30 users all on %v", used)
			}
			// Removing target c moves only c's users.
			delete(set, bs[2].addr())
			setTargets(t, p, set)
			for user, o := range owner {
				_, body, err := do(c, "GET", front.URL, "", hdr(user))
				if err != nil {
					t.Fatal(err)
				}
				if o != "c" && body != o {
					t.Fatalf("%s moved from %s to %s though %s stayed", user, o, body, o)
				}
			}
		})
	}
}

func TestStats(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for i := range 40 {
		path := "/"
		if i%4 == 0 {
			path = "/fail"
		}
		if _, _, err := do(c, "GET", front.URL+path, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	first := p.Stats()[b.addr()]
	if first.Requests != 40 || first.Errors != 10 || first.Latency.Count() != 40 || first.Weight != 1 {
		t.Fatalf("stats = requests %d errors %d latency count %d weight %d", first.Requests, first.Errors, first.Latency.Count(), first.Weight)
	}
	if first.ErrorRate() != 0.25 {
		t.Fatalf("error rate %v", first.ErrorRate())
	}
	if q50, q99 := first.Quantile(0.5), first.Quantile(0.99); q50 <= 0 || q99 < q50 {
		t.Fatalf("quantiles p50 %v p99 %v", q50, q99)
	}

	// A weight change keeps the counters; Sub gives the window.
	setTargets(t, p, map[string]int{b.addr(): 5})
	for range 8 {
		if _, _, err := do(c, "GET", front.URL+"/fail", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	second := p.Stats()[b.addr()]
	win := second.Sub(first)
	if win.Requests != 8 || win.Errors != 8 || win.Latency.Count() != 8 || win.Weight != 5 {
		t.Fatalf("window = requests %d errors %d latency count %d weight %d", win.Requests, win.Errors, win.Latency.Count(), win.Weight)
	}
	if win.ErrorRate() != 1 {
		t.Fatalf("window error rate %v", win.ErrorRate())
	}
	// A target removed and added again starts over; Sub then returns the new counts.
	setTargets(t, p, map[string]int{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	if _, _, err := do(c, "GET", front.URL, "", nil); err != nil {
		t.Fatal(err)
	}
	third := p.Stats()[b.addr()]
	if d := third.Sub(second); d.Requests != 1 {
		t.Fatalf("after re-add, Sub = %d requests, want 1", d.Requests)
	}
}

func TestHistogram(t *testing.T) {
	var c counters
	for range 98 {
		c.latency.observe(int64(time.Millisecond))
	}
	c.latency.observe(int64(50 * time.Millisecond))
	c.latency.observe(int64(200 * time.Millisecond))
	s := c.snapshot().Latency
	if s.Count() != 100 {
		t.Fatalf("count %d", s.Count())
	}
	near := func(got, want time.Duration) bool {
		return math.Abs(float64(got-want)) <= 0.25*float64(want)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, time.Millisecond}, {0.98, time.Millisecond}, {0.99, 50 * time.Millisecond}, {1, 200 * time.Millisecond}} {
		if got := s.Quantile(tc.q); !near(got, tc.want) {
			t.Errorf("Quantile(%v) = %v, want about %v", tc.q, got, tc.want)
		}
	}
	if m := s.Mean(); m != (98*time.Millisecond+250*time.Millisecond)/100 {
		t.Errorf("mean %v", m)
	}
	if (Histogram{}).Quantile(0.5) != 0 {
		t.Error("empty histogram quantile")
	}
	// Observe builds the same snapshot as the live histogram; negative counts as 0.
	var o Histogram
	for range 98 {
		o.Observe(time.Millisecond)
	}
	o.Observe(50 * time.Millisecond)
	o.Observe(200 * time.Millisecond)
	if o != s {
		t.Errorf("Observe built %+v, the live histogram %+v", o, s)
	}
	var neg Histogram
	neg.Observe(-time.Second)
	if neg.Count() != 1 || neg.Sum() != 0 || neg.Quantile(1) > 1024*time.Nanosecond { // the first bucket, [0, 1024ns)
		t.Errorf("Observe(-1s): count %d, sum %v, max %v", neg.Count(), neg.Sum(), neg.Quantile(1))
	}
	// Bucket bounds contain their values, everywhere in the range.
	for ns := int64(1); ns < 1<<42; ns = ns*5/4 + 1 {
		lo, hi := bucketBounds(bucketOf(ns))
		if i := bucketOf(ns); i < numBuckets-1 && (ns < lo || ns >= hi) {
			t.Fatalf("%dns in bucket %d [%d,%d)", ns, i, lo, hi)
		}
	}
	d := s.Sub(s)
	if d.Count() != 0 || d.Sum() != 0 {
		t.Fatalf("s.Sub(s) = %d, %v", d.Count(), d.Sum())
	}
	if two := s.Add(s); two.Count() != 200 || two.Sum() != 2*s.Sum() || two.Quantile(0.5) != s.Quantile(0.5) {
		t.Fatalf("s.Add(s) = %d, %v, p50 %v", two.Count(), two.Sum(), two.Quantile(0.5))
	}
	a := TargetStats{Weight: 1, Requests: 10, Errors: 1, Latency: s}
	b := TargetStats{Weight: 2, Requests: 30, Errors: 3}
	if sum := a.Add(b); sum.Weight != 3 || sum.Requests != 40 || sum.Errors != 4 || sum.ErrorRate() != 0.1 || sum.Latency.Count() != 100 {
		t.Fatalf("TargetStats.Add = %+v", sum)
	}
	// Sub against a missing (zero) snapshot is the snapshot itself.
	if w := a.Sub(TargetStats{}); w.Requests != 10 || w.Latency.Count() != 100 {
		t.Fatalf("Sub(zero) = %+v", w)
	}
}

// TestNoModuleImports holds the layering rule: the proxy imports no other package
// of this module, and outside the standard library only go-hclog (and what
// go-hclog needs), so other tools can import it alone.
func TestNoModuleImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	deps := func(pkg string) []string { // the non-standard packages pkg needs
		out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	allowed := map[string]bool{"github.com/cutover/deploy/proxy": true}
	for _, pkg := range deps("github.com/hashicorp/go-hclog") {
		allowed[pkg] = true
	}
	for _, pkg := range deps(".") {
		if !allowed[pkg] {
			t.Errorf("proxy depends on %s; it may import only the standard library and go-hclog", pkg)
		}
	}
}

// TestLargeBody: a body larger than MaxReplayBytes is proxied intact, and still
// retried after a dial error (nothing of it was read then).
func TestLargeBody(t *testing.T) {
	live := newBackend(t, "live", nil)
	p, front, c := newFront(t, Options{MaxReplayBytes: 1024})
	setTargets(t, p, map[string]int{deadAddr(t): 1, live.addr(): 1})
	payload := strings.Repeat("0123456789", 30000)
	for i := range 4 {
		code, body, err := do(c, "POST", front.URL, payload, nil)
		if err != nil || code != 200 || body != "live:"+payload {
			t.Fatalf("POST %d: %d len %d %v", i, code, len(body), err)
		}
	}
}
