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
//     refused) is retried on another target, and the failing target is ejected:
//     skipped for Options.EjectionTime. So when a machine dies abruptly (SIGKILL) while still routed,
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
//   - Options.Logger (go-hclog) hears what happens to each target;
//   - a client that goes away cancels its upstream request at once, or, if it
//     leaves in the first 10 ms of the wait for a response head, when those
//     10 ms end: the hook that makes cancellation immediate costs five
//     allocations, so a response that arrives within them skips it.
//
// The package imports no other package of this module: only the standard
// library and go-hclog (for Options.Logger). Its SetTargets and Targets methods
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
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A request's way through the proxy, file by file:
//
//   - proxy.go: Options, New, and ServeHTTP, which sends the request down one
//     of two paths;
//   - lean.go (with lean_conn.go and lean_response.go): the fast path, the
//     proxy's own HTTP/1.1 client, for most requests;
//   - fallback.go: the fallback path, httputil.ReverseProxy and net/http's
//     Transport, for the rest;
//   - retry.go: the retry policy both paths follow: which target each attempt
//     claims, and whether a failed attempt is followed by another;
//   - balance.go, target.go, limits.go, pause.go: picking and claiming a
//     target (weights, load, stickiness, concurrency limits and their queue,
//     pauses);
//   - forward.go: forwarding headers, and the answers the proxy writes itself;
//   - stats.go: per-target counters and latency histograms;
//   - drain.go: SetTargets, and the draining of removed targets.

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultDrainTimeout is how long SetTargets waits for removed targets to drain.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultEjectionTime is how long a target that failed to accept a connection is
	// ejected: skipped by new requests.
	DefaultEjectionTime = 2 * time.Second
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

	// EjectionTime is how long a target to which no connection could be made (dial
	// error, connection refused) is ejected: skipped by new requests, unless every
	// target is ejected. It is how long the proxy waits before it tries the target
	// again, not a downtime of the service. Zero means DefaultEjectionTime (2s); a
	// negative value disables ejection.
	EjectionTime time.Duration

	// Transport sends requests upstream. Nil means the proxy's own pooled HTTP/1.1
	// connections for most requests and, for the rest (upgrades, Expect, large or
	// streamed bodies), a tuned *http.Transport: HTTP/1.1 only, no environment
	// proxy, no transparent compression, DefaultDialTimeout, 256 idle connections
	// per target. CloseIdleConnections closes their idle connections.
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

	// Logger receives what the proxy does, with the target's address under the
	// key "target": targets added and removed (Info), drained (Debug) or still
	// busy when the drain timeout passes (Warn); a target ejected (Warn); an
	// attempt that failed and is followed by another (Debug); a request that
	// failed on every target tried and was answered 502 (Error); pauses
	// (Info). Nil means no logging (hclog's null logger), as for
	// deploy.Deployer.Logger.
	Logger hclog.Logger

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
	log       hclog.Logger          // Options.Logger, or the null logger

	statsMu sync.Mutex
	removed map[string]*target // removed targets whose statistics are kept, by address
	order   []string           // addresses of removed, oldest first
}

// New returns a Proxy with no targets: until SetTargets is called it answers 503.
func New(opts Options) *Proxy {
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.EjectionTime == 0 {
		opts.EjectionTime = DefaultEjectionTime
	}
	if opts.MaxReplayBytes == 0 {
		opts.MaxReplayBytes = DefaultMaxReplayBytes
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = DefaultIdleConnTimeout
	}
	p := &Proxy{opts: opts, dial: opts.DialContext, transport: opts.Transport, sem: make(chan struct{}, 1), log: opts.Logger}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
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
		// What ReverseProxy logs itself: a failed copy of a response body.
		ErrorLog: p.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
	}
	return p
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

// CloseIdleConnections closes the idle upstream connections (the proxy's own
// and the transport's), as http.Transport's method of that name does. Requests
// in flight are not interrupted and the Proxy stays usable (new connections are
// dialled as needed); call it when the Proxy is no longer used so no connection
// outlives it.
func (p *Proxy) CloseIdleConnections() {
	for _, e := range p.set.Load().all {
		e.t.pool.closeIdle(false)
	}
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
