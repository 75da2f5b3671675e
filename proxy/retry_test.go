package proxy

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Both request paths follow the one retry policy (retry.go): a request that
// cannot connect goes on to another target, and the first is ejected; one that
// went out and got no answer is sent again, to another target, once if it is
// idempotent, never if not.
func TestRetryPolicyBothPaths(t *testing.T) {
	paths := []struct {
		name string
		opts func() Options
	}{
		{"lean", func() Options { return Options{} }},
		{"fallback", func() Options { return Options{Transport: &http.Transport{}} }}, // a Transport takes every request
	}
	for _, path := range paths {
		t.Run(path.name+"/dial error", func(t *testing.T) {
			live := newBackend(t, "live", nil)
			dead := deadAddr(t)
			opts := path.opts()
			opts.EjectionTime = time.Hour
			p, front, c := newFront(t, opts)
			setTargets(t, p, map[string]int{dead: 1, live.addr(): 1})
			for i, method := range []string{"GET", "POST", "GET", "POST", "GET", "POST"} {
				code, body, err := do(c, method, front.URL, map[string]string{"POST": "data"}[method], nil)
				if want := map[string]string{"GET": "live", "POST": "live:data"}[method]; err != nil || code != 200 || body != want {
					t.Fatalf("%s %d: %d %q %v; want 200 %q", method, i, code, body, err, want)
				}
			}
			if st := p.Stats()[dead]; st.Requests != 1 || st.Errors != 1 || p.Retries() != 1 {
				t.Fatalf("dead target: %d attempts, %d errors, %d retries; want 1, 1, 1 (then ejected)", st.Requests, st.Errors, p.Retries())
			}
		})
		t.Run(path.name+"/no answer", func(t *testing.T) {
			var hits atomic.Int64
			mute := func(conn net.Conn) { // reads a request, closes without an answer
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					hits.Add(1)
				}
			}
			p, front, c := newFront(t, path.opts())
			setTargets(t, p, map[string]int{rawServer(t, mute): 1, rawServer(t, mute): 1})
			for _, tc := range []struct {
				method string
				hdr    http.Header
				sends  int64
			}{
				{"GET", nil, 2},
				{"POST", nil, 1},
				{"POST", http.Header{"Idempotency-Key": {"k1"}}, 2},
			} {
				before, retries := hits.Load(), p.Retries()
				if code, _, err := do(c, tc.method, front.URL, "x", tc.hdr); err != nil || code != http.StatusBadGateway {
					t.Fatalf("%s %v: %d %v, want 502", tc.method, tc.hdr, code, err)
				}
				if n := hits.Load() - before; n != tc.sends {
					t.Errorf("%s %v reached the backend %d times, want %d", tc.method, tc.hdr, n, tc.sends)
				}
				if n := p.Retries() - retries; n != uint64(tc.sends-1) {
					t.Errorf("%s %v: %d retries counted, want %d", tc.method, tc.hdr, n, tc.sends-1)
				}
			}
		})
	}
}
