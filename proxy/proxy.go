// Package proxy is a traffic-switching HTTP reverse proxy for zero-downtime deploys.
//
// A Proxy is an http.Handler. It sends each request to one of a weighted set of
// upstream addresses ("127.0.0.1:8080" style), over its own pooled HTTP/1.1
// connections or (upgrades, Expect, large or streamed bodies) through
// net/http/httputil.ReverseProxy, and the set can be replaced at any time with
// SetTargets while requests flow:
//
//   - the set is swapped atomically; requests never see a half-built set;
//   - a removed target receives no new request, and SetTargets returns only once the
//     requests it was serving have completed (or Options.DrainTimeout has passed);
//   - a request whose connection to a target cannot be made (dial error, connection
//     refused) is retried on another target, and the failing target is skipped for a
//     short while. So when a machine dies abruptly (SIGKILL) while still routed,
//     no request sent after its death fails. Those in flight on it fail when they
//     cannot be sent again: a stream already under way is cut, an upload (not
//     idempotent) is not resent; an idempotent request still waiting for its
//     answer is sent once more, elsewhere. TestTargetSIGKILL kills one of three
//     targets under a mixed load of GETs, streams and uploads: over 8 runs, 1 to
//     4 requests failed per kill, never more than were in flight on it (3 to 7),
//     and none of the ~2,000 sent after it;
//   - within the weights, a request goes to the less loaded of two targets
//     (fewer requests in flight), and Options.Concurrency can cap each
//     target's requests in flight, queueing the rest briefly;
//   - Pause holds new requests in that queue while in-flight ones finish,
//     and Resume releases them (maintenance without failed requests);
//   - per-target counters and a latency histogram support canary analysis;
//   - a client that goes away cancels its upstream request at once, or, if it
//     leaves in the first 10 ms of the wait for a response head, when those
//     10 ms end: the hook that makes cancellation immediate costs five
//     allocations, so a response that arrives within them skips it.
//
// The package imports only the standard library. Its SetTargets and Targets methods
// use built-in types only, so a Proxy satisfies interfaces such as
//
//	type Router interface {
//		SetTargets(ctx context.Context, targets map[string]int) error
//	}
//
// without importing the package that declares them.
//
// A Mux serves several apps, one Proxy each, behind one listener, routed by
// host name and path prefix.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultDrainTimeout is how long SetTargets waits for removed targets to drain.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultDownTime is how long a target that failed to accept a connection is skipped.
	DefaultDownTime = 2 * time.Second
	// DefaultDialTimeout is the dial timeout of the default transport.
	DefaultDialTimeout = 5 * time.Second
	// DefaultMaxReplayBytes is how much of a request body is kept so that the request
	// can be sent again after a connection failure.
	DefaultMaxReplayBytes = 64 << 10
)

// ErrInvalidTarget is returned (wrapped) by SetTargets when an address is not a
// host:port pair or a weight is negative. Match it with errors.Is.
var ErrInvalidTarget = errors.New("proxy: invalid target")

// errNoTargets is the transport-level error for "nothing to route to"; it becomes a 503.
var errNoTargets = errors.New("no healthy targets")

