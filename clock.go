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
// Waits in a flow (a health interval, a canary step) use NewTimer and Stop or
// Reset the timer once it has fired; deadlines (WithTimeout) and periodic work
// in the background (lock renewal, Monitor rounds) use AfterFunc. A fake clock
// can tell from this when a flow waits for time rather than for real work.
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
// to real network I/O, which reads Deadline to bound a dial or a read.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if c == nil {
		return context.WithTimeout(ctx, d)
	}
	if _, ok := c.(RealClock); ok {
		return context.WithTimeout(ctx, d)
	}
	inner, cancelInner := context.WithCancelCause(ctx)
	cc := &clockCtx{Context: inner, done: make(chan struct{})}
	t := c.AfterFunc(d, func() {
		cc.mu.Lock()
		cc.expired = true
		cc.mu.Unlock()
		cancelInner(context.DeadlineExceeded)
	})
	stop := context.AfterFunc(inner, func() {
		cc.mu.Lock()
		cc.err = context.DeadlineExceeded
		if !cc.expired {
			cc.err = inner.Err()
		}
		cc.mu.Unlock()
		close(cc.done)
	})
	return cc, func() {
		t.Stop()
		cancelInner(context.Canceled)
		if !stop() { // the close of done runs, or ran: wait for it
			<-cc.done
		}
	}
}

// clockCtx is a context whose deadline is on a Clock. Its Done channel is
// its own, so that contexts derived from it take their Err from it
// (context.DeadlineExceeded once expired), and their Cause from the inner
// context, which the deadline cancels with context.DeadlineExceeded.
type clockCtx struct {
	context.Context // inner, cancelled by the deadline or by cancel
	done            chan struct{}

	mu      sync.Mutex
	expired bool  // the deadline passed
	err     error // set before done is closed
}

func (c *clockCtx) Done() <-chan struct{} { return c.done }

func (c *clockCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}
