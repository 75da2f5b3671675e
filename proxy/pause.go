package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPauseTimeout is how long a request is held during a pause when
// Pause is given a zero timeout.
const DefaultPauseTimeout = 30 * time.Second

// errPaused is the transport-level error for a request held by a pause for
// longer than the pause's timeout; it becomes a 503 with Retry-After.
var errPaused = errors.New("paused")

// pause is the state of a paused Proxy.
type pause struct {
	timeout time.Duration // < 0: answer 503 at once
	since   time.Time
}

// Pause holds the requests that start from now on, in the queue that
// Concurrency's hard limit uses (served in arrival order), until Resume; the
// requests already sent to a target go on, and so do their retries. A held
// request waits at most timeout: then it is answered 503 with
// "Retry-After: 1". Zero means DefaultPauseTimeout (30s); a negative timeout
// answers every new request 503 at once (a maintenance mode). At most
// Concurrency.QueueLength requests (DefaultQueueLength when that is not
// positive) are held at once; more are answered 503 at once.
//
// Pause returns once no request is in flight to any target, so that the
// caller (a database migration, say) sees no traffic, or with ctx's error
// when ctx ends first; the proxy stays paused in both cases. Pausing a
// paused proxy changes the timeout for the requests that arrive from then on.
// Requests that were already waiting for a target under its hard limit when
// the pause began stay in the queue with their own Concurrency.QueueTimeout.
func (p *Proxy) Pause(ctx context.Context, timeout time.Duration) error {
	if timeout == 0 {
		timeout = DefaultPauseTimeout
	}
	p.pause.Store(&pause{timeout: timeout, since: time.Now()})
	p.log.Info("paused", "timeout", timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := p.inFlight()
		if n == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("proxy: paused, but %d requests are still in flight: %w", n, ctx.Err())
		}
	}
}

// Resume ends a pause: the held requests go to their targets, in arrival
// order, and new requests are no longer held. Resuming a proxy that is not
// paused does nothing.
func (p *Proxy) Resume() {
	if p.pause.Swap(nil) != nil {
		p.log.Info("resumed")
		p.queue.pump()
	}
}

// Paused reports whether the proxy is paused, and since when.
func (p *Proxy) Paused() (bool, time.Time) {
	ps := p.pause.Load()
	if ps == nil {
		return false, time.Time{}
	}
	return true, ps.since
}

// inFlight returns the requests in flight to the targets of the current set
// and to removed targets still draining.
func (p *Proxy) inFlight() int64 {
	var n int64
	cur := map[*target]bool{}
	for _, e := range p.set.Load().all {
		n += e.t.inflight.Load()
		cur[e.t] = true
	}
	p.statsMu.Lock()
	for _, t := range p.removed {
		if !cur[t] { // a target removed and added again is counted once
			n += t.inflight.Load()
		}
	}
	p.statsMu.Unlock()
	return n
}

// hold makes a new request wait out a pause (see Pause).
func (p *Proxy) hold(ctx context.Context, key string, ps *pause, lim *limits) (*target, error) {
	if ps.timeout < 0 {
		p.queue.shed.Add(1)
		return nil, errPaused
	}
	length := lim.length
	if length <= 0 {
		length = DefaultQueueLength
	}
	return p.queue.waitFor(ctx, key, nil, ps.timeout, length, errPaused)
}
