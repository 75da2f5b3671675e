package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Health check defaults used by WaitHealthy when the checker has no Policy.
const (
	DefaultHealthInterval = time.Second
	DefaultWaitTimeout    = 5 * time.Minute // per machine, as fly's wait_timeout
)

// WaitHealthy polls hc until m passes the policy's threshold of consecutive checks,
// the machine exits (ErrExited, at once, not at the timeout) or ctx ends (ErrUnhealthy
// with the last check's error). A nil hc uses DialCheck.
func WaitHealthy(ctx context.Context, m Machine, hc HealthChecker) error {
	if hc == nil {
		hc = DialCheck{}
	}
	pol := PolicyOf(hc)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := make(chan ExitStatus, 1)
	go func() {
		st, err := m.Wait(wctx)
		if err == nil {
			exited <- st
		}
	}()

	timer := time.NewTimer(pol.GracePeriod)
	defer timer.Stop()
	var lastErr error
	passes := 0
	for {
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("no check ran")
			}
			return fmt.Errorf("%w: %w (last check: %v)", ErrUnhealthy, ctx.Err(), lastErr)
		case st := <-exited:
			return fmt.Errorf("%w while waiting for health: %s", ErrExited, st)
		case <-timer.C:
		}
		if err := hc.Check(ctx, m); err != nil {
			passes = 0
			if lastErr == nil || ctx.Err() == nil { // keep the last real failure, not the cut-off check
				lastErr = err
			}
		} else if passes++; passes >= pol.Threshold {
			return nil
		}
		timer.Reset(pol.Interval)
	}
}

// PolicyOf returns hc's HealthPolicy with defaults filled in.
func PolicyOf(hc HealthChecker) HealthPolicy {
	var pol HealthPolicy
	if p, ok := hc.(PolicyProvider); ok {
		pol = p.Policy()
	}
	if pol.Interval <= 0 {
		pol.Interval = DefaultHealthInterval
	}
	if pol.Threshold <= 0 {
		pol.Threshold = 1
	}
	if pol.GracePeriod < 0 {
		pol.GracePeriod = 0
	}
	return pol
}

// DialCheck is the health check used when none is configured: the machine's
// address accepts a TCP connection. Its interval is 100ms.
type DialCheck struct{}

// Check dials m's address.
func (DialCheck) Check(ctx context.Context, m Machine) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", m.Addr())
	if err != nil {
		return err
	}
	return c.Close()
}

// Policy polls every 100ms.
func (DialCheck) Policy() HealthPolicy { return HealthPolicy{Interval: 100 * time.Millisecond} }
