package proxy

import (
	"context"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"slices"
)

// Picking a target: least-loaded, with weights that keep their meaning.
//
// The routes of one weight form a weight class (during a canary, the old
// version's machines are one class and the canaries another; during a rolling
// deploy every machine has weight 1 and all are one class). A request first
// draws a position on a golden-ratio (Weyl) sequence over the cumulative
// weights, as weighted round robin does: the class it lands in receives
// exactly its share of the weight, to within a few requests, whatever the
// load. Inside the class it compares the target at that position with one
// other member drawn at random (the power of two choices, as in Envoy's and
// HAProxy's least-request balancing) and takes the one with fewer requests in
// flight; on a tie the position's target, so an idle set is still spread
// evenly. A slow machine keeps its requests longer, so it gets fewer new ones.
//
// Limits (see Concurrency) rank the candidates further: a target at its hard
// limit is never picked; one over its soft limit, or ejected, only when
// nothing better is found. When neither choice is under its soft limit and up,
// the class and then the whole set are scanned for one that is, so a target
// over its soft limit gets new work only when every target is over it. That
// scan, and so any share shift between classes, happens only under load or
// failures.

// Ranks: a target's tier in the top bits, its requests in flight below.
const (
	tierShift   = 48
	tierSoft    = 1 << tierShift // up, at or over its soft limit
	tierEjected = 2 << tierShift // ejected (see Options.EjectionTime)
	excluded    = -1             // tried already, or at its hard limit
)

// rank orders t as a candidate (lower is better) and reports whether it is
// excluded only for being at the hard limit.
func rank(t *target, tried []*target, soft, hard int64) (r int64, full bool) {
	n := t.inflight.Load()
	if hard > 0 && n >= hard {
		return excluded, true
	}
	if len(tried) > 0 && slices.Contains(tried, t) {
		return excluded, false
	}
	r = n
	if soft > 0 && n >= soft {
		r |= tierSoft
	}
	if t.ejected() {
		r |= tierEjected
	}
	return r, false
}

// pick chooses a target for a request (see above), skipping the targets in
// tried. A sticky key picks its target by weighted rendezvous hashing, over
// the soft limit too, but never at the hard limit: a request whose target is
// full is picked as if it had no key. pick returns nil when no target is
// left; full then reports that some were left out only for being at the hard
// limit (the request may wait for one). soft and hard are the limits, 0 for
// none.
func (s *targetSet) pick(key string, tried []*target, soft, hard int64) (*target, bool) {
	n := len(s.routes)
	if n == 0 {
		return nil, false
	}
	if key != "" {
		t := s.pickSticky(key, tried)
		if t == nil {
			return nil, false
		}
		if hard <= 0 || t.inflight.Load() < hard {
			return t, false
		}
	}
	i := s.position()
	r := &s.routes[i]
	best, bestRank := r.t, int64(excluded)
	if rk, _ := rank(r.t, tried, soft, hard); rk >= 0 {
		bestRank = rk
	}
	if k := uint64(r.hi - r.lo); k > 1 {
		// Another member of the class: i plus 1..k-1, modulo the class.
		j := int(r.lo) + int((uint64(i-int(r.lo))+1+rand.Uint64N(k-1))%k)
		c := s.routes[j].t
		if rk, _ := rank(c, tried, soft, hard); rk >= 0 && (bestRank < 0 || rk < bestRank) {
			best, bestRank = c, rk
		}
	}
	if bestRank >= 0 && bestRank < tierSoft {
		return best, false
	}
	return s.scan(i, tried, soft, hard)
}

// position returns the index of the route at the next position of the
// golden-ratio sequence over the cumulative weights.
func (s *targetSet) position() int {
	n := len(s.routes)
	if n == 1 {
		return 0
	}
	u := s.seq.Add(1) * 0x9E3779B97F4A7C15 // frac(i*phi) as a 64-bit fixed-point number
	if len(s.cls) == 1 {                   // one weight: the position is an index
		i, _ := bits.Mul64(u, uint64(n))
		return int(i)
	}
	pos, _ := bits.Mul64(u, s.total) // in [0, total)
	c, _ := slices.BinarySearchFunc(s.cls, pos, func(c class, pos uint64) int {
		if c.end <= pos {
			return -1
		}
		return 1
	})
	cl := &s.cls[c]
	return int(cl.lo) + int((pos-cl.start)/cl.weight)
}

