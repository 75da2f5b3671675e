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
		// At least minTail observations lie above it, but at the floor (p50).
		if got := percentile(tc.n); tc.n > 0 && got > 50 && float64(tc.n)*float64(100-got)/100 < minTail {
			t.Errorf("percentile(%d) = %d leaves fewer than %d above it", tc.n, got, minTail)
		}
	}
}
