package proxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The lean upstream path.
//
// Most requests (no upgrade, no Expect, a body of known length up to
// leanMaxBody, the default transport) are sent by the Proxy itself over pooled
// HTTP/1.1 connections: the request is written in one go, the response is
// parsed strictly (obsolete line folding, malformed lines, bad or conflicting
// Content-Length and unknown transfer codings are rejected with 502, so no
// response can be smuggled) and streamed to the client. No goroutine runs per
// connection or per request: a client that goes away interrupts the upstream
// exchange through a past deadline (context.AfterFunc). That hook costs five
// allocations and about 0.5 µs on a fresh request context, so it is armed only
// when the exchange may block for long: before a write that does not fit the
// connection's 4 KB write buffer, when the response head takes longer than
// hookDelay (the first wait is bounded by a deadline that ends then), and
// before a blocking read of the response body. A response that arrives whole
// within hookDelay never pays for it, and a client gone before then is noticed
// when hookDelay ends.
//
// A pooled connection the backend closed while idle fails no idempotent
// request: if the reused connection turns out closed before any response byte
// arrived (or answers a 408 that closes it, which a backend may send before
// closing an idle connection), the request is sent once more on a new
// connection to the same target, so it skips the check below. Before a request
// that may not be sent twice (a POST, say) reuses one, a non-blocking peek
// checks it on Linux; elsewhere, or when the close races the write, that
// request fails (see Options.IdleConnTimeout).
//
// Every other request goes through httputil.ReverseProxy and net/http's
// Transport, which handle 100-continue, upgrades, request trailers and bodies
// that stream while the response comes.

const (
	// leanMaxBody is the largest request body the lean path buffers and sends;
	// larger and chunked bodies go through httputil.ReverseProxy.
	leanMaxBody = 16 << 10
	// maxResponseHeaderBytes bounds a response's (or trailer's) header block.
	maxResponseHeaderBytes = 1 << 20
	// maxIdlePerTarget bounds the idle connections kept per target.
	maxIdlePerTarget = 256
	// DefaultIdleConnTimeout is how long an idle upstream connection is kept.
	DefaultIdleConnTimeout = 90 * time.Second
	// hookDelay is how long the wait for a response head may run before the
	// client-disconnect hook is armed (see the comment above).
	hookDelay = 10 * time.Millisecond
)

// staleError marks an attempt on a reused connection the backend had most
// likely closed while idle: it ended before any response byte arrived, or (the
// peek skipped) the response was a 408 that closes the connection.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

var bodyPool = sync.Pool{New: func() any { b := make([]byte, leanMaxBody); return &b }}

// leanOK reports whether r can take the lean path.
func (p *Proxy) leanOK(r *http.Request) bool {
	if p.opts.Transport != nil || r.ContentLength < 0 || r.ContentLength > leanMaxBody ||
		len(r.TransferEncoding) > 0 || r.Trailer != nil || r.Method == http.MethodConnect {
		return false
	}
	h := r.Header
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	return true
}

// serveLean proxies r on the lean path (see leanOK).
func (p *Proxy) serveLean(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.ContentLength > 0 {
		bp := bodyPool.Get().(*[]byte)
		defer bodyPool.Put(bp)
		body = (*bp)[:r.ContentLength]
		if _, err := io.ReadFull(r.Body, body); err != nil {
			if tooLarge(r, err) {
				writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			} else {
				writeError(w, http.StatusBadRequest, "bad request: incomplete body")
			}
			return
		}
	}
	ctx := r.Context()
	idem := idempotent(r)
	a := p.attempts(ctx, p.stickyKey(r), idem)
	for t := a.next(); t != nil; t = a.next() {
		done, abort, err := p.leanSend(ctx, w, r, t, body, idem)
		t.release()
		if done {
			if abort {
				panic(http.ErrAbortHandler) // like ReverseProxy: the client sees a cut response
			}
			return
		}
		a.failed(t, err, true) // the body is held whole
	}
	p.handleError(w, r, a.err())
}

// leanSend makes one attempt on t (see leanAttempt). A request that may not
// be sent twice is sent on a checked connection; an idempotent one that finds
// its pooled connection stale is sent once more, on a new connection.
func (p *Proxy) leanSend(ctx context.Context, w http.ResponseWriter, r *http.Request, t *target, body []byte, idem bool) (done, abort bool, err error) {
	done, abort, err = p.leanAttempt(ctx, w, r, t, body, !idem, false)
	if _, stale := err.(*staleError); stale && idem {
		done, abort, err = p.leanAttempt(ctx, w, r, t, body, false, true)
	}
	return done, abort, err
}

