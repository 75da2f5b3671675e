package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gated is a backend that holds every request until its gate is closed and
// records the most requests it had at once (it counts them itself).
type gated struct {
	*backend
	peak atomic.Int64
}

// gatedBackends starts n gated backends sharing one gate; open closes it
// (also at cleanup, before the backends close).
func gatedBackends(t *testing.T, n int) (bs []*gated, open func()) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	for i := range n {
		g := &gated{}
		name := string(rune('a' + i))
		g.backend = newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			n := g.active.Load()
			for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
			}
			<-gate
			w.Header().Set("X-Seq", r.Header.Get("X-Seq"))
			_, _ = io.WriteString(w, name)
		})
		bs = append(bs, g)
	}
	t.Cleanup(open) // runs before the backends' own cleanups, which wait for requests
	return bs, open
}

func active(bs []*gated) (sum int64) {
	for _, b := range bs {
		sum += b.active.Load()
	}
	return sum
}

// TestHardLimitQueues: three targets with hard_limit 5 and 40 concurrent slow
// requests. No target ever has more than 5 at once (counted by the target);
// 15 are served at once, the other 25 wait in the queue and complete.
func TestHardLimitQueues(t *testing.T) {
	bs, open := gatedBackends(t, 3)
	p, front, c := newFront(t, Options{Concurrency: Concurrency{Type: "requests", SoftLimit: 3, HardLimit: 5, QueueTimeout: time.Minute}})
	setTargets(t, p, map[string]int{bs[0].addr(): 1, bs[1].addr(): 1, bs[2].addr(): 1})

	const n = 40
	results := make([]<-chan result, n)
	for i := range n {
		results[i] = goGet(c, front.URL)
	}
	waitUntil(t, "15 requests are at the targets and 25 wait", func() bool {
		return active(bs) == 15 && p.QueueStats().Waiting == 25
	})
	for _, b := range bs {
		if got := b.active.Load(); got != 5 {
			t.Errorf("%s has %d requests, want 5", b.name, got)
		}
	}
	open()
	for i, ch := range results {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("request %d: %d %q %v", i, r.code, r.body, r.err)
		}
	}
	var queued uint64
	for _, b := range bs {
		if pk := b.peak.Load(); pk > 5 {
			t.Errorf("%s had %d requests at once, over the hard limit 5", b.name, pk)
		}
		queued += p.Stats()[b.addr()].Queued
	}
	qs := p.QueueStats()
	if qs.Queued != 25 || qs.Shed != 0 || qs.Waiting != 0 || queued != 25 {
		t.Errorf("queue stats %+v, targets' Queued sum %d; want 25 queued, 25 served from the queue, none shed", qs, queued)
	}
	p.ResetStats()
	for _, b := range bs {
		if st := p.Stats()[b.addr()]; st.Queued != 0 || st.Requests != 0 {
			t.Errorf("%s after ResetStats: %d queued, %d requests; want 0", b.name, st.Queued, st.Requests)
		}
	}
}

// TestQueueTimeoutAndLength: with every target at its hard limit, a request
// waits QueueTimeout and then gets 503 with Retry-After; one that finds the
// queue full gets it at once.
func TestQueueTimeoutAndLength(t *testing.T) {
	bs, open := gatedBackends(t, 3)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{bs[0].addr(): 1, bs[1].addr(): 1, bs[2].addr(): 1})
	const wait = 300 * time.Millisecond
	if err := p.SetConcurrency(Concurrency{HardLimit: 5, QueueTimeout: wait, QueueLength: 3}); err != nil {
		t.Fatal(err)
	}
	var held []<-chan result
	for range 15 {
		held = append(held, goGet(c, front.URL))
	}
	waitUntil(t, "every target is at its hard limit", func() bool { return active(bs) == 15 })
	start := time.Now()
	var waiting []<-chan *http.Response
	for range 3 {
		waiting = append(waiting, goGetResponse(t, c, front.URL))
	}
	waitUntil(t, "3 requests wait", func() bool { return p.QueueStats().Waiting == 3 })

	full := <-goGetResponse(t, c, front.URL) // the queue is full: shed at once
	if full.StatusCode != 503 || full.Header.Get("Retry-After") != "1" {
		t.Errorf("with the queue full: %d, Retry-After %q; want 503 and 1", full.StatusCode, full.Header.Get("Retry-After"))
	}
	for _, ch := range waiting {
		res := <-ch
		if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" {
			t.Errorf("after the wait: %d, Retry-After %q; want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	if waited := time.Since(start); waited < wait {
		t.Errorf("queued requests answered after %v, before the queue timeout %v", waited, wait)
	}
	open()
	for i, ch := range held {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("held request %d: %d %q %v", i, r.code, r.body, r.err)
		}
	}
	if qs := p.QueueStats(); qs.Shed != 4 || qs.Queued != 3 || qs.Waiting != 0 {
		t.Errorf("queue stats %+v, want 3 queued, 4 shed", qs)
	}
}

