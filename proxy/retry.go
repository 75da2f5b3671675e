package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// The retry policy, one for both request paths (lean.go and fallback.go).
//
// A request makes at most maxAttempts attempts, each on a target it has not
// tried yet, claimed as any request claims one (see claim). After an attempt
// that failed before a response reached the client, another follows when:
//
//   - no connection could be made (a dial error): nothing was sent, so any
//     request goes on, and the target is ejected: new requests skip it for
//     Options.EjectionTime, unless every target is ejected;
//   - the connection failed after the request (or part of it) went out, before
//     a response came, and the request is idempotent and did not time out:
//     like net/http's transport on a reused connection, it is sent again, but
//     only once per request, so that a request that crashes its upstream
//     cannot take down every target in turn.
//
// It never follows when the client went away, or when the request body cannot
// be sent again (see Options.MaxReplayBytes). Every attempt after a request's
// first counts in Retries.
//
// Apart from this policy, a request sent on a pooled connection that the
// target had closed while idle is sent once more to the same target, on a new
// connection: net/http's transport does that on the fallback path, the lean
// path (leanSend) does it itself.

// maxAttempts bounds the targets one request tries.
const maxAttempts = 8

// attempts is one request's way through the retry policy:
//
//	a := p.attempts(ctx, key, idempotent(r))
//	for t := a.next(); t != nil; t = a.next() {
//		... send to t; on failure: release t, a.failed(t, err, replayable) ...
//	}
//	... a.err() says why the request failed
type attempts struct {
	p      *Proxy
	ctx    context.Context
	key    string // the sticky key
	idem   bool   // the request may be sent again once it went out
	n      int    // attempts made: tried[:n]
	tried  [maxAttempts]*target
	resent bool // the one resend of a request that went out is used
	stop   bool // no further attempt
	last   error
}

func (p *Proxy) attempts(ctx context.Context, key string, idem bool) attempts {
	return attempts{p: p, ctx: ctx, key: key, idem: idem}
}

// next claims the target of the next attempt, or returns nil when the policy
// allows none (err then says why the request failed).
func (a *attempts) next() *target {
	if a.stop || a.n == maxAttempts {
		return nil
	}
	t, err := a.p.claim(a.ctx, a.key, a.tried[:a.n])
	if t == nil {
		// A request that failed on a target and finds no other one fails
		// with that target's error.
		if a.last == nil || !errors.Is(err, errNoTargets) {
			a.last = err
		}
		a.stop = true
		return nil
	}
	if a.n > 0 {
		a.p.retries.Add(1)
	}
	a.tried[a.n] = t
	a.n++
	t.stats.requests.Add(1)
	return t
}

// failed records that the attempt on t (its claim released) failed with err
// before a response reached the client, and reports whether another attempt
// may follow. replayable says whether the request body can be sent again.
func (a *attempts) failed(t *target, err error, replayable bool) bool {
	t.stats.errors.Add(1)
	a.last = &targetError{addr: t.addr, err: err}
	switch {
	case a.ctx.Err() != nil || !replayable:
	case isDialError(err):
		a.p.eject(t, err)
		if a.p.log.IsDebug() { // the arguments would allocate even for a null logger
			a.p.log.Debug("attempt failed; retrying", "target", t.addr, "error", err)
		}
		return true
	case a.idem && !a.resent && !isTimeout(err):
		a.resent = true
		if a.p.log.IsDebug() {
			a.p.log.Debug("attempt failed after sending; retrying", "target", t.addr, "error", err)
		}
		return true
	}
	a.stop = true
	return false
}

// err returns why the request failed: the last target's error, or why no
// target could be claimed.
func (a *attempts) err() error {
	if a.last == nil {
		return errNoTargets
	}
	return a.last
}

// targetError is an upstream error with the target it came from, for the log.
type targetError struct {
	addr string
	err  error
}

func (e *targetError) Error() string { return "target " + e.addr + ": " + e.err.Error() }

func (e *targetError) Unwrap() error { return e.err }

// dialError marks an error from dialling on the lean path (whatever the
// dialler returned): nothing of the request was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }

func (e *dialError) Unwrap() error { return e.err }

// isDialError reports whether err means no connection to the target could be made,
// so nothing of the request was sent and it is safe to send it elsewhere.
func isDialError(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
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

// eject ejects t for Options.EjectionTime: no connection to it could be made.
func (p *Proxy) eject(t *target, err error) {
	if d := p.opts.EjectionTime; d > 0 && t.eject(d) {
		p.log.Warn("target ejected: no connection could be made", "target", t.addr, "for", d, "error", err)
	}
}
