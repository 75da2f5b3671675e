package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the Concurrency fields that are zero while HardLimit is set.
const (
	// DefaultQueueTimeout is how long a request waits for a target under its
	// hard limit before it is answered 503.
	DefaultQueueTimeout = 5 * time.Second
	// DefaultQueueLength is how many requests may wait at once.
	DefaultQueueLength = 1024
)

// ErrInvalidConcurrency is returned (wrapped) by Concurrency.Validate and
// SetConcurrency for limits that make no sense. Match it with errors.Is.
var ErrInvalidConcurrency = errors.New("proxy: invalid concurrency limits")

// errOverloaded is the transport-level error for a request that found every
// target at its hard limit and could not wait (the queue was full) or waited
// too long; it becomes a 503 with Retry-After.
var errOverloaded = errors.New("every target is at its hard limit")

// Concurrency limits how many requests each target has in flight, like the
// concurrency section of a fly.toml service. The same limits apply to every
// target of the set. The zero value means no limits (and no queue).
type Concurrency struct {
	// Type says what the limits count, as in fly.toml: "requests" or
	// "connections"; empty means "requests". The proxy holds one upstream
	// connection per request in flight (an upgraded connection counts until it
	// closes), so both count the same thing here: requests in flight to the
	// target, the proxy's own.
	Type string

	// SoftLimit, when positive, is the number of requests in flight at which a
	// target stops getting new work while another target has fewer than
	// SoftLimit in flight. Zero means no soft limit. A sticky request (see
	// Options.StickyHeader) goes to its target over the soft limit too.
	SoftLimit int

	// HardLimit, when positive, is the most requests a target ever has in
	// flight. A request that finds every target at it waits, in a queue served
	// in arrival order, for one to finish. A sticky request whose target is at
	// it goes to another target. Zero means no hard limit.
	HardLimit int

	// QueueTimeout is how long a request waits in the queue; then it is
	// answered 503 with "Retry-After: 1". Zero means DefaultQueueTimeout (5s);
	// a negative value means requests do not wait.
	QueueTimeout time.Duration

	// QueueLength is how many requests may wait at once; one more is answered
	// 503 with "Retry-After: 1" at once. Zero means DefaultQueueLength (1024);
	// a negative value means requests do not wait.
	QueueLength int
}

// Validate reports limits that make no sense: a Type other than "",
// "requests" and "connections", a negative limit, or a soft limit above the
// hard limit. The error wraps ErrInvalidConcurrency.
func (c Concurrency) Validate() error {
	switch {
	case c.Type != "" && c.Type != "requests" && c.Type != "connections":
		return fmt.Errorf("%w: type %q (want requests or connections)", ErrInvalidConcurrency, c.Type)
	case c.SoftLimit < 0 || c.HardLimit < 0:
		return fmt.Errorf("%w: negative limit (soft %d, hard %d)", ErrInvalidConcurrency, c.SoftLimit, c.HardLimit)
	case c.HardLimit > 0 && c.SoftLimit > c.HardLimit:
		return fmt.Errorf("%w: soft limit %d above hard limit %d", ErrInvalidConcurrency, c.SoftLimit, c.HardLimit)
	}
	return nil
}

// limits are Concurrency resolved for the request path.
type limits struct {
	soft, hard int64 // 0: none
	timeout    time.Duration
	length     int // 0: no queue
	c          Concurrency
}

// resolve turns c into limits, with defaults and, for invalid values, the
// nearest valid ones (a negative limit is none; a soft limit above the hard
// limit is the hard limit).
func (c Concurrency) resolve() *limits {
	l := &limits{soft: int64(max(c.SoftLimit, 0)), hard: int64(max(c.HardLimit, 0)), c: c}
	if l.hard > 0 && l.soft > l.hard {
		l.soft = l.hard
	}
	if l.hard > 0 {
		l.timeout = c.QueueTimeout
		if l.timeout == 0 {
			l.timeout = DefaultQueueTimeout
		}
		l.length = c.QueueLength
		if l.length == 0 {
			l.length = DefaultQueueLength
		}
		if l.timeout < 0 || l.length < 0 {
			l.length = 0
		}
	}
	return l
}

// SetConcurrency replaces the concurrency limits (initially Options.Concurrency)
// for the requests that start from now on; requests waiting in the queue are
// served as the new limits allow. Invalid limits return an error wrapping
// ErrInvalidConcurrency and change nothing.
func (p *Proxy) SetConcurrency(c Concurrency) error {
	if err := c.Validate(); err != nil {
		return err
	}
	p.limits.Store(c.resolve())
	p.queue.pump()
	return nil
}

