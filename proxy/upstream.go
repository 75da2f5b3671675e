package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// maxAttempts bounds the targets one request tries.
const maxAttempts = 8

// upstream is the RoundTripper the ReverseProxy uses: it picks and claims a target
// for each attempt, sends the request with the real transport, and retries on
// another target when the connection could not be made. The requests the lean
// path (lean.go) does not take come through here.
type upstream struct{ p *Proxy }

func (u upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	p := u.p
	key := p.stickyKey(req)
	body, _ := req.Body.(*bodyReader)

	var triedBuf [maxAttempts]*target
	tried := triedBuf[:0]
	var lastErr error
	connRetried := false
	for range maxAttempts {
		t, err := p.claim(req.Context(), key, tried)
		if t == nil {
			if lastErr == nil || !errors.Is(err, errNoTargets) {
				lastErr = err
			}
			break
		}
		if len(tried) > 0 {
			p.retries.Add(1)
		}
		tried = append(tried, t)
		if len(tried) > 1 && body != nil {
			r, err := body.b.getBody()
			if err != nil {
				t.release()
				break
			}
			req.Body = r
		}
		req.URL.Host = t.addr

		start := now()
		t.stats.requests.Add(1)
		res, err := p.transport.RoundTrip(req)
		if err == nil {
			t.stats.latency.observe(now() - start)
			if res.StatusCode >= 500 {
				t.stats.errors.Add(1)
			}
			res.Body = claimedBody(res.Body, t)
			if res.StatusCode == http.StatusSwitchingProtocols {
				if u, ok := req.Context().Value(upgradedKey{}).(*upgraded); ok {
					u.set(res.Body)
				}
			}
			return res, nil
		}
		t.stats.errors.Add(1)
		t.release()
		lastErr = &targetError{addr: t.addr, err: err}
		if req.Context().Err() != nil || (body != nil && !body.b.replayable()) {
			break
		}
		if isDialError(err) {
			// Nothing was sent: safe for any method.
			t.markDown(p.opts.DownTime)
			continue
		}
		// The connection failed after the request (or part of it) went out, before a
		// response came. Like net/http's transport on a reused connection, send it
		// again only when it is idempotent, and only once, so that a request that
		// crashes its upstream cannot take down every target in turn.
		if connRetried || !idempotent(req) || isTimeout(err) {
			break
		}
		connRetried = true
	}
	if lastErr == nil {
		lastErr = errNoTargets
	}
	return nil, lastErr
}

// targetError is an upstream error with the target it came from, for the log.
type targetError struct {
	addr string
	err  error
}

