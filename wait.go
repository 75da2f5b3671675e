package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// Health check defaults used by WaitHealthy when the checker has no Policy.
const (
	DefaultHealthInterval = time.Second
	DefaultWaitTimeout    = 5 * time.Minute // per machine, as fly's wait_timeout
)

// Defaults of the readiness checks (DefaultCheck, DialCheck, HTTPReadyCheck).
const (
	// DefaultCheckTimeout bounds one readiness check.
	DefaultCheckTimeout = 2 * time.Second
	// DefaultDialHold is how long DialCheck keeps a connection open to see
	// whether the peer closes it at once.
	DefaultDialHold = 200 * time.Millisecond
	// DefaultCheckInterval is the interval of the readiness checks.
	DefaultCheckInterval = 100 * time.Millisecond
)

// WaitHealthy polls hc until m passes the policy's threshold of consecutive checks,
// the machine exits (ErrExited, at once, not at the timeout) or ctx ends (ErrUnhealthy
// with ctx's error and the last check's error). A nil hc uses DefaultCheck. It
// waits in real time; Rollout.WaitHealthy waits on the deploy's Clock.
func WaitHealthy(ctx context.Context, m Machine, hc HealthChecker) error {
	return waitHealthy(ctx, RealClock{}, m, hc, 0)
}

// waitHealthy is WaitHealthy on clock c, bounded by timeout too (when
// positive); a wait that runs out of it says so.
func waitHealthy(ctx context.Context, c Clock, m Machine, hc HealthChecker, timeout time.Duration) error {
	if hc == nil {
		hc = DefaultCheck{}
	}
	pol := PolicyOf(hc)

	parent := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = WithTimeout(ctx, c, timeout)
		defer cancel()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := make(chan ExitStatus, 1)
	go func() {
		st, err := m.Wait(wctx)
		if err == nil {
			exited <- st
		}
	}()

	timer := c.NewTimer(pol.GracePeriod)
	defer timer.Stop()
	var lastErr error
	passes := 0
	for {
		select {
		case <-ctx.Done():
			last := "no check ran"
			if lastErr != nil {
				last = lastErr.Error()
			}
			if timeout > 0 && parent.Err() == nil {
				return fmt.Errorf("%w: not healthy within the %s wait timeout; last check: %s: %w", ErrUnhealthy, timeout, last, ctx.Err())
			}
			return fmt.Errorf("%w: not healthy when the wait ended (%w); last check: %s", ErrUnhealthy, ctx.Err(), last)
		case st := <-exited:
			return fmt.Errorf("%w while waiting for health: %s", ErrExited, st)
		case <-timer.C():
			if ctx.Err() != nil {
				continue // it ended at the same time: say so, rather than check once more
			}
		}
		// One check is real network I/O, bounded by its own timeout in real time.
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

// DefaultCheck is the health check used when none is configured (Deployer.Health,
// Request.Health and Monitor.Health nil) and the readiness wait of the immediate
// strategy. It passes only once the app itself answers, never because a port
// forwarder in front of it accepted a connection (Docker's published ports
// accept as soon as the container starts, whether or not the app listens):
//
//   - for a machine whose spec's Protocol is "http" or empty, an HTTP request
//     (HTTPReadyCheck): any HTTP response, whatever its status, passes;
//   - for Protocol "tcp", a connection the peer keeps open (DialCheck).
//
// It checks every 100ms, each check bounded by DefaultCheckTimeout.
type DefaultCheck struct{}

// Check runs HTTPReadyCheck or DialCheck, as m's spec's Protocol says.
func (DefaultCheck) Check(ctx context.Context, m Machine) error {
	if m.Spec().Protocol == ProtocolTCP {
		return DialCheck{}.Check(ctx, m)
	}
	return HTTPReadyCheck{}.Check(ctx, m)
}

// Policy polls every 100ms.
func (DefaultCheck) Policy() HealthPolicy { return HealthPolicy{Interval: DefaultCheckInterval} }

// DialCheck passes when the machine's address accepts a TCP connection and keeps
// it open: the connection is held for Hold, and a peer that closes or resets it
// within that time fails the check. That is what a port forwarder does while
// the app behind it does not listen (Docker's published port accepts, fails to
// reach the app, and closes), so a bare dial would say nothing about the app.
// A peer that sends data first (a server banner) passes. Its zero value holds
// for DefaultDialHold, within DefaultCheckTimeout, every 100ms.
type DialCheck struct {
	Port    int           // the port to check (see AddrOf); 0 checks the machine's address
	Timeout time.Duration // per check, the dial included; default DefaultCheckTimeout
	Hold    time.Duration // how long the peer must keep the connection open; default DefaultDialHold
}

// ErrClosedAtOnce is the error of a DialCheck whose connection the peer closed
// or reset at once: most often a port forwarder with no app listening behind it.
var ErrClosedAtOnce = errors.New("connection closed by the peer at once (a port forwarder with no app listening behind it?)")

// Check dials m's address (or Port's) and holds the connection open for Hold.
func (c DialCheck) Check(ctx context.Context, m Machine) error {
	addr, err := AddrOf(m, c.Port)
	if err != nil {
		return err
	}
	if addr == "" {
		return errors.New("machine has no address yet")
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout, DefaultCheckTimeout))
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tcp %s: %w", addr, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(orDefault(c.Hold, DefaultDialHold))
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetReadDeadline(deadline)
	var b [1]byte
	n, err := conn.Read(b[:])
	switch {
	case n > 0: // the app speaks first
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil // still open: the app accepted it
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("tcp %s: %w", addr, ErrClosedAtOnce)
	default:
		return fmt.Errorf("tcp %s: %w", addr, err)
	}
}

// Policy polls every 100ms.
func (DialCheck) Policy() HealthPolicy { return HealthPolicy{Interval: DefaultCheckInterval} }

// HTTPReadyCheck passes when the machine answers an HTTP request, GET /, with
// any response at all (a 404 or a 500 says that the app listens and speaks
// HTTP). A connection closed without a response (a port forwarder with no app
// behind it) fails. Its zero value checks within DefaultCheckTimeout, every 100ms.
type HTTPReadyCheck struct {
	Path    string        // default "/"
	Timeout time.Duration // per check; default DefaultCheckTimeout
}

// readyClient sends HTTPReadyCheck's requests: no keep-alive (no idle
// connection is left to hold up the app's graceful shutdown), no redirects.
var readyClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Check sends one request to m's address.
func (c HTTPReadyCheck) Check(ctx context.Context, m Machine) error {
	addr := m.Addr()
	if addr == "" {
		return errors.New("machine has no address yet")
	}
	path := c.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout, DefaultCheckTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // drop url.Error's repetition of the URL
			err = ue.Err
		}
		// net/http calls an EOF before any response on a new connection "server closed idle connection".
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "server closed idle connection") {
			return fmt.Errorf("GET http://%s%s: %w: %w", addr, path, ErrClosedAtOnce, err)
		}
		return fmt.Errorf("GET http://%s%s: %w", addr, path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return nil
}

// Policy polls every 100ms.
func (HTTPReadyCheck) Policy() HealthPolicy { return HealthPolicy{Interval: DefaultCheckInterval} }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
