package canary

import "testing"

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want int
	}{{0, 99}, {1, 50}, {10, 50}, {11, 54}, {50, 90}, {51, 90}, {99, 94}, {100, 95}, {250, 98}, {499, 98}, {500, 99}, {1_000_000, 99}} {
		if got := percentile(tc.n); got != tc.want {
			t.Errorf("percentile(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	// The rule for every n up to well past 500: the highest whole percentile,
	// from p50 to p99, with at least minTail observations above it.
	for n := uint64(1); n <= 2000; n++ {
		got := uint64(percentile(n))
		if got < 50 || got > 99 {
			t.Fatalf("percentile(%d) = %d, outside p50-p99", n, got)
		}
		if got > 50 && n*(100-got) < 100*minTail {
			t.Fatalf("percentile(%d) = %d leaves fewer than %d above it", n, got, minTail)
		}
		if got < 99 && n*(99-got) >= 100*minTail {
			t.Fatalf("percentile(%d) = %d, but p%d also leaves %d above it", n, got, got+1, minTail)
		}
	}
}