// scan is pick's slow path: the best-ranked target of route i's class, unless
// another class has a better tier. Scans start at i, so that ties spread.
func (s *targetSet) scan(i int, tried []*target, soft, hard int64) (*target, bool) {
	full := false
	best := func(lo, hi int) (*target, int64) {
		var bt *target
		br := int64(excluded)
		k := hi - lo
		for m := range k {
			t := s.routes[lo+(i-lo+m+k)%k].t
			rk, f := rank(t, tried, soft, hard)
			full = full || f
			if rk >= 0 && (br < 0 || rk < br) {
				bt, br = t, rk
			}
		}
		return bt, br
	}
	r := &s.routes[i]
	ct, cr := best(int(r.lo), int(r.hi))
	if ct != nil && cr < tierSoft {
		return ct, false
	}
	if r.hi-r.lo < int32(len(s.routes)) {
		at, ar := best(0, len(s.routes))
		if at != nil && (ct == nil || ar>>tierShift < cr>>tierShift) {
			return at, false
		}
	}
	if ct != nil {
		return ct, false
	}
	return nil, full
}

// pickRR is weighted round robin, the picking the proxy did before it was
// load-aware: no limits, no load. Tests compare the two with it.
func (s *targetSet) pickRR(key string, tried []*target) *target {
	n := len(s.routes)
	if n == 0 {
		return nil
	}
	if key != "" {
		return s.pickSticky(key, tried)
	}
	start := s.position()
	for pass := 0; pass < 2; pass++ {
		for i := range n {
			r := &s.routes[(start+i)%n]
			if slices.Contains(tried, r.t) || (pass == 0 && r.t.ejected()) {
				continue
			}
			return r.t
		}
	}
	return nil
}

// claim picks a target from the current set and claims it (see pick), or
// waits in the queue when every target is at its hard limit. It returns
// errNoTargets when no target is left, errOverloaded when the request cannot
// wait or waited too long, or ctx's error.
func (p *Proxy) claim(ctx context.Context, key string, tried []*target) (*target, error) {
	lim := p.limits.Load()
	ps := p.pause.Load()
	if ps != nil && len(tried) == 0 {
		return p.hold(ctx, key, ps, lim) // a retry belongs to a request in flight: not held
	}
	// During a pause the queue holds the paused requests: a retry does not wait behind them.
	if lim.hard > 0 && ps == nil && p.queue.waiting.Load() > 0 {
		return p.queue.wait(ctx, key, tried, lim) // none overtakes a waiting request
	}
	t, full := p.tryClaim(key, tried, lim)
	switch {
	case t != nil:
		return t, nil
	case full:
		return p.queue.wait(ctx, key, tried, lim)
	}
	return nil, errNoTargets
}

// tryClaim picks and claims a target, picking again from the (newer) set when
// the picked target was removed or filled up meanwhile. It returns nil when
// no target is left; full then reports that some were at their hard limit.
func (p *Proxy) tryClaim(key string, tried []*target, lim *limits) (*target, bool) {
	for {
		var t *target
		var full bool
		if p.rr {
			t = p.set.Load().pickRR(key, tried)
		} else {
			t, full = p.set.Load().pick(key, tried, lim.soft, lim.hard)
		}
		if t == nil {
			return nil, full
		}
		if t.claim(lim.hard) {
			return t, false
		}
	}
}

func (p *Proxy) stickyKey(req *http.Request) string {
	if p.opts.StickyHeader != "" {
		if v := req.Header.Get(p.opts.StickyHeader); v != "" {
			return v
		}
	}
	if p.opts.StickyCookie != "" {
		if c, err := req.Cookie(p.opts.StickyCookie); err == nil {
			return c.Value
		}
	}
	return ""
}

// pickSticky returns the eligible target with the highest weighted rendezvous score
// -weight/ln(h), h a uniform hash of (key, target) in (0,1): each key maps to one
// target, in proportion to the weights, and changing the set moves only the keys
// of the targets that changed.
func (s *targetSet) pickSticky(key string, tried []*target) *target {
	kh := hashString(key)
	for pass := 0; pass < 2; pass++ {
		var best *target
		bestScore := math.Inf(-1)
		for i := range s.routes {
			r := &s.routes[i]
			if slices.Contains(tried, r.t) || (pass == 0 && r.t.ejected()) {
				continue
			}
			h := (float64(mix64(kh^r.t.seed)>>11) + 0.5) / (1 << 53)
			if score := -r.weight / math.Log(h); score > bestScore {
				best, bestScore = r.t, score
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// hashString is 64-bit FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
