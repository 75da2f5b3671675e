package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Changing the target set: SetTargets swaps it in, then waits for the
// removed targets to drain.

// SetTargets replaces the target set: address ("host:port") to weight. A target
// with weight 0 stays in the set (it finishes its in-flight requests and keeps its
// statistics) but receives no new request. Targets present in both the old and the
// new set keep their counters and statistics.
//
// The new set takes effect before SetTargets waits: it then returns once every
// removed target has no request in flight, or when DrainTimeout has passed (that is
// logged, not an error: the caller may stop the machine), or with ctx's error when
// ctx ends first. Calls are serialized. Invalid input returns an error wrapping
// ErrInvalidTarget and changes nothing.
func (p *Proxy) SetTargets(ctx context.Context, targets map[string]int) error {
	for addr, w := range targets {
		if err := validTarget(addr, w); err != nil {
			return err
		}
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()

	old := p.set.Load()
	next := newTargetSet(old, targets, &p.queue)
	for _, e := range next.all {
		e.t.pool.init(p.opts.MaxConnsPerTarget)
	}
	p.adoptStats(next)
	p.set.Store(next)
	p.queue.pump() // requests waiting for room may find it in the new set
	p.logChanges(old, next)

	var removed []*target
	for _, e := range old.all {
		if _, ok := targets[e.t.addr]; !ok {
			e.t.markRemoved()
			e.t.pool.closeIdle(true) // connections in use are closed when put back
			removed = append(removed, e.t)
			if p.log.IsInfo() {
				p.log.Info("target removed; draining", "target", e.t.addr, "in_flight", e.t.inflight.Load())
			}
		}
	}
	p.keepStats(removed)
	if len(removed) == 0 {
		return nil
	}
	// Once drained (or given up on), no idle connection may hold up the
	// target's graceful shutdown: an HTTP server waits for a connection that
	// never carried a request as for a busy one.
	defer p.closeFallbackIdle()
	if p.opts.DrainTimeout < 0 {
		return nil
	}
	timer := time.NewTimer(p.opts.DrainTimeout)
	defer timer.Stop()
	for _, t := range removed {
		select {
		case <-t.drained:
			if p.log.IsDebug() {
				p.log.Debug("target drained", "target", t.addr)
			}
		case <-timer.C:
			for _, t := range removed {
				if n := t.inflight.Load(); n > 0 {
					p.log.Warn("drain timeout passed; target still busy", "target", t.addr, "in_flight", n, "timeout", p.opts.DrainTimeout)
				}
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("proxy: waiting for %s to drain: %w", t.addr, ctx.Err())
		}
	}
	return nil
}

// logChanges logs the targets added to the set and the weights changed
// (removals are logged with their drain). Both sets are sorted by address.
func (p *Proxy) logChanges(old, next *targetSet) {
	if !p.log.IsInfo() { // the arguments would allocate even for a null logger
		return
	}
	debug, i := p.log.IsDebug(), 0
	for _, e := range next.all {
		for i < len(old.all) && old.all[i].t.addr < e.t.addr {
			i++
		}
		switch {
		case i == len(old.all) || old.all[i].t != e.t:
			p.log.Info("target added", "target", e.t.addr, "weight", e.weight)
		case debug && old.all[i].weight != e.weight:
			p.log.Debug("target weight changed", "target", e.t.addr, "weight", e.weight, "was", old.all[i].weight)
		}
	}
}

func validTarget(addr string, weight int) error {
	if weight < 0 {
		return fmt.Errorf("%w: %q has negative weight %d", ErrInvalidTarget, addr, weight)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidTarget, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInvalidTarget, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%w: %q has an invalid port", ErrInvalidTarget, addr)
	}
	return nil
}

// Targets returns a copy of the current target set: address to weight.
func (p *Proxy) Targets() map[string]int {
	s := p.set.Load()
	m := make(map[string]int, len(s.all))
	for _, e := range s.all {
		m[e.t.addr] = e.weight
	}
	return m
}

// closeFallbackIdle closes the idle connections of the proxy's own fallback
// transport (a user's Transport is left alone). Its pool is not per target, so
// other targets' idle connections go too; they are dialled again as needed.
func (p *Proxy) closeFallbackIdle() {
	if p.opts.Transport != nil {
		return
	}
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