// leanAttempt sends r to t. done reports that a response went (or began to go)
// to the client; abort that it was cut short. Without done, err says why the
// attempt failed, and nothing was written to w except 1xx responses.
//
// check and fresh are passed to the pool's get; a failure on a reused
// connection before any response byte arrived, or a 408 that closes one that
// was not checked, is returned as a *staleError.
func (p *Proxy) leanAttempt(ctx context.Context, w http.ResponseWriter, r *http.Request, t *target, body []byte, check, fresh bool) (done, abort bool, err error) {
	pc, err := t.pool.get(ctx, p, t.addr, check, fresh)
	if err != nil {
		return false, false, err
	}
	reusable := false
	pc.ctx, pc.stop = ctx, nil
	defer func() {
		if pc.stop != nil && !pc.stop() {
			reusable = false // the deadline was moved: the connection is spoiled
		}
		pc.ctx, pc.stop, pc.soft = nil, nil, false
		if reusable {
			t.pool.put(pc)
		} else {
			t.pool.discard(pc)
		}
	}()

	p.writeRequest(pc, r, t.addr, body)
	// The wait for the response head: the first hookDelay of it is soft
	// (see pc.Read), the rest ends at the response-header timeout.
	t0 := time.Now()
	start := int64(t0.Sub(epoch)) // now(), without reading the clock again
	rht := p.opts.ResponseHeaderTimeout
	pc.hard = time.Time{}
	if rht > 0 {
		pc.hard = t0.Add(rht)
	}
	pc.soft = pc.stop == nil && (rht <= 0 || rht > hookDelay)
	dl := pc.hard
	if pc.soft {
		dl = t0.Add(hookDelay)
	}
	_ = pc.nc.SetReadDeadline(dl)
	if pc.stop != nil && ctx.Err() != nil {
		// The hook (armed by a write) fired before the deadline moved.
		return false, false, ctx.Err()
	}
	pc.final = true
	err = pc.bw.Flush()
	pc.final = false
	if err == nil {
		_, err = pc.br.Peek(1) // the first response byte
	}
	if err != nil {
		if pc.reused && !isTimeout(err) && ctx.Err() == nil {
			err = &staleError{err}
		}
		return false, false, err
	}
	var hd head
	if err := p.readHead(pc, w, r, &hd); err != nil {
		return false, false, err
	}
	if hd.status == http.StatusRequestTimeout && !hd.keepAlive && pc.reused && !check {
		// Most likely sent unasked by a backend closing the idle connection
		// (the peek that would have seen it was skipped); the request may be
		// repeated on a new connection (RFC 9110, section 15.5.9). A 408 that
		// keeps the connection open is the backend's answer and is passed on.
		return false, false, &staleError{errIdle408}
	}
	// A body that is not already buffered is read with no deadline and the
	// hook armed; one that is needs neither.
	if hd.mode != bodyNone && (hd.mode != bodyLength || int64(pc.br.Buffered()) < hd.length) {
		pc.soft = false
		_ = pc.nc.SetReadDeadline(time.Time{})
		if err := pc.arm(); err != nil {
			return false, false, err
		}
	}
	t.stats.latency.observe(now() - start)
	if hd.status >= 500 {
		t.stats.errors.Add(1)
	}
	h := w.Header()
	pc.setHeader(h, &hd, "")
	w.WriteHeader(hd.status)

	fl := flusherOf(w)
	switch hd.mode {
	case bodyLength:
		err = pc.copyN(w, hd.length, fl)
	case bodyChunked:
		err = pc.copyChunked(w, h, fl)
	case bodyClose: // readHead cleared keepAlive
		err = pc.copyN(w, -1, fl)
	}
	if err != nil {
		return true, true, err
	}
	reusable = hd.keepAlive
	return true, false, nil
}

func flusherOf(w http.ResponseWriter) func() {
	if f, ok := w.(http.Flusher); ok {
		return f.Flush
	}
	rc := http.NewResponseController(w)
	return func() { _ = rc.Flush() }
}

// reqSkip are request headers not copied upstream: hop-by-hop headers, and
// those the lean path writes itself.
var reqSkip = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Host": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
}

// listed reports whether name is one of the comma-separated tokens of the
// Connection header values conn (case-insensitive).
func listed(conn []string, name string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

func (p *Proxy) writeRequest(pc *pconn, r *http.Request, addr string, body []byte) {
	bw := pc.bw
	_, _ = bw.WriteString(r.Method)
	_ = bw.WriteByte(' ')
	uri := r.RequestURI
	if uri == "" || (uri[0] != '/' && !(uri == "*" && r.Method == http.MethodOptions)) {
		uri = r.URL.RequestURI() // absolute-form: origin-form towards the target
	}
	_, _ = bw.WriteString(uri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if host == "" {
		host = addr
	}
	_, _ = bw.WriteString(host)
	conn := r.Header["Connection"]
	teTrailers := false
	for k, vs := range r.Header {
		if reqSkip[k] {
			if k == "Te" {
				for _, v := range vs {
					teTrailers = teTrailers || strings.Contains(v, "trailers")
				}
			}
			continue
		}
		if len(conn) > 0 && listed(conn, k) {
			continue
		}
		for _, v := range vs {
			_, _ = bw.WriteString("\r\n")
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
		}
	}
	xff, xfh, xfp := forwarded(r, p.opts.TrustForwarded)
	_, _ = bw.WriteString("\r\nX-Forwarded-For: ")
	_, _ = bw.WriteString(xff)
	_, _ = bw.WriteString("\r\nX-Forwarded-Host: ")
	_, _ = bw.WriteString(xfh)
	_, _ = bw.WriteString("\r\nX-Forwarded-Proto: ")
	_, _ = bw.WriteString(xfp)
	if teTrailers {
		_, _ = bw.WriteString("\r\nTe: trailers")
	}
	if len(body) > 0 || r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" {
		_, _ = bw.WriteString("\r\nContent-Length: ")
		_, _ = bw.Write(strconv.AppendInt(pc.num[:0], int64(len(body)), 10))
	}
	_, _ = bw.WriteString("\r\n\r\n")
	_, _ = bw.Write(body)
}