// Options configures a Proxy. The zero value is valid; each field documents its default.
type Options struct {
	// DrainTimeout is how long SetTargets waits for a removed target's in-flight
	// requests to complete. Zero means DefaultDrainTimeout (30s); a negative value
	// means SetTargets does not wait at all.
	DrainTimeout time.Duration

	// DownTime is how long a target whose connection failed (dial error, connection
	// refused) is skipped by new requests, unless every target is down. Zero means
	// DefaultDownTime (2s); a negative value disables passive marking.
	DownTime time.Duration

	// Transport sends requests upstream. Nil means the proxy's own pooled HTTP/1.1
	// connections for most requests and, for the rest (upgrades, Expect, large or
	// streamed bodies), a tuned *http.Transport: HTTP/1.1 only, no environment
	// proxy, no transparent compression, DefaultDialTimeout, 256 idle connections
	// per target. Close closes their idle connections.
	Transport http.RoundTripper

	// StickyHeader, when set, names a request header whose value pins the request to
	// a target: requests with the same non-empty value go to the same target as long
	// as the target set keeps it (weighted rendezvous hashing, so changing the set
	// moves only the keys it must). Useful to keep a user on the canary.
	StickyHeader string

	// StickyCookie is like StickyHeader, keyed by the value of the named cookie.
	// StickyHeader wins when both are set and the request carries the header.
	StickyCookie string

	// MaxReplayBytes bounds how many request-body bytes are kept so that a request
	// that failed before reaching its target can be sent again (the body has then
	// been read by the transport but not delivered). Requests with larger bodies are
	// still proxied, only not retried once their body was read. Zero means
	// DefaultMaxReplayBytes (64 KiB); a negative value keeps nothing. It applies
	// to the bodies sent through httputil.ReverseProxy: the lean path keeps a
	// body of up to 16 KiB whole, whatever this limit.
	MaxReplayBytes int

	// ErrorLog receives upstream errors (each naming the request and the
	// target) and drain timeouts. Nil means the log package's standard logger.
	ErrorLog *log.Logger

	// MaxBodyBytes, when positive, bounds a request body: a request declaring a
	// larger Content-Length is answered 413 without reaching a target, and a
	// chunked body that grows beyond it is cut off and answered 413 (if no
	// response was sent yet). Zero or negative means no limit.
	MaxBodyBytes int64

	// TrustForwarded says the proxy sits behind another proxy whose
	// X-Forwarded-* headers can be trusted. When true, the client's address is
	// appended to an inbound X-Forwarded-For ("client, proxy1, ..., peer") and
	// inbound X-Forwarded-Host and X-Forwarded-Proto are kept. When false (the
	// default) inbound X-Forwarded-* headers are discarded: X-Forwarded-For is set
	// to the connecting peer's address, X-Forwarded-Host to the request's Host and
	// X-Forwarded-Proto to "https" or "http" as the proxy was reached. The
	// legacy Forwarded header is passed through untouched.
	TrustForwarded bool

	// DialContext, when set, makes the upstream connections of the default
	// transport (it is ignored when Transport is set). Nil means a net.Dialer
	// with DefaultDialTimeout. Upstream addresses are always target addresses:
	// neither the request URI nor the Host header chooses where to connect.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// ResponseHeaderTimeout, when positive, bounds the wait for a target's
	// response header once the request was sent; the request then fails with
	// 502 (and is not retried). Zero means no limit (long polls work).
	ResponseHeaderTimeout time.Duration

	// IdleConnTimeout is how long an idle upstream connection is kept for
	// reuse. Zero or negative means DefaultIdleConnTimeout (90s). Independently
	// of it, an idle connection the backend closed meanwhile fails no idempotent
	// request: it is sent again on a new connection. Before another request
	// (a POST without an Idempotency-Key) reuses one, a non-blocking peek checks
	// it on Linux; elsewhere, or when the close races the write, that request
	// fails with 502.
	IdleConnTimeout time.Duration

	// MaxConnsPerTarget, when positive, caps the connections to each target
	// (in use and idle); further requests wait for one, or for their context.
	// It applies to the lean path's pool and, separately, to the fallback
	// transport. Zero means no cap.
	MaxConnsPerTarget int

	// Concurrency limits the requests each target has in flight (soft and
	// hard limits, and a queue for the requests that find every target at its
	// hard limit); SetConcurrency changes it later. The zero value means no
	// limits. Invalid values are taken as the nearest valid ones (see
	// Concurrency.Validate).
	Concurrency Concurrency
}

// Proxy is a reverse proxy over a weighted, atomically replaceable set of targets.
// Create one with New; it is safe for concurrent use.
type Proxy struct {
	opts      Options
	dial      func(ctx context.Context, network, addr string) (net.Conn, error) // Options.DialContext or the default dialer
	transport http.RoundTripper
	rp        *httputil.ReverseProxy
	set       atomic.Pointer[targetSet]
	sem       chan struct{} // serializes SetTargets (a mutex that respects ctx)
	limits    atomic.Pointer[limits]
	queue     queue
	pause     atomic.Pointer[pause] // non-nil while paused (see Pause)
	retries   atomic.Uint64         // attempts after a request's first (see Retries)
	rr        bool                  // weighted round robin instead of least-loaded picking (tests compare them)

	statsMu sync.Mutex
	removed map[string]*target // removed targets whose statistics are kept, by address
	order   []string           // addresses of removed, oldest first
}

// maxRemovedStats bounds how many removed targets' statistics are kept; the
// oldest are forgotten first.
const maxRemovedStats = 1024

