package deploytest

import (
	"context"
	"sync"
	"time"

	"github.com/cutover/deploy"
)

// Clock is a fake deploy.Clock for tests: its time stands still until
// Advance or Drive moves it, so that a deploy with a 5-minute wait timeout
// and 1-minute canary steps runs in milliseconds. Set it as Deployer.Clock
// (and Monitor.Clock, retry.Options.Clock). Health checks still talk to
// real machines over real sockets; only the waits between them are fake.
//
// Timers that are due fire in deadline order (creation order for equal
// deadlines). An AfterFunc's func runs in the goroutine that advances the
// clock, before Advance returns (for a duration <= 0, in the goroutine that
// creates or resets the timer), so what it does (a deadline's cancellation,
// a Monitor round, a lock renewal) is done when Advance returns.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	pending []*fakeTimer  // armed timers, in no order
	fired   int           // channel timers that fired and were neither stopped nor reset since
	changed chan struct{} // closed and replaced at every change of the above
}

var _ deploy.Clock = (*Clock)(nil)

// NewClock returns a fake clock whose time is start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock has advanced by d.
func (c *Clock) NewTimer(d time.Duration) deploy.Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc returns a timer that calls f once the clock has advanced by d.
func (c *Clock) AfterFunc(d time.Duration, f func()) deploy.Timer {
	t := &fakeTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing the timers that fall due on
// the way, each at its own deadline.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	to := c.now.Add(d)
	c.mu.Unlock()
	c.advanceTo(to)
}

func (c *Clock) advanceTo(to time.Time) {
	for {
		c.mu.Lock()
		t := c.nextLocked()
		if t == nil || t.at.After(to) {
			if to.After(c.now) {
				c.now = to
			}
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		if t.at.After(c.now) {
			c.now = t.at
		}
		if f := t.fireLocked(); f != nil {
			c.mu.Unlock()
			f()
			continue
		}
		c.mu.Unlock()
	}
}

// Pending returns the number of timers armed and not yet fired.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// WaitPending waits until at least n timers are armed (say, a Monitor's Run
// has armed its first round), or ctx ends.
func (c *Clock) WaitPending(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		ok, changed := len(c.pending) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Drive calls fn (a deploy, say) in a goroutine and, until it returns, moves
// the clock to the next deadline each time fn waits for time; it returns
// fn's error. fn waits for time when a timer of NewTimer is armed (a health
// interval, a canary step) and none has fired that its owner has not yet
// stopped or reset (which it does when the work the timer started is done):
// a deadline or a background AfterFunc alone (a lock renewal) never moves
// the clock while fn does real work, such as starting a machine. When ctx
// ends, Drive stops moving the clock and waits for fn, which has ctx too.
//
// The waits cost nothing; the real work between them does: a canary that
// checks every 250ms runs 240 rounds of real health checks per minute of
// the clock. A test that wants speed widens the intervals (canary
// Analysis.Interval, a health check's Interval).
func (c *Clock) Drive(ctx context.Context, fn func(ctx context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	for {
		c.mu.Lock()
		changed := c.changed
		var next *fakeTimer
		if c.fired == 0 && c.waitingLocked() {
			next = c.nextLocked()
		}
		c.mu.Unlock()
		select {
		case err := <-errc:
			return err
		default:
		}
		if next != nil {
			c.advanceTo(next.at)
			continue
		}
		select {
		case err := <-errc:
			return err
		case <-changed:
		case <-ctx.Done():
			return <-errc
		}
	}
}

// waitingLocked reports whether a channel timer is armed: its owner waits for it.
func (c *Clock) waitingLocked() bool {
	for _, t := range c.pending {
		if t.ch != nil {
			return true
		}
	}
	return false
}

// nextLocked returns the armed timer due first, or nil.
func (c *Clock) nextLocked() *fakeTimer {
	var next *fakeTimer
	for _, t := range c.pending {
		if next == nil || t.at.Before(next.at) || t.at.Equal(next.at) && t.seq < next.seq {
			next = t
		}
	}
	return next
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// fakeTimer is a Clock's timer: ch for NewTimer, f for AfterFunc.
type fakeTimer struct {
	c  *Clock
	ch chan time.Time
	f  func()

	// guarded by c.mu
	at    time.Time
	seq   uint64
	armed bool
	fired bool // a channel timer fired and was neither stopped nor reset since
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// Stop disarms the timer and reports whether it was armed.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.disarmLocked()
	t.c.notifyLocked()
	return was
}

// Reset arms the timer to fire d from the clock's now and reports whether
// it was armed. With d <= 0 it fires at once.
func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	was := t.disarmLocked()
	c.seq++
	t.at, t.seq, t.armed = c.now.Add(d), c.seq, true
	c.pending = append(c.pending, t)
	var f func()
	if d <= 0 {
		f = t.fireLocked()
	}
	c.notifyLocked()
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return was
}

// disarmLocked takes the timer out of the pending ones, acknowledges a fire
// and drains a time not received, as Go's timers do since Go 1.23.
func (t *fakeTimer) disarmLocked() bool {
	c := t.c
	was := t.armed
	if t.armed {
		for i, p := range c.pending {
			if p == t {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				break
			}
		}
		t.armed = false
	}
	if t.fired {
		t.fired = false
		c.fired--
	}
	if t.ch != nil {
		select {
		case <-t.ch:
		default:
		}
	}
	return was
}

// fireLocked fires the armed timer: it sends the time on its channel, or
// returns its func for the caller to run once c.mu is released.
func (t *fakeTimer) fireLocked() func() {
	c := t.c
	t.disarmLocked()
	c.notifyLocked()
	if t.ch == nil {
		return t.f
	}
	t.ch <- c.now // never blocks: drained when disarmed
	t.fired = true
	c.fired++
	return nil
}