// goGetResponse sends a GET from a new goroutine and delivers the response,
// its body read and closed.
func goGetResponse(t *testing.T, c *http.Client, url string) <-chan *http.Response {
	ch := make(chan *http.Response, 1)
	go func() {
		res, err := c.Get(url)
		if err != nil {
			t.Error(err)
			ch <- &http.Response{Header: http.Header{}}
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		ch <- res
	}()
	return ch
}

// TestQueueOrder: queued requests reach a target in arrival order.
func TestQueueOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	release := make(chan struct{}, 16)
	first := make(chan struct{})
	b := newBackend(t, "one", func(w http.ResponseWriter, r *http.Request) {
		seq := r.Header.Get("X-Seq")
		mu.Lock()
		order = append(order, seq)
		mu.Unlock()
		if seq == "0" {
			close(first)
		}
		<-release
	})
	t.Cleanup(func() { close(release) })
	p, front, c := newFront(t, Options{Concurrency: Concurrency{HardLimit: 1}})
	setTargets(t, p, map[string]int{b.addr(): 1})
	var results []<-chan result
	send := func(seq string) {
		ch := make(chan result, 1)
		go func() {
			code, body, err := do(c, "GET", front.URL, "", http.Header{"X-Seq": {seq}})
			ch <- result{code, body, err}
		}()
		results = append(results, ch)
	}
	send("0")
	<-first
	want := []string{"0"}
	for i := 1; i <= 6; i++ {
		seq := string(rune('0' + i))
		send(seq)
		want = append(want, seq)
		waitUntil(t, seq+" waits", func() bool { return p.QueueStats().Waiting == int64(i) })
	}
	for range want {
		release <- struct{}{}
	}
	for _, ch := range results {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("%d %q %v", r.code, r.body, r.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != len(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served in order %v, want %v", order, want)
		}
	}
}

// TestSoftLimit: a target at its soft limit gets new work only when every
// target is at it, even when its weight class would be chosen.
func TestSoftLimit(t *testing.T) {
	bs, open := gatedBackends(t, 2)
	heavy, light := bs[0], bs[1]
	p, front, c := newFront(t, Options{Concurrency: Concurrency{SoftLimit: 2}})
	setTargets(t, p, map[string]int{heavy.addr(): 99, light.addr(): 1})
	var results []<-chan result
	for i := 1; i <= 5; i++ {
		results = append(results, goGet(c, front.URL))
		waitUntil(t, "the request reaches a target", func() bool { return active(bs) == int64(i) })
	}
	if h, l := heavy.active.Load(), light.active.Load(); h != 3 || l != 2 {
		t.Errorf("heavy (weight 99) has %d, light (weight 1) %d; want 3 and 2 with soft limit 2", h, l)
	}
	open()
	for _, ch := range results {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("%d %q %v", r.code, r.body, r.err)
		}
	}
}

