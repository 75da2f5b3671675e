package deploy

import (
	"context"
	"sync"
	"time"
)

// Clock is where the library reads time: every wait of a deploy (health
// grace periods and intervals, wait and deploy timeouts, canary steps and
// their analysis, pauses of other strategies), a Monitor's rounds, the deploy
// lock's renewal and backend retries. A nil Clock means real time (RealClock);
// deploytest.Clock is a fake one for tests.
//
// Waits in a flow (a health interval, a canary step) use NewTimer, and Stop
// or Reset a timer that fired only once the work it started is done;
// deadlines (WithTimeout) and periodic work in the background (lock renewal,
// Monitor rounds) use AfterFunc. A fake clock (deploytest.Clock.Drive) tells
// from this when a flow waits for time rather than for real work, so a custom
// strategy that waits should do the same.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer whose channel receives the time once d has passed.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine once d has passed (a fake clock
	// may call it from the goroutine that advances it). Its Timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a Clock's timer, with the methods of a *time.Timer (Go 1.23
// semantics: after Stop or Reset no stale time is received).
type Timer interface {
	// C is the channel the time is sent on; nil for a timer of AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether it was active.
	Reset(d time.Duration) bool
}

// RealClock is the Clock of real time, built on package time.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc returns time.AfterFunc(d, f).
func (RealClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// clockOr returns c, or RealClock when c is nil.
func clockOr(c Clock) Clock {
	if c == nil {
		return RealClock{}
	}
	return c
}

// WithTimeout is context.WithTimeout on clock c (nil: real time): the
// returned context ends with context.DeadlineExceeded (its Err and its Cause)
// once c has passed d, or when ctx ends, or when cancel is called.
//
// On another clock than real time the context reports no deadline of its own
// (Deadline returns ctx's): a deadline in a fake clock's time means nothing
// to real network I/O, which reads Deadline to bound a dial or a read. When
// the clock passes the deadline, the context and the contexts derived from
// it are done before the clock's AfterFunc returns, so that a fake clock
// that fires the deadline knows the waits it ends have seen it.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := clockOr(c).(RealClock); ok {
		return context.WithTimeout(ctx, d)
	}
	inner, cancelInner := context.WithCancelCause(ctx)
	cc := &clockCtx{Context: inner, done: make(chan struct{})}
	// Cancelled from above: by an enclosing clockCtx at once, by another context soon.
	stopAbove := func() bool { return false }
	if p, ok := ctx.Value(clockCtxKey{}).(*clockCtx); ok {
		stopAbove = p.AfterFunc(func() {
			if inner.Err() == nil {
				cancelInner(context.Cause(p))
				cc.close(p.Err())
				return
			}
			cc.close(inner.Err())
		})
	}
	stopInner := context.AfterFunc(inner, func() { cc.close(inner.Err()) })
	t := c.AfterFunc(d, func() {
		cc.mu.Lock()
		cc.expired = true // whichever closes cc first
		cc.mu.Unlock()
		cancelInner(context.DeadlineExceeded) // the cause, for the contexts derived from cc
		cc.close(context.DeadlineExceeded)
	})
	return cc, func() {
		t.Stop()
		stopAbove()
		stopInner()
		cancelInner(context.Canceled)
		cc.close(inner.Err())
	}
}

// clockCtxKey finds the nearest enclosing clockCtx.
type clockCtxKey struct{}

// clockCtx is a context whose deadline is on a Clock. The inner context
// gives it its values and its cause (context.Cause finds the inner one);
// its Done channel is its own, and its AfterFunc method runs the funcs the
// context package registers for derived contexts as soon as it closes, in
// the goroutine that closes it, so that a deadline reaches every derived
// context before the clock's AfterFunc returns.
type clockCtx struct {
	context.Context // inner, cancelled with the cause
	done            chan struct{}

	mu      sync.Mutex
	err     error // set when done is closed
	closed  bool
	expired bool // the deadline passed: err is context.DeadlineExceeded
	seq     int
	funcs   map[int]func() // run once done is closed
}

func (c *clockCtx) Done() <-chan struct{} { return c.done }

func (c *clockCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *clockCtx) Value(key any) any {
	if key == (clockCtxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// close ends c with err, once, and runs the funcs registered, in order.
func (c *clockCtx) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	switch {
	case c.expired:
		err = context.DeadlineExceeded
	case err == nil:
		err = context.Canceled
	}
	c.closed, c.err = true, err
	close(c.done)
	funcs := c.funcs
	c.funcs = nil
	n := c.seq
	c.mu.Unlock()
	for i := 1; i <= n; i++ {
		if f := funcs[i]; f != nil {
			f()
		}
	}
}

// AfterFunc arranges for f to run once c is done, and returns a func that
// prevents it (reporting whether it did). The context package calls it for
// the contexts derived from c.
func (c *clockCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		go f() // as context.AfterFunc does; the caller may hold a lock f takes
		return func() bool { return false }
	}
	if c.funcs == nil {
		c.funcs = map[int]func(){}
	}
	c.seq++
	id := c.seq
	c.funcs[id] = f
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.funcs[id]
		delete(c.funcs, id)
		return ok
	}
}