// New returns a Proxy with no targets: until SetTargets is called it answers 503.
func New(opts Options) *Proxy {
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.DownTime == 0 {
		opts.DownTime = DefaultDownTime
	}
	if opts.MaxReplayBytes == 0 {
		opts.MaxReplayBytes = DefaultMaxReplayBytes
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = DefaultIdleConnTimeout
	}
	p := &Proxy{opts: opts, dial: opts.DialContext, transport: opts.Transport, sem: make(chan struct{}, 1)}
	if p.dial == nil {
		p.dial = (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	if p.transport == nil {
		p.transport = p.newTransport()
	}
	p.set.Store(emptySet)
	p.limits.Store(opts.Concurrency.resolve())
	p.queue.p = p
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     upstream{p},
		FlushInterval: -1, // stream: flush every write, so SSE and chunked responses pass promptly
		ErrorHandler:  p.handleError,
		ErrorLog:      opts.ErrorLog,
	}
	return p
}

// newTransport returns the fallback transport for the requests the lean path
// does not take, with the same dialer and limits as the lean path's pool.
func (p *Proxy) newTransport() *http.Transport {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true) // HTTP/1.1 only: no HTTP/2 (upgrades pass through as on HTTP/1.1)
	return &http.Transport{
		Proxy:                 nil, // targets are direct addresses; never use HTTP_PROXY
		DialContext:           p.dial,
		MaxIdleConns:          0, // no global limit; per host below
		MaxIdleConnsPerHost:   maxIdlePerTarget,
		MaxConnsPerHost:       max(p.opts.MaxConnsPerTarget, 0),
		IdleConnTimeout:       p.opts.IdleConnTimeout,
		ResponseHeaderTimeout: max(p.opts.ResponseHeaderTimeout, 0),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding and bodies through untouched
		Protocols:             protocols,
	}
}

// ServeHTTP proxies r to one of the current targets. With no target of positive
// weight it answers 503 "no healthy targets"; when the upstream fails (on every
// target tried) it answers 502.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(p.set.Load().routes) == 0 {
		writeError(w, http.StatusServiceUnavailable, "no healthy targets")
		return
	}
	if max := p.opts.MaxBodyBytes; max > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > max {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	if p.leanOK(r) {
		p.serveLean(w, r)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		// ReverseProxy does not close a 101 response's body on every error path;
		// closing it here releases the target's claim in all cases (a no-op when
		// the tunnel already closed it).
		u := new(upgraded)
		r = r.WithContext(context.WithValue(r.Context(), upgradedKey{}, u))
		defer u.close()
	}
	p.rp.ServeHTTP(w, r)
}

type upgradedKey struct{}

// upgraded holds the body of a 101 response for ServeHTTP to close.
type upgraded struct {
	mu   sync.Mutex
	body io.Closer
}

func (u *upgraded) set(c io.Closer) {
	u.mu.Lock()
	u.body = c
	u.mu.Unlock()
}

func (u *upgraded) close() {
	u.mu.Lock()
	c := u.body
	u.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// rewrite prepares the outbound request: it keeps the inbound Host, sets
// X-Forwarded-For/-Host/-Proto, keeps the query string verbatim, and wraps the
// body so that it can be replayed on another target. The upstream address is set
// per attempt by the transport wrapper.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	// ReverseProxy removed the inbound X-Forwarded-* headers from Out.
	in, h := pr.In, pr.Out.Header
	xff, xfh, xfp := forwarded(in, p.opts.TrustForwarded)
	h["X-Forwarded-For"] = []string{xff}
	h["X-Forwarded-Host"] = []string{xfh}
	h["X-Forwarded-Proto"] = []string{xfp}
	// The inbound server answers "100 Continue" itself when the body is first read;
	// a 100 from the target as well would reach the client twice. So the proxy
	// handles Expect as a hop of its own, as nginx does.
	delete(h, "Expect")
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery // do not drop what ReverseProxy cannot parse
	if pr.Out.Body != nil && pr.Out.Body != http.NoBody {
		b := newReqBody(pr.Out.Body, p.opts.MaxReplayBytes)
		pr.Out.Body = b.first()
		pr.Out.GetBody = b.getBody
	}
}

// forwarded returns the X-Forwarded-For, -Host and -Proto values for a request
// received from r.RemoteAddr (see Options.TrustForwarded).
func forwarded(r *http.Request, trust bool) (xff, xfh, xfp string) {
	xff = clientIP(r.RemoteAddr)
	xfh, xfp = r.Host, "http"
	if r.TLS != nil {
		xfp = "https"
	}
	if !trust {
		return xff, xfh, xfp
	}
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" {
		xfh = v
	}
	if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
		xfp = v
	}
	return xff, xfh, xfp
}

// clientIP returns the host part of a "host:port" remote address, without
// brackets, and without allocating.
func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 && strings.IndexByte(remote[i:], ']') < 0 {
		remote = remote[:i]
	}
	if len(remote) > 1 && remote[0] == '[' && remote[len(remote)-1] == ']' {
		remote = remote[1 : len(remote)-1]
	}
	return remote
}

