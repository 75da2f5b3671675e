package proxy

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one upstream address. The same object lives on across target sets for
// as long as the address stays in the set, so its counters survive weight changes.
// Once removed it is never routed to again (a re-added address gets a new target).
type target struct {
	addr string
	seed uint64 // hash of addr, for sticky (rendezvous) hashing

	inflight     atomic.Int64
	removed      atomic.Bool
	drained      chan struct{} // closed once, when removed and no request is in flight
	drainOnce    sync.Once
	ejectedUntil atomic.Int64 // monotonic nanoseconds (see now); 0 means up

	stats counters
	pool  connPool // the lean path's connections
	q     *queue   // the proxy's queue of requests waiting for a target (limits.go)
}

func newTarget(addr string, q *queue) *target {
	return &target{addr: addr, seed: hashString(addr), drained: make(chan struct{}), q: q}
}

// claim registers a request on t. It fails, leaving no trace, when t was removed
// or, with hard > 0, when t already has hard requests in flight: the caller must
// then pick again from the current set. Incrementing before checking pairs
// with markRemoved storing before reading the count, so either the request sees
// the removal or the remover sees the request.
func (t *target) claim(hard int64) bool {
	if hard > 0 {
		for {
			n := t.inflight.Load()
			if n >= hard {
				return false
			}
			if t.inflight.CompareAndSwap(n, n+1) {
				break
			}
		}
	} else {
		t.inflight.Add(1)
	}
	if t.removed.Load() {
		t.unclaim()
		return false
	}
	return true
}

// release ends a claim, and lets a waiting request (see queue) have the room.
func (t *target) release() {
	t.unclaim()
	if q := t.q; q != nil && q.waiting.Load() > 0 {
		q.pump()
	}
}

// unclaim ends a claim without looking at the queue.
func (t *target) unclaim() {
	if t.inflight.Add(-1) == 0 && t.removed.Load() {
		t.drainOnce.Do(func() { close(t.drained) })
	}
}

// markRemoved stops new claims; drained is closed once nothing is in flight.
func (t *target) markRemoved() {
	t.removed.Store(true)
	if t.inflight.Load() == 0 {
		t.drainOnce.Do(func() { close(t.drained) })
	}
}

// epoch anchors now, a cheap monotonic clock in nanoseconds.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// eject makes new requests skip t until d from now, and reports whether t
// was not ejected until then (exactly one of concurrent ejections does).
func (t *target) eject(d time.Duration) bool {
	n := now()
	until := t.ejectedUntil.Swap(n + int64(d))
	return until == 0 || n >= until
}

// ejected reports whether new requests skip t (see Options.EjectionTime).
func (t *target) ejected() bool {
	d := t.ejectedUntil.Load()
	return d != 0 && now() < d
}

// entry is a target with its weight in one set.
type entry struct {
	t      *target
	weight int
}

// route is a target of positive weight with its cumulative weight and the
// bounds of its weight class: the routes of the same weight, [lo, hi).
type route struct {
	t      *target
	weight float64
	cum    uint64 // sum of the weights up to and including this one
	lo, hi int32  // the routes of this one's weight class
}

// targetSet is an immutable target set (only seq changes). Requests read it through
// an atomic pointer; SetTargets builds a new one and swaps it in.
type targetSet struct {
	all    []entry // every target, weight 0 included, sorted by address
	routes []route // targets of positive weight, sorted by weight, then address
	total  uint64  // sum of the weights of routes
	cls    []class // the weight classes of routes, in order
	seq    atomic.Uint64
}

// class is a run of routes of one weight: routes[lo:hi].
type class struct {
	start, end uint64 // the cumulative weights before and after it
	weight     uint64
	lo         int32
}

var emptySet = &targetSet{}

func newTargetSet(old *targetSet, targets map[string]int, q *queue) *targetSet {
	s := &targetSet{all: make([]entry, 0, len(targets))}
	var byAddr map[string]*target
	if len(old.all) > 16 {
		byAddr = make(map[string]*target, len(old.all))
		for _, e := range old.all {
			byAddr[e.t.addr] = e.t
		}
	}
	for addr, w := range targets {
		var t *target
		if byAddr != nil {
			t = byAddr[addr]
		} else {
			for _, e := range old.all {
				if e.t.addr == addr {
					t = e.t
					break
				}
			}
		}
		if t == nil {
			t = newTarget(addr, q)
		}
		s.all = append(s.all, entry{t: t, weight: w})
	}
	slices.SortFunc(s.all, func(a, b entry) int { return strings.Compare(a.t.addr, b.t.addr) })
	for _, e := range s.all {
		if e.weight > 0 {
			s.routes = append(s.routes, route{t: e.t, weight: float64(e.weight)})
		}
	}
	slices.SortStableFunc(s.routes, func(a, b route) int { return cmp.Compare(a.weight, b.weight) })
	for i := range s.routes {
		r := &s.routes[i]
		s.total += uint64(r.weight)
		r.cum = s.total
		if i > 0 && s.routes[i-1].weight == r.weight {
			r.lo = s.routes[i-1].lo
		} else {
			r.lo = int32(i)
		}
	}
	for i := len(s.routes) - 1; i >= 0; i-- {
		if i+1 < len(s.routes) && s.routes[i+1].weight == s.routes[i].weight {
			s.routes[i].hi = s.routes[i+1].hi
		} else {
			s.routes[i].hi = int32(i + 1)
		}
	}
	for i := 0; i < len(s.routes); {
		r := &s.routes[i]
		s.cls = append(s.cls, class{start: r.cum - uint64(r.weight), end: s.routes[r.hi-1].cum, weight: uint64(r.weight), lo: r.lo})
		i = int(r.hi)
	}
	return s
}
