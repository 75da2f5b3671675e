package proxy

import (
	"testing"
	"time"
)

func TestHistogramCountBelow(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{500, 2000, 1 << 20, 1<<20 + 1, time.Second, time.Hour} {
		h.Observe(d)
	}
	for _, tc := range []struct {
		le   time.Duration
		want uint64
	}{{1 << 10, 1}, {1 << 11, 2}, {1 << 12, 2}, {1 << 20, 2}, {1 << 21, 4}, {1 << 30, 5}, {1 << 42, 6}} {
		if got := h.CountBelow(tc.le); got != tc.want {
			t.Errorf("CountBelow(%d) = %d, want %d", tc.le, got, tc.want)
		}
	}
}

// TestRetriesCounted: a request whose first target refuses the connection is
// sent to the other and counted in Retries.
func TestRetriesCounted(t *testing.T) {
	b := newBackend(t, "live", nil)
	p, front, c := newFront(t, Options{})
	dead := deadAddr(t)
	setTargets(t, p, map[string]int{dead: 1, b.addr(): 1})
	for range 20 {
		if code, body, err := do(c, "GET", front.URL, "", nil); err != nil || code != 200 || body != "live" {
			t.Fatalf("%d %q %v", code, body, err)
		}
	}
	st := p.Stats()[dead]
	if st.Requests == 0 || p.Retries() != st.Requests {
		t.Fatalf("Retries() = %d, want the %d attempts on the dead target", p.Retries(), st.Requests)
	}
}