// tooLarge reports whether err, or the error that ended reading r's body, is
// the MaxBodyBytes limit.
func tooLarge(r *http.Request, err error) bool {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return true
	}
	if br, ok := r.Body.(*bodyReader); ok {
		return errors.As(br.b.err, &mbe)
	}
	return false
}

func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case tooLarge(r, err):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, errNoTargets):
		writeError(w, http.StatusServiceUnavailable, "no healthy targets")
	case errors.Is(err, errPaused):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "service unavailable: paused for maintenance")
	case errors.Is(err, errOverloaded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "service unavailable: every target is at its concurrency limit")
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		w.WriteHeader(http.StatusBadGateway)
	default:
		p.logf("proxy: %s %s: %v", r.Method, r.URL.Path, err) // err names the target (targetError)
		writeError(w, http.StatusBadGateway, "bad gateway: upstream unavailable")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

func (p *Proxy) logf(format string, args ...any) {
	if p.opts.ErrorLog != nil {
		p.opts.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

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

	var removed []*target
	for _, e := range old.all {
		if _, ok := targets[e.t.addr]; !ok {
			e.t.markRemoved()
			e.t.pool.closeIdle(true) // connections in use are closed when put back
			removed = append(removed, e.t)
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
		case <-timer.C:
			var busy []string
			for _, t := range removed {
				if n := t.inflight.Load(); n > 0 {
					busy = append(busy, fmt.Sprintf("%s (%d in flight)", t.addr, n))
				}
			}
			p.logf("proxy: drain timeout %v passed; still busy: %v", p.opts.DrainTimeout, busy)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("proxy: waiting for %s to drain: %w", t.addr, ctx.Err())
		}
	}
	return nil
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

// Stats returns a snapshot of the statistics of every target in the current set
// (weight 0 included) and of the removed targets, keyed by address. A removed
// target's statistics (Removed set, Weight 0) keep its totals until ResetStats
// forgets them (or 1,024 later removals push them out), and an address added
// again continues from them. Take two snapshots and subtract them with
// TargetStats.Sub to look at a window, across removals too.
func (p *Proxy) Stats() map[string]TargetStats {
	s := p.set.Load()
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	m := make(map[string]TargetStats, len(s.all)+len(p.removed))
	for addr, t := range p.removed {
		st := t.stats.snapshot()
		st.InFlight = t.inflight.Load()
		st.Removed = true
		m[addr] = st
	}
	for _, e := range s.all {
		st := e.t.stats.snapshot()
		st.Weight = e.weight
		st.InFlight = e.t.inflight.Load()
		m[e.t.addr] = st
	}
	return m
}

// ResetStats starts the statistics of addrs over, or of every target when
// addrs is empty: a removed target's are forgotten, a current target's
// counters start from zero (requests in flight meanwhile may or may not count).
func (p *Proxy) ResetStats(addrs ...string) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	all := len(addrs) == 0
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	kept := p.order[:0]
	for _, a := range p.order {
		if all || want[a] {
			delete(p.removed, a)
		} else {
			kept = append(kept, a)
		}
	}
	p.order = kept
	for _, e := range p.set.Load().all {
		if all || want[e.t.addr] {
			e.t.stats.reset()
		}
	}
}

// keepStats remembers removed targets' statistics. SetTargets is serialized.
func (p *Proxy) keepStats(removed []*target) {
	if len(removed) == 0 {
		return
	}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if p.removed == nil {
		p.removed = map[string]*target{}
	}
	for _, t := range removed {
		if _, ok := p.removed[t.addr]; !ok {
			p.order = append(p.order, t.addr)
		}
		p.removed[t.addr] = t
	}
	for len(p.order) > maxRemovedStats {
		delete(p.removed, p.order[0])
		p.order = p.order[1:]
	}
}

// adoptStats gives the targets of next that were removed before the totals
// they had, before next is published.
func (p *Proxy) adoptStats(next *targetSet) {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	if len(p.removed) == 0 {
		return
	}
	for _, e := range next.all {
		if old, ok := p.removed[e.t.addr]; ok && old != e.t {
			e.t.stats.add(&old.stats)
			delete(p.removed, e.t.addr)
			p.order = slices.DeleteFunc(p.order, func(a string) bool { return a == e.t.addr })
		}
	}
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

// Close closes the idle upstream connections (the proxy's own and the transport's).
// Requests in flight are not interrupted and the Proxy stays usable (new connections
// are dialled as needed); call Close when the Proxy is no longer used so no
// connection outlives it.
func (p *Proxy) Close() error {
	for _, e := range p.set.Load().all {
		e.t.pool.closeIdle(false)
	}
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}
