package proxy

import (
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Latency buckets: bucket 0 holds [0, 1024ns); above that each power of two is
// split into 4 buckets (about 19% wide), up to 2^maxExp ns (about 18 minutes); the
// last bucket also holds everything longer.
const (
	minExp     = 10
	maxExp     = 40
	subBuckets = 4
	numBuckets = 1 + (maxExp-minExp+1)*subBuckets
)

func bucketOf(ns int64) int {
	if ns < 1<<minExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1
	if e > maxExp {
		return numBuckets - 1
	}
	sub := int(uint64(ns)>>(e-2)) & (subBuckets - 1)
	return 1 + (e-minExp)*subBuckets + sub
}

// bucketBounds returns the [lower, upper) bounds of bucket i in nanoseconds.
func bucketBounds(i int) (lo, hi int64) {
	if i == 0 {
		return 0, 1 << minExp
	}
	e := (i-1)/subBuckets + minExp
	sub := int64((i - 1) % subBuckets)
	return (4 + sub) << (e - 2), (5 + sub) << (e - 2)
}

// counters are a target's live statistics: atomics only, no lock on the request path.
type counters struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	queued   atomic.Uint64
	latency  histogram
}

type histogram struct {
	buckets [numBuckets]atomic.Uint64
	sum     atomic.Int64
}

func (h *histogram) observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.buckets[bucketOf(ns)].Add(1)
	h.sum.Add(ns)
}

// add adds o's counts to c's; c is not yet in use.
func (c *counters) add(o *counters) {
	c.requests.Add(o.requests.Load())
	c.errors.Add(o.errors.Load())
	c.queued.Add(o.queued.Load())
	for i := range c.latency.buckets {
		c.latency.buckets[i].Add(o.latency.buckets[i].Load())
	}
	c.latency.sum.Add(o.latency.sum.Load())
}

// reset starts c over from zero.
func (c *counters) reset() {
	c.requests.Store(0)
	c.errors.Store(0)
	c.queued.Store(0)
	for i := range c.latency.buckets {
		c.latency.buckets[i].Store(0)
	}
	c.latency.sum.Store(0)
}

func (c *counters) snapshot() TargetStats {
	s := TargetStats{Requests: c.requests.Load(), Errors: c.errors.Load(), Queued: c.queued.Load()}
	for i := range c.latency.buckets {
		n := c.latency.buckets[i].Load()
		s.Latency.counts[i] = n
		s.Latency.count += n
	}
	s.Latency.sum = time.Duration(c.latency.sum.Load())
	return s
}

// TargetStats is a snapshot of one target's statistics since it entered the set.
type TargetStats struct {
	// Weight is the target's weight in the set the snapshot was taken from.
	Weight int
	// InFlight is the number of requests in flight at the snapshot (a gauge).
	InFlight int64
	// Removed says the target left the set; its statistics are its totals,
	// kept until Proxy.ResetStats.
	Removed bool
	// Requests counts the attempts sent to the target, including those that failed
	// to connect (a request retried on another target counts once on each; one
	// sent again over a new connection after the backend had closed the pooled
	// one counts once).
	Requests uint64
	// Errors counts the attempts that failed: 5xx responses and transport errors.
	Errors uint64
	// Queued counts the requests the target got after waiting in the queue for
	// a target under its hard limit (see Concurrency; Proxy.QueueStats has the
	// queue's own counters).
	Queued uint64
	// Latency is the distribution of the time to response headers, over the
	// attempts that got a response (5xx included).
	Latency Histogram
}

// ErrorRate returns Errors/Requests, or 0 with no request.
func (s TargetStats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Quantile returns the latency quantile q (0..1), such as 0.99; see Histogram.Quantile.
func (s TargetStats) Quantile(q float64) time.Duration { return s.Latency.Quantile(q) }

// Sub returns the statistics of the window between earlier and s, two snapshots of
// the same target. Weight, InFlight and Removed are s's. When s has fewer requests
// than earlier, the target's counters started over (Proxy.ResetStats), and s is
// returned unchanged.
func (s TargetStats) Sub(earlier TargetStats) TargetStats {
	if s.Requests < earlier.Requests || s.Errors < earlier.Errors || s.Latency.count < earlier.Latency.count {
		return s
	}
	d := s
	d.Requests -= earlier.Requests
	d.Errors -= earlier.Errors
	d.Queued -= min(earlier.Queued, d.Queued)
	d.Latency = s.Latency.Sub(earlier.Latency)
	return d
}

// Histogram is a snapshot of a latency distribution in fixed log-scale buckets
// (about 19% wide, from 1µs to about 18 minutes). The zero value is empty.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    time.Duration
}

// Observe adds one observation, d (a negative d counts as 0). The Proxy fills its
// histograms itself; Observe is for building statistics elsewhere, such as a
// router of one's own that reports TargetStats to strategy/canary.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(int64(d))]++
	h.count++
	h.sum += d
}

// Count returns the number of observations.
func (h Histogram) Count() uint64 { return h.count }

// Sum returns the total of the observations.
func (h Histogram) Sum() time.Duration { return h.sum }

// Mean returns the mean observation, or 0 when empty.
func (h Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return h.sum / time.Duration(h.count)
}

