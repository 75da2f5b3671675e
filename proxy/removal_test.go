package proxy

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Options.Logger hears what happens to each target, named by its address:
// added, a request that failed on it, ejected, removed, drained.
func TestLoggerNamesTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // accept, read the request, and close without an answer
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var buf safeBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, DisableTime: true})
	p, front, c := newFront(t, Options{Logger: logger})
	mute, dead := ln.Addr().String(), deadAddr(t)
	setTargets(t, p, map[string]int{mute: 1})
	code, _, err := do(c, "GET", front.URL+"/x", "", nil)
	if err != nil || code != http.StatusBadGateway {
		t.Fatalf("GET: %d, %v; want 502", code, err)
	}
	setTargets(t, p, map[string]int{dead: 1})
	if code, _, err := do(c, "GET", front.URL+"/y", "", nil); err != nil || code != http.StatusBadGateway {
		t.Fatalf("GET: %d, %v; want 502", code, err)
	}
	setTargets(t, p, map[string]int{})
	got := buf.String()
	for _, want := range []string{
		"[INFO]  target added: target=" + mute + " weight=1",
		"[ERROR] request failed: method=GET path=/x target=" + mute + " error=",
		"[INFO]  target removed; draining: target=" + mute + " in_flight=0",
		"[DEBUG] target drained: target=" + mute,
		"[WARN]  target ejected: no connection could be made: target=" + dead + " for=2s error=",
		"[ERROR] request failed: method=GET path=/y target=" + dead + " error=",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the log does not have %q; it is:\n%s", want, got)
		}
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A removed target's statistics stay, marked Removed, until ResetStats; an
// address added again continues from its totals.
func TestStatsKeepRemovedTargets(t *testing.T) {
	b := newBackend(t, "b", nil)
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{b.addr(): 1})
	for range 5 {
		if _, _, err := do(c, "GET", front.URL, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	before := p.Stats()[b.addr()]
	setTargets(t, p, map[string]int{})
	after, ok := p.Stats()[b.addr()]
	if !ok || !after.Removed || after.Requests != 5 || after.Weight != 0 {
		t.Fatalf("after removal: %+v (present %v); want its 5 requests, Removed", after, ok)
	}
	if w := after.Sub(before); w.Requests != 0 {
		t.Errorf("window across the removal: %d requests, want 0", w.Requests)
	}
	setTargets(t, p, map[string]int{b.addr(): 1})
	if _, _, err := do(c, "GET", front.URL, "", nil); err != nil {
		t.Fatal(err)
	}
	again := p.Stats()[b.addr()]
	if again.Removed || again.Requests != 6 || again.Sub(before).Requests != 1 {
		t.Errorf("added again: %d requests (removed %v), want 6 in all", again.Requests, again.Removed)
	}
	setTargets(t, p, map[string]int{})
	p.ResetStats(b.addr())
	if st, ok := p.Stats()[b.addr()]; ok {
		t.Errorf("after ResetStats: %+v, want none", st)
	}
}

// Once a removed target drained, the proxy holds no idle connection to it,
// on the lean path or the fallback transport (a large upload goes through
// it): the target's graceful shutdown is not held up by them.
func TestRemovedTargetKeepsNoIdleConnection(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st == http.StateClosed || st == http.StateHijacked {
			delete(open, c)
		} else {
			open[c] = true
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{addr: 1})
	big := strings.Repeat("x", 64<<10) // past the lean path's 16 KiB: the fallback transport
	for _, body := range []string{"", big} {
		method := "GET"
		if body != "" {
			method = "POST"
		}
		if code, _, err := do(c, method, front.URL, body, nil); err != nil || code != 200 {
			t.Fatalf("%s: %d, %v", method, code, err)
		}
	}
	mu.Lock()
	n := len(open)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no connection to the target stayed open after the requests; the test proves nothing")
	}
	setTargets(t, p, map[string]int{})
	waitUntil(t, "no connection to the removed target is open", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(open) == 0
	})
}