// Concurrency returns the concurrency limits in force, as set.
func (p *Proxy) Concurrency() Concurrency { return p.limits.Load().c }

// QueueStats are the statistics of the queue of requests that found every
// target at its hard limit.
type QueueStats struct {
	// Waiting is the number of requests waiting now (a gauge).
	Waiting int64
	// Queued counts the requests that entered the queue.
	Queued uint64
	// Shed counts the requests answered 503 for want of a target under its
	// hard limit: the queue was full, or their wait ran out.
	Shed uint64
}

// QueueStats returns a snapshot of the queue's statistics since New. The
// requests each target served after waiting are in TargetStats.Queued.
func (p *Proxy) QueueStats() QueueStats {
	q := &p.queue
	return QueueStats{Waiting: q.waiting.Load(), Queued: q.queued.Load(), Shed: q.shed.Load()}
}

// queue holds the requests that wait for a target under its hard limit, in
// arrival order. A request that arrives while others wait joins the queue
// too, so none is overtaken. The queue is pumped (its head given targets while
// any can be claimed) whenever room may have appeared: a claim released while
// requests wait, a new target set, new limits, a new waiter.
type queue struct {
	p       *Proxy
	waiting atomic.Int64 // live waiters; read without the lock on every release
	queued  atomic.Uint64
	shed    atomic.Uint64

	mu   sync.Mutex
	list []*waiter // list[head:] waits, including those gone
	head int
}

// waiter is one waiting request.
type waiter struct {
	key   string
	tried []*target
	ch    chan *target // receives its claimed target, or nil: no target left at all
	done  bool         // a target (or nil) was sent; under queue.mu
	gone  bool         // it stopped waiting; under queue.mu
}

// wait queues a request until it can claim a target (returned), its wait runs
// out (errOverloaded), or ctx ends (ctx's error).
func (q *queue) wait(ctx context.Context, key string, tried []*target, lim *limits) (*target, error) {
	return q.waitFor(ctx, key, tried, lim.timeout, lim.length, errOverloaded)
}

// waitFor is wait with its bounds given: at most timeout in the queue, which
// it joins only while fewer than length wait; full is the error for a request
// that cannot wait or waited too long.
func (q *queue) waitFor(ctx context.Context, key string, tried []*target, timeout time.Duration, length int, full error) (*target, error) {
	q.mu.Lock()
	if int(q.waiting.Load()) >= length {
		q.mu.Unlock()
		q.shed.Add(1)
		return nil, full // shed before anything is allocated for it
	}
	w := &waiter{key: key, tried: slices.Clone(tried), ch: make(chan *target, 1)}
	q.list = append(q.list, w)
	q.waiting.Add(1)
	q.queued.Add(1)
	q.mu.Unlock()
	q.pump()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t := <-w.ch:
		return q.got(t)
	case <-timer.C:
	case <-ctx.Done():
	}
	q.mu.Lock()
	if !w.done {
		w.gone = true
		q.waiting.Add(-1)
		q.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.shed.Add(1)
		return nil, full
	}
	q.mu.Unlock()
	t := <-w.ch // sent as the wait ended
	if err := ctx.Err(); err != nil && t != nil {
		t.release()
		return nil, err
	}
	return q.got(t)
}

func (q *queue) got(t *target) (*target, error) {
	if t == nil {
		return nil, errNoTargets
	}
	t.stats.queued.Add(1)
	return t, nil
}

// pump gives the waiters at the head of the queue the targets that can be
// claimed now, in arrival order, and stops at the first that gets none.
func (q *queue) pump() {
	if q.waiting.Load() == 0 {
		return
	}
	p := q.p
	if p.pause.Load() != nil {
		return // Resume pumps
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.list) {
		w := q.list[q.head]
		if !w.gone {
			t, full := p.tryClaim(w.key, w.tried, p.limits.Load())
			if t == nil && full {
				break
			}
			w.done = true
			q.waiting.Add(-1)
			w.ch <- t
		}
		q.list[q.head] = nil
		q.head++
	}
	if q.head == len(q.list) {
		q.list, q.head = q.list[:0], 0
	} else if q.head > 64 && q.head > len(q.list)/2 {
		n := copy(q.list, q.list[q.head:])
		clear(q.list[n:])
		q.list, q.head = q.list[:n], 0
	}
}