// Quantile returns an estimate of the q quantile (q in [0,1], such as 0.5 or 0.99),
// interpolated within its bucket, so it is within a bucket's width (about 19%) of
// the true value. It returns 0 when the histogram is empty.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(h.count) // the rank-th observation, 0 < rank <= count
	if rank < 1 {
		rank = 1
	}
	var cum float64
	for i, n := range h.counts {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo, hi := bucketBounds(i)
			frac := (rank - cum) / float64(n)
			return time.Duration(float64(lo) + frac*float64(hi-lo))
		}
		cum += float64(n)
	}
	_, hi := bucketBounds(numBuckets - 1)
	return time.Duration(hi)
}

// Sub returns the observations of h that are not in earlier, an earlier snapshot of
// the same histogram. Buckets that would go negative are zero.
func (h Histogram) Sub(earlier Histogram) Histogram {
	var d Histogram
	for i := range h.counts {
		if h.counts[i] > earlier.counts[i] {
			d.counts[i] = h.counts[i] - earlier.counts[i]
			d.count += d.counts[i]
		}
	}
	if h.sum > earlier.sum {
		d.sum = h.sum - earlier.sum
	}
	return d
}

// Add returns the statistics of s and o together, as of two targets seen as one
// (for comparing a group of targets with another). Weight and InFlight are summed.
func (s TargetStats) Add(o TargetStats) TargetStats {
	s.Weight += o.Weight
	s.InFlight += o.InFlight
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Queued += o.Queued
	s.Latency = s.Latency.Add(o.Latency)
	return s
}

// Add returns the observations of h and o together.
func (h Histogram) Add(o Histogram) Histogram {
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	h.count += o.count
	h.sum += o.sum
	return h
}

// CountBelow returns the number of observations in the buckets whose upper
// bound is at most le. It is exact when le is a power of two of nanoseconds
// from 1024ns on (bucket edges), such as the buckets of a Prometheus
// histogram built from the snapshot; otherwise it undercounts by at most the
// bucket holding le (about 19% of le wide).
func (h Histogram) CountBelow(le time.Duration) uint64 {
	var n uint64
	for i, c := range h.counts {
		if _, hi := bucketBounds(i); hi > int64(le) {
			break
		}
		n += c
	}
	return n
}

// maxRemovedStats bounds how many removed targets' statistics are kept; the
// oldest are forgotten first.
const maxRemovedStats = 1024

// Stats returns a snapshot of the statistics of every target in the current set
// (weight 0 included) and of the removed targets, keyed by address. A removed
// target's statistics (Removed set, Weight 0) keep its totals until ResetStats
// forgets them (or 1,024 later removals push them out), and an address added
// again continues from them. Take two snapshots and subtract them with
// TargetStats.Sub to look at a window, across removals too.
func (p *Proxy) Stats() map[string]TargetStats {
	s := p.set.Load()
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	m := make(map[string]TargetStats, len(s.all)+len(p.removed))
	for addr, t := range p.removed {
		st := t.stats.snapshot()
		st.InFlight = t.inflight.Load()
		st.Removed = true
		m[addr] = st
	}
	for _, e := range s.all {
		st := e.t.stats.snapshot()
		st.Weight = e.weight
		st.InFlight = e.t.inflight.Load()
		m[e.t.addr] = st
	}
	return m
}

// ResetStats starts the statistics of addrs over, or of every target when
// addrs is empty: a removed target's are forgotten, a current target's
// counters start from zero (requests in flight meanwhile may or may not count).
func (p *Proxy) ResetStats(addrs ...string) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	all := len(addrs) == 0
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	kept := p.order[:0]
	for _, a := range p.order {
		if all || want[a] {
			delete(p.removed, a)
		} else {
			kept = append(kept, a)
		}
	}
	p.order = kept
	for _, e := range p.set.Load().all {
		if all || want[e.t.addr] {
			e.t.stats.reset()
		}
	}
}

// keepStats remembers removed targets' statistics. SetTargets is serialized.
func (p *Proxy) keepStats(removed []*target) {
	if len(removed) == 0 {
		return
	}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if p.removed == nil {
		p.removed = map[string]*target{}
	}
	for _, t := range removed {
		if _, ok := p.removed[t.addr]; !ok {
			p.order = append(p.order, t.addr)
		}
		p.removed[t.addr] = t
	}
	for len(p.order) > maxRemovedStats {
		delete(p.removed, p.order[0])
		p.order = p.order[1:]
	}
}

// adoptStats gives the targets of next that were removed before the totals
// they had, before next is published.
func (p *Proxy) adoptStats(next *targetSet) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if len(p.removed) == 0 {
		return
	}
	for _, e := range next.all {
		if old, ok := p.removed[e.t.addr]; ok && old != e.t {
			e.t.stats.add(&old.stats)
			delete(p.removed, e.t.addr)
			p.order = slices.DeleteFunc(p.order, func(a string) bool { return a == e.t.addr })
		}
	}
}

// Retries returns how many attempts the proxy made after a request's first
// since New: on another target after a failed connection, or once more after
// a connection that broke before the response (idempotent requests).
func (p *Proxy) Retries() uint64 { return p.retries.Load() }