func (e *targetError) Error() string { return "target " + e.addr + ": " + e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// claim picks a target from the current set and claims it (see pick), or
// waits in the queue when every target is at its hard limit. It returns
// errNoTargets when no target is left, errOverloaded when the request cannot
// wait or waited too long, or ctx's error.
func (p *Proxy) claim(ctx context.Context, key string, tried []*target) (*target, error) {
	lim := p.limits.Load()
	ps := p.pause.Load()
	if ps != nil && len(tried) == 0 {
		return p.hold(ctx, key, ps, lim) // a retry belongs to a request in flight: not held
	}
	// During a pause the queue holds the paused requests: a retry does not wait behind them.
	if lim.hard > 0 && ps == nil && p.queue.waiting.Load() > 0 {
		return p.queue.wait(ctx, key, tried, lim) // none overtakes a waiting request
	}
	t, full := p.tryClaim(key, tried, lim)
	switch {
	case t != nil:
		return t, nil
	case full:
		return p.queue.wait(ctx, key, tried, lim)
	}
	return nil, errNoTargets
}

// tryClaim picks and claims a target, picking again from the (newer) set when
// the picked target was removed or filled up meanwhile. It returns nil when
// no target is left; full then reports that some were at their hard limit.
func (p *Proxy) tryClaim(key string, tried []*target, lim *limits) (*target, bool) {
	for {
		var t *target
		var full bool
		if p.rr {
			t = p.set.Load().pickRR(key, tried)
		} else {
			t, full = p.set.Load().pick(key, tried, lim.soft, lim.hard)
		}
		if t == nil {
			return nil, full
		}
		if ok, _ := t.claim(lim.hard); ok {
			return t, false
		}
	}
}

func (p *Proxy) stickyKey(req *http.Request) string {
	if p.opts.StickyHeader != "" {
		if v := req.Header.Get(p.opts.StickyHeader); v != "" {
			return v
		}
	}
	if p.opts.StickyCookie != "" {
		if c, err := req.Cookie(p.opts.StickyCookie); err == nil {
			return c.Value
		}
	}
	return ""
}

// isDialError reports whether err means no connection to the target could be made,
// so nothing of the request was sent and it is safe to send it elsewhere.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// idempotent reports whether req may be sent again after a connection failure
// (RFC 9110 section 9.2.2), counting an Idempotency-Key header as net/http does.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// claimedBody wraps a response body so that the target's claim is released when the
// ReverseProxy closes it, after the body was copied (or, for an upgrade, when the
// tunnel ends). An upgraded (101) body stays an io.ReadWriteCloser.
func claimedBody(rc io.ReadCloser, t *target) io.ReadCloser {
	if rc == nil {
		t.release()
		return nil
	}
	if rwc, ok := rc.(io.ReadWriteCloser); ok {
		return &claimedRWBody{claimedReader{ReadCloser: rc, t: t}, rwc}
	}
	return &claimedReader{ReadCloser: rc, t: t}
}

type claimedReader struct {
	io.ReadCloser
	t    *target
	done atomic.Bool
}

func (c *claimedReader) Close() error {
	err := c.ReadCloser.Close()
	if c.done.CompareAndSwap(false, true) {
		c.t.release()
	}
	return err
}

type claimedRWBody struct {
	claimedReader
	w io.Writer
}

func (c *claimedRWBody) Write(p []byte) (int, error) { return c.w.Write(p) }

var errNotReplayable = errors.New("proxy: request body too large to replay")

// reqBody is the inbound request body shared by every attempt of one request. It
// records up to max bytes it has read, so that an attempt that read the body without
// delivering it (connection lost before the request went out) can be replayed.
// Attempts never read concurrently: the transport is done with a request's body when
// RoundTrip returns an error, and a new attempt starts only then.
type reqBody struct {
	src      io.ReadCloser
	rec      []byte
	n        int64 // bytes read from src
	max      int
	overflow bool // more than max bytes read: cannot replay
	err      error
}

func newReqBody(src io.ReadCloser, maxReplay int) *reqBody {
	return &reqBody{src: src, max: maxReplay}
}

func (b *reqBody) first() *bodyReader { return &bodyReader{b: b} }

// replayable reports whether a new attempt can send the whole body: nothing was
// read yet, or all that was read is recorded and the client's body did not fail.
func (b *reqBody) replayable() bool {
	return b.n == 0 || (!b.overflow && (b.err == nil || b.err == io.EOF))
}

// getBody is the request's GetBody: a reader from the start of the body.
func (b *reqBody) getBody() (io.ReadCloser, error) {
	if !b.replayable() {
		return nil, errNotReplayable
	}
	return &bodyReader{b: b}, nil
}

// bodyReader is one attempt's view of the body: the recorded bytes, then the source.
// Its Close does nothing: the server owns the inbound body.
type bodyReader struct {
	b   *reqBody
	off int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	b := r.b
	if r.off < b.n {
		if b.overflow {
			return 0, errNotReplayable
		}
		n := copy(p, b.rec[r.off:])
		r.off += int64(n)
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	if n > 0 {
		b.n += int64(n)
		r.off += int64(n)
		if !b.overflow {
			if len(b.rec)+n <= b.max {
				b.rec = append(b.rec, p[:n]...)
			} else {
				b.overflow, b.rec = true, nil
			}
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (r *bodyReader) Close() error { return nil }
