// Package health provides HTTP and TCP health checks for machines.
//
// Checks implement deploy.HealthChecker and deploy.PolicyProvider: each carries
// its grace period, interval and threshold, which deploy.WaitHealthy (and so
// every strategy) uses to decide when a new machine may take traffic. They
// are deploy.Validators too, so a deploy with a bad setting fails at once.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/deploy"
)

// Defaults for zero fields. The timeout and the interval are the root
// package's, so that a check has the same timing whichever package it is from.
const (
	DefaultTimeout  = deploy.DefaultCheckTimeout   // 2s
	DefaultInterval = deploy.DefaultHealthInterval // 1s
	DefaultPath     = "/"
)

// HTTP checks that a request to the machine answers with the expected status.
// Its zero value checks GET / for 200 every second with a 2s timeout.
type HTTP struct {
	Method  string      // default GET
	Path    string      // default "/"
	Headers http.Header // sent with each check; a "Host" entry sets the Host header
	Status  int         // expected status; default 200
	Scheme  string      // "http" (default) or "https"
	// Port is the machine's port to check: 0 (or the spec's Port) checks its
	// address; another port must be published (MachineSpec.Ports, see deploy.AddrOf).
	Port int

	Timeout     time.Duration // per check; default 2s
	Interval    time.Duration // between checks; default 1s
	GracePeriod time.Duration // before the first check; default 0
	Threshold   int           // consecutive passes to count as healthy; default 1

	// TLSSkipVerify makes an https check accept any certificate (fly's
	// tls_skip_verify). It applies to the default client, not to Client.
	TLSSkipVerify bool

	// Client sends the checks. nil: a client without keep-alives (checks leave
	// no idle connections) that does not follow redirects.
	Client *http.Client
}

var (
	defaultClient  = newClient(nil)
	insecureClient = newClient(&tls.Config{InsecureSkipVerify: true}) // for TLSSkipVerify
)

func newClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Check sends one request to m's address (or the address of Port).
func (h HTTP) Check(ctx context.Context, m deploy.Machine) error {
	addr, err := deploy.AddrOf(m, h.Port)
	if err != nil {
		return err
	}
	if addr == "" {
		return errors.New("machine has no address yet")
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(h.Timeout, DefaultTimeout))
	defer cancel()
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	scheme := h.Scheme
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if path == "" {
		path = DefaultPath
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	for k, vs := range h.Headers {
		for _, v := range vs {
			if http.CanonicalHeaderKey(k) == "Host" {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
	}
	client := h.Client
	switch {
	case client != nil:
	case h.TLSSkipVerify:
		client = insecureClient
	default:
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http check %s %s: %w", method, path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	want := h.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("http check %s %s: status %d, want %d", method, path, resp.StatusCode, want)
	}
	return nil
}

var (
	_ deploy.Validator = HTTP{}
	_ deploy.Validator = TCP{}
	_ deploy.Validator = All{}
)

// Validate reports settings the check cannot run with (a scheme other than
// http or https, a status outside 100..599, a port out of range, a negative
// duration or threshold), with an error wrapping deploy.ErrInvalid;
// deploy.Deployer.Deploy calls it before it takes the app's lock.
func (h HTTP) Validate() error {
	switch {
	case h.Scheme != "" && h.Scheme != "http" && h.Scheme != "https":
		return invalid("http", "Scheme", h.Scheme, `"http" or "https"`)
	case h.Status != 0 && (h.Status < 100 || h.Status > 599):
		return invalid("http", "Status", h.Status, "0 (200) or 100..599")
	}
	return timing("http", h.Port, h.Timeout, h.Interval, h.GracePeriod, h.Threshold)
}

// invalid is the error of a check's setting field with value v; want says what is valid.
func invalid(check, field string, v any, want string) error {
	return fmt.Errorf("%s check: %w: %s %v: want %s", check, deploy.ErrInvalid, field, v, want)
}

// timing checks the settings HTTP and TCP share.
func timing(check string, port int, timeout, interval, grace time.Duration, threshold int) error {
	switch {
	case port < 0 || port > 65535:
		return invalid(check, "Port", port, "0 (the machine's address) or 1..65535")
	case timeout < 0:
		return invalid(check, "Timeout", timeout, "0 (the default) or more")
	case interval < 0:
		return invalid(check, "Interval", interval, "0 (the default) or more")
	case grace < 0:
		return invalid(check, "GracePeriod", grace, "0 or more")
	case threshold < 0:
		return invalid(check, "Threshold", threshold, "0 (1) or more")
	}
	return nil
}

// Policy returns the check's timing.
func (h HTTP) Policy() deploy.HealthPolicy {
	return deploy.HealthPolicy{GracePeriod: h.GracePeriod, Interval: orDefault(h.Interval, DefaultInterval), Threshold: h.Threshold}
}

// TCP checks that the machine's address accepts a connection and keeps it
// open: a connection that the peer closes or resets within Hold fails, as a
// port forwarder does while no app listens behind it (Docker's published
// ports accept as soon as the container starts). It is deploy.DialCheck with
// a policy of its own.
type TCP struct {
	Port        int           // as HTTP.Port: 0 checks the machine's address
	Timeout     time.Duration // per check; default 2s
	Hold        time.Duration // how long the peer must keep the connection open; default deploy.DefaultDialHold (200ms)
	Interval    time.Duration // default 1s
	GracePeriod time.Duration // default 0
	Threshold   int           // default 1
}

// Check dials m's address (or the address of Port) and holds the connection open for Hold.
func (t TCP) Check(ctx context.Context, m deploy.Machine) error {
	if err := (deploy.DialCheck{Port: t.Port, Timeout: orDefault(t.Timeout, DefaultTimeout), Hold: t.Hold}).Check(ctx, m); err != nil {
		return fmt.Errorf("tcp check: %w", err)
	}
	return nil
}

// Validate reports settings the check cannot run with (a port out of range,
// a negative duration or threshold), with an error wrapping deploy.ErrInvalid.
func (t TCP) Validate() error {
	if t.Hold < 0 {
		return invalid("tcp", "Hold", t.Hold, "0 (the default) or more")
	}
	return timing("tcp", t.Port, t.Timeout, t.Interval, t.GracePeriod, t.Threshold)
}

// Policy returns the check's timing.
func (t TCP) Policy() deploy.HealthPolicy {
	return deploy.HealthPolicy{GracePeriod: t.GracePeriod, Interval: orDefault(t.Interval, DefaultInterval), Threshold: t.Threshold}
}

// All passes when every check passes. Its policy uses the longest grace
// period, the shortest interval and the highest threshold of its checks.
type All []deploy.HealthChecker

// Check runs every check in order and returns the first failure.
func (a All) Check(ctx context.Context, m deploy.Machine) error {
	for _, c := range a {
		if err := c.Check(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Validate validates every check that is a deploy.Validator, saying which.
func (a All) Validate() error {
	for i, c := range a {
		if v, ok := c.(deploy.Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("check %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// Policy combines the checks' policies.
func (a All) Policy() deploy.HealthPolicy {
	var p deploy.HealthPolicy
	for i, c := range a {
		q := deploy.PolicyOf(c)
		p.GracePeriod = max(p.GracePeriod, q.GracePeriod)
		p.Threshold = max(p.Threshold, q.Threshold)
		if i == 0 || q.Interval < p.Interval {
			p.Interval = q.Interval
		}
	}
	return p
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
