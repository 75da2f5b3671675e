package proxy

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPauseHoldsAndResumes: Pause returns once the request in flight has
// completed; the requests that arrive meanwhile wait, reach no target, and
// are served (in order, all 200) on Resume.
func TestPauseHoldsAndResumes(t *testing.T) {
	b, started, release := heldBackend(t, "slow")
	quick := newBackend(t, "quick", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	first := goGet(c, front.URL)
	<-started

	paused := make(chan error, 1)
	go func() { paused <- p.Pause(context.Background(), time.Minute) }()
	waitUntil(t, "the proxy is paused", func() bool { ok, _ := p.Paused(); return ok })
	setTargets(t, p, map[string]int{b.addr(): 0, quick.addr(): 1}) // a held request may go to a new target
	const n = 10
	held := make([]<-chan result, n)
	for i := range n {
		held[i] = goGet(c, front.URL)
	}
	waitUntil(t, "10 requests are held", func() bool { return p.QueueStats().Waiting == n })
	select {
	case err := <-paused:
		t.Fatalf("Pause returned (%v) while a request was in flight", err)
	default:
	}
	if got := quick.served.Load(); got != 0 {
		t.Fatalf("a target served %d requests during the pause", got)
	}

	close(release)
	if r := <-first; r.err != nil || r.code != 200 || r.body != "slow" {
		t.Fatalf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-paused; err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if got := quick.served.Load(); got != 0 {
		t.Fatalf("a target served %d requests during the pause", got)
	}
	p.Resume()
	for i, ch := range held {
		if r := <-ch; r.err != nil || r.code != 200 || r.body != "quick" {
			t.Fatalf("held request %d: %d %q %v", i, r.code, r.body, r.err)
		}
	}
	if ok, _ := p.Paused(); ok {
		t.Fatal("still paused after Resume")
	}
	if qs := p.QueueStats(); qs.Waiting != 0 || qs.Queued != n || qs.Shed != 0 {
		t.Fatalf("QueueStats = %+v, want %d queued, none waiting or shed", qs, n)
	}
}

// TestPauseTimeout: a request held longer than the pause's timeout is
// answered 503 with Retry-After; with a negative timeout at once. Pause with
// an ended context returns its error and leaves the proxy paused.
func TestPauseTimeout(t *testing.T) {
	b := newBackend(t, "a", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	if err := p.Pause(context.Background(), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := c.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("held past the timeout: %d Retry-After %q, want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("answered after %v, before the pause timeout", d)
	}

	if err := p.Pause(context.Background(), -1); err != nil {
		t.Fatal(err)
	}
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 503 || body != "service unavailable: paused for maintenance\n" {
		t.Fatalf("maintenance mode: %d %q %v", code, body, err)
	}
	if got := b.served.Load(); got != 0 {
		t.Fatalf("the target served %d requests while paused", got)
	}
	if qs := p.QueueStats(); qs.Shed != 2 {
		t.Fatalf("QueueStats = %+v, want 2 shed", qs)
	}
	p.Resume()
	if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "a" {
		t.Fatalf("after Resume: %d %q %v", code, body, err)
	}

	hb, started, release := heldBackend(t, "slow")
	setTargets(t, p, map[string]int{hb.addr(): 1})
	inflight := goGet(c, front.URL)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Pause(ctx, time.Minute); err == nil {
		t.Fatal("Pause returned nil with a request in flight and an ended context")
	}
	if ok, _ := p.Paused(); !ok {
		t.Fatal("Pause with an ended context left the proxy unpaused")
	}
	close(release)
	if r := <-inflight; r.code != 200 {
		t.Fatalf("in-flight request: %d %v", r.code, r.err)
	}
	p.Resume()
}

// TestPauseUnderLoad: 16 clients send requests while the proxy is paused
// and resumed 10 times, each pause (about 30 ms) shorter than its timeout
// (10 s): no request fails, and while paused (Pause returned) no target
// receives a request. Then one pause outlasts its timeout (100 ms): the
// requests held past it are answered 503, none fails otherwise.
func TestPauseUnderLoad(t *testing.T) {
	var inPause atomic.Bool
	var leaked atomic.Int64
	bs := make([]*backend, 3)
	targets := map[string]int{}
	for i := range bs {
		bs[i] = newBackend(t, fmt.Sprint("b", i), func(w http.ResponseWriter, r *http.Request) {
			if inPause.Load() {
				leaked.Add(1)
			}
			time.Sleep(time.Millisecond)
			w.Write([]byte("ok"))
		})
		targets[bs[i].addr()] = 1
	}
	p, front, c := newFront(t, Options{})
	setTargets(t, p, targets)

	type tally struct{ ok, s503, other atomic.Int64 }
	run := func(tl *tally, stop <-chan struct{}) *sync.WaitGroup {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 5000; n++ { // bounded
					select {
					case <-stop:
						return
					default:
					}
					code, _, err := do(c, "GET", front.URL, "", nil)
					switch {
					case err == nil && code == 200:
						tl.ok.Add(1)
					case err == nil && code == 503:
						tl.s503.Add(1)
					default:
						tl.other.Add(1)
						t.Errorf("request failed: %d %v", code, err)
					}
				}
			}()
		}
		return &wg
	}

	var tl tally
	stop := make(chan struct{})
	wg := run(&tl, stop)
	for range 10 {
		before := tl.ok.Load()
		waitUntil(t, "requests flow", func() bool { return tl.ok.Load() > before+50 })
		if err := p.Pause(context.Background(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		inPause.Store(true)
		waitUntil(t, "requests are held", func() bool { return p.QueueStats().Waiting >= 8 })
		time.Sleep(30 * time.Millisecond) // the pause's length, not a condition
		inPause.Store(false)
		p.Resume()
	}
	close(stop)
	wg.Wait()
	if tl.other.Load() != 0 || tl.s503.Load() != 0 || leaked.Load() != 0 {
		t.Fatalf("%d ok, %d 503, %d failed, %d reached a target during a pause", tl.ok.Load(), tl.s503.Load(), tl.other.Load(), leaked.Load())
	}
	t.Logf("%d requests, none failed, across 10 pauses", tl.ok.Load())

	var tl2 tally
	stop2 := make(chan struct{})
	if err := p.Pause(context.Background(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	wg = run(&tl2, stop2)
	waitUntil(t, "held requests time out", func() bool { return tl2.s503.Load() >= 16 })
	p.Resume()
	waitUntil(t, "requests flow again", func() bool { return tl2.ok.Load() >= 100 })
	close(stop2)
	wg.Wait()
	if tl2.other.Load() != 0 {
		t.Fatalf("%d requests failed other than 503", tl2.other.Load())
	}
}
