package deploy

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// StatsReporter is an optional Router ability: per-target traffic counters,
// kept since each target entered the set. Comparing two calls gives a window
// (see Traffic.Sub); strategy/canary judges its canaries that way. *proxy.Proxy
// satisfies it. Rollout.Traffic finds it in a router or in the routers it
// wraps (RouterWrapper).
//
// Its signature has standard types only, so a router satisfies it without
// importing this package.
type StatsReporter interface {
	// RequestStats returns, per target address, the requests sent and the
	// requests that failed (5xx or transport errors), and the latency to
	// response headers as a histogram: each bucket's upper bound mapped to
	// its count. A bucket's lower bound is the next lower bound listed, or
	// 0, so every bucket is listed, empty ones too. Nil maps mean the
	// statistics could not be read.
	RequestStats() (requests, errors map[string]uint64, latency map[string]map[time.Duration]uint64)
}

// Traffic is what one target, or several added together, served: counters
// since it entered the router's set, or over a window (Sub).
type Traffic struct {
	Requests uint64
	Errors   uint64
	// Latency is a histogram: bucket upper bound -> count (see StatsReporter).
	Latency map[time.Duration]uint64
}

// ErrorRate returns Errors/Requests, or 0 with no request.
func (t Traffic) ErrorRate() float64 {
	if t.Requests == 0 {
		return 0
	}
	return float64(t.Errors) / float64(t.Requests)
}

// Observations returns the number of latencies in the histogram.
func (t Traffic) Observations() uint64 {
	var n uint64
	for _, c := range t.Latency {
		n += c
	}
	return n
}

// Quantile returns an estimate of latency quantile q (0..1, such as 0.99),
// interpolated within its bucket; 0 when the histogram is empty.
func (t Traffic) Quantile(q float64) time.Duration {
	n := t.Observations()
	if n == 0 {
		return 0
	}
	bounds := make([]time.Duration, 0, len(t.Latency))
	for b := range t.Latency {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	rank := max(min(max(q, 0), 1)*float64(n), 1)
	var cum float64
	var lo time.Duration
	for _, hi := range bounds {
		c := float64(t.Latency[hi])
		if c > 0 && cum+c >= rank {
			return lo + time.Duration((rank-cum)/c*float64(hi-lo))
		}
		cum += c
		lo = hi
	}
	return bounds[len(bounds)-1]
}

// Sub returns what t served since earlier, an earlier reading of the same
// counters. When t counts less than earlier, the counters started over and t
// is returned unchanged.
func (t Traffic) Sub(earlier Traffic) Traffic {
	if t.Requests < earlier.Requests || t.Errors < earlier.Errors || t.Observations() < earlier.Observations() {
		return t
	}
	d := Traffic{Requests: t.Requests - earlier.Requests, Errors: t.Errors - earlier.Errors, Latency: make(map[time.Duration]uint64, len(t.Latency))}
	for b, c := range t.Latency {
		d.Latency[b] = c - min(c, earlier.Latency[b])
	}
	for b := range earlier.Latency {
		if _, ok := d.Latency[b]; !ok {
			d.Latency[b] = 0
		}
	}
	return d
}

// Add returns what t and o served together, as of two targets seen as one.
func (t Traffic) Add(o Traffic) Traffic {
	s := Traffic{Requests: t.Requests + o.Requests, Errors: t.Errors + o.Errors, Latency: make(map[time.Duration]uint64, max(len(t.Latency), len(o.Latency)))}
	for b, c := range t.Latency {
		s.Latency[b] += c
	}
	for b, c := range o.Latency {
		s.Latency[b] += c
	}
	return s
}

// StatsReporterOf finds a StatsReporter in rt or the routers it wraps (see
// RouterChain), the outermost first.
func StatsReporterOf(rt Router) (StatsReporter, bool) { return findRouter[StatsReporter](rt) }

// ErrNoStats is returned by Rollout.Traffic when the router's StatsReporter
// could not read its statistics (nil maps), such as a router in another
// process that did not answer.
var ErrNoStats = errors.New("the router's traffic statistics could not be read")

// Traffic returns the router's per-target traffic counters, keyed by machine
// address. It fails with ErrInvalid when the router (or a router it wraps)
// is no StatsReporter, and with ErrNoStats when it reports nil maps.
func (r *Rollout) Traffic() (map[string]Traffic, error) {
	sr, ok := StatsReporterOf(r.router)
	if !ok {
		return nil, fmt.Errorf("%w: the router (%T) reports no traffic statistics", ErrInvalid, r.router)
	}
	reqs, errs, lat := sr.RequestStats()
	if reqs == nil {
		return nil, ErrNoStats
	}
	out := make(map[string]Traffic, len(reqs))
	for a, n := range reqs {
		out[a] = Traffic{Requests: n, Errors: errs[a], Latency: lat[a]}
	}
	return out, nil
}