// TestStickyWithLimits: a sticky request keeps its target over the soft
// limit; at the hard limit it goes to another target.
func TestStickyWithLimits(t *testing.T) {
	bs, open := gatedBackends(t, 2)
	p, front, c := newFront(t, Options{StickyHeader: "X-User", Concurrency: Concurrency{SoftLimit: 1, HardLimit: 2}})
	setTargets(t, p, map[string]int{bs[0].addr(): 1, bs[1].addr(): 1})
	home, _ := p.set.Load().pick("u1", nil, 0, 0)
	var results []<-chan result
	for i := 1; i <= 3; i++ {
		ch := make(chan result, 1)
		go func() {
			code, body, err := do(c, "GET", front.URL, "", http.Header{"X-User": {"u1"}})
			ch <- result{code, body, err}
		}()
		results = append(results, ch)
		waitUntil(t, "the request reaches a target", func() bool { return active(bs) == int64(i) })
	}
	for _, b := range bs {
		want := int64(1)
		if b.addr() == home.addr {
			want = 2
		}
		if got := b.active.Load(); got != want {
			t.Errorf("%s has %d sticky requests, want %d", b.name, got, want)
		}
	}
	open()
	for _, ch := range results {
		if r := <-ch; r.err != nil || r.code != 200 {
			t.Fatalf("%d %q %v", r.code, r.body, r.err)
		}
	}
}

func TestConcurrencyValidate(t *testing.T) {
	for _, c := range []Concurrency{{Type: "sessions"}, {SoftLimit: -1}, {SoftLimit: 6, HardLimit: 5}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConcurrency) {
			t.Errorf("%+v: %v, want ErrInvalidConcurrency", c, err)
		}
	}
	p := New(Options{})
	if err := p.SetConcurrency(Concurrency{SoftLimit: 6, HardLimit: 5}); !errors.Is(err, ErrInvalidConcurrency) {
		t.Errorf("SetConcurrency: %v", err)
	}
	for _, c := range []Concurrency{{}, {Type: "connections", SoftLimit: 20, HardLimit: 25}, {SoftLimit: 5}} {
		if err := p.SetConcurrency(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
		if got := p.Concurrency(); got != c {
			t.Errorf("Concurrency() = %+v, want %+v", got, c)
		}
	}
}

// TestQueueServedByNewTargets: requests waiting for a full target are served
// by targets added meanwhile (a bluegreen switch), and a waiting client that
// goes away leaves the queue.
func TestQueueServedByNewTargets(t *testing.T) {
	bs, open := gatedBackends(t, 1)
	fresh := newBackend(t, "fresh", nil)
	p, front, c := newFront(t, Options{Concurrency: Concurrency{HardLimit: 1, QueueTimeout: time.Minute}})
	setTargets(t, p, map[string]int{bs[0].addr(): 1})
	held := goGet(c, front.URL)
	waitUntil(t, "the target is full", func() bool { return bs[0].active.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL, nil)
	gone := make(chan error, 1)
	go func() {
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		gone <- err
	}()
	waitUntil(t, "a request waits", func() bool { return p.QueueStats().Waiting == 1 })
	cancel()
	<-gone
	waitUntil(t, "the gone request leaves the queue", func() bool { return p.QueueStats().Waiting == 0 })

	var waiting []<-chan result
	for i := 1; i <= 3; i++ {
		waiting = append(waiting, goGet(c, front.URL))
		waitUntil(t, "requests wait", func() bool { return p.QueueStats().Waiting == int64(i) })
	}
	setTargets(t, p, map[string]int{bs[0].addr(): 0, fresh.addr(): 1})
	for _, ch := range waiting {
		if r := <-ch; r.err != nil || r.code != 200 || r.body != "fresh" {
			t.Fatalf("%d %q %v, want 200 from fresh", r.code, r.body, r.err)
		}
	}
	open()
	if r := <-held; r.err != nil || r.code != 200 {
		t.Fatalf("held: %d %q %v", r.code, r.body, r.err)
	}
	if qs := p.QueueStats(); qs.Queued != 4 || qs.Shed != 0 {
		t.Errorf("queue stats %+v, want 4 queued (one gone), none shed", qs)
	}
}
