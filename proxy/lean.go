package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
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

var (
	errMalformedResponse = errors.New("proxy: malformed response from upstream")
	errHeaderTooLarge    = errors.New("proxy: upstream response header too large")
	errUnexpected1xx     = errors.New("proxy: unexpected 101 from upstream")
	errBadBody           = errors.New("proxy: malformed chunked body from upstream")
	errIdle408           = errors.New("proxy: 408 Request Timeout on a reused upstream connection")
)

// dialError marks an error from dialling: nothing of the request was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

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

// pconn is a pooled upstream connection.
type pconn struct {
	nc     net.Conn
	br     *bufio.Reader // reads through pc.Read
	bw     *bufio.Writer // writes through pc.Write
	idleAt int64         // now() when put back
	reused bool
	cancel func() // interrupts blocked reads and writes (the client went away)
	peek   peeker

	// The attempt in progress (see arm). The read deadline is not cleared
	// when an attempt ends; the next one sets its own.
	ctx   context.Context
	stop  func() bool // stops the armed hook; nil while none is armed
	soft  bool        // the read deadline only ends the first wait (hookDelay)
	hard  time.Time   // the read deadline after it: the response-header timeout, or none
	final bool        // bw's last flush, which fits its buffer: no hook needed

	long []byte  // a line longer than br's buffer
	hdr  []byte  // the header block: names and values
	offs []int32 // per field: name start, value start, value end in hdr
	num  [20]byte
}

func newPconn(nc net.Conn) *pconn {
	pc := &pconn{nc: nc}
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	pc.bw = bufio.NewWriterSize(pc, 4<<10)
	pc.cancel = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	pc.peek.init(nc)
	return pc
}

// arm makes sure the client-disconnect hook is armed for the attempt, and
// reports the client's context error if it went away. Whoever moves the read
// deadline checks the context after it (arm does), so a past deadline the hook
// set is never overwritten unnoticed.
func (pc *pconn) arm() error {
	if err := pc.ctx.Err(); err != nil {
		return err
	}
	if pc.stop == nil && pc.ctx.Done() != nil {
		pc.stop = context.AfterFunc(pc.ctx, pc.cancel)
	}
	return nil
}

// Read reads from the upstream connection for br. When the first wait for the
// response ends at hookDelay, it moves the deadline to the response-header
// timeout (or none), arms the hook and reads on.
func (pc *pconn) Read(b []byte) (int, error) {
	n, err := pc.nc.Read(b)
	if err != nil && pc.soft && errors.Is(err, os.ErrDeadlineExceeded) {
		pc.soft = false
		dl := pc.hard
		if !dl.IsZero() && time.Until(dl) < lastLook {
			// This goroutine ran only after the timeout had (nearly) passed; a
			// response that came in time must still be read, as a single
			// blocking read would have.
			dl = time.Now().Add(lastLook)
		}
		_ = pc.nc.SetReadDeadline(dl)
		if err := pc.arm(); err != nil {
			return 0, err
		}
		n, err = pc.nc.Read(b)
	}
	return n, err
}

// lastLook is how long a read whose response-header timeout passed while it
// waited to run still looks for a response that arrived in time.
const lastLook = time.Millisecond

// Write writes to the upstream connection for bw. Only the last flush of a
// request that fits bw's buffer goes out without the hook: on a connection
// with nothing left unsent it cannot block. Anything larger might, on a
// backend that does not read.
func (pc *pconn) Write(b []byte) (int, error) {
	if !pc.final {
		if err := pc.arm(); err != nil {
			return 0, err
		}
	}
	return pc.nc.Write(b)
}

var aLongTimeAgo = time.Unix(1, 0)

// connPool holds a target's idle connections (LIFO) and caps its connections.
type connPool struct {
	mu     sync.Mutex
	idle   []*pconn
	closed bool
	slots  chan struct{} // nil: no cap; set before the target is published
}

func (cp *connPool) init(maxConns int) {
	if maxConns > 0 && cp.slots == nil {
		cp.slots = make(chan struct{}, maxConns)
	}
}

// get returns an idle connection, or dials one when there is none or fresh is
// set. With check, an idle connection is peeked at first (see peeker).
func (cp *connPool) get(ctx context.Context, p *Proxy, addr string, check, fresh bool) (*pconn, error) {
	if cp.slots != nil {
		select {
		case cp.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	oldest := now() - int64(p.opts.IdleConnTimeout)
	for !fresh {
		cp.mu.Lock()
		n := len(cp.idle)
		if n == 0 {
			cp.mu.Unlock()
			break
		}
		pc := cp.idle[n-1]
		cp.idle[n-1] = nil
		cp.idle = cp.idle[:n-1]
		cp.mu.Unlock()
		if pc.idleAt >= oldest && pc.br.Buffered() == 0 && (!check || pc.peek.alive()) {
			pc.reused = true
			return pc, nil
		}
		_ = pc.nc.Close()
	}
	nc, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		cp.release()
		return nil, &dialError{err}
	}
	return newPconn(nc), nil
}

func (cp *connPool) release() {
	if cp.slots != nil {
		<-cp.slots
	}
}

func (cp *connPool) put(pc *pconn) {
	pc.idleAt = now()
	cp.mu.Lock()
	if cp.closed || len(cp.idle) >= maxIdlePerTarget {
		cp.mu.Unlock()
		_ = pc.nc.Close()
	} else {
		cp.idle = append(cp.idle, pc)
		cp.mu.Unlock()
	}
	cp.release()
}

func (cp *connPool) discard(pc *pconn) {
	_ = pc.nc.Close()
	cp.release()
}

// closeIdle closes the idle connections; with final, connections put back
// later are closed too (the target was removed).
func (cp *connPool) closeIdle(final bool) {
	cp.mu.Lock()
	idle := cp.idle
	cp.idle = nil
	cp.closed = cp.closed || final
	cp.mu.Unlock()
	for _, pc := range idle {
		_ = pc.nc.Close()
	}
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
	key := p.stickyKey(r)
	var triedBuf [maxAttempts]*target
	tried := triedBuf[:0]
	var lastErr error
	retried := false
	idem := idempotent(r)
	for range maxAttempts {
		t, err := p.claim(ctx, key, tried)
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
		t.stats.requests.Add(1)
		done, abort, err := p.leanAttempt(ctx, w, r, t, body, !idem, false)
		if _, stale := err.(*staleError); stale && idem {
			done, abort, err = p.leanAttempt(ctx, w, r, t, body, false, true)
		}
		t.release()
		if done {
			if abort {
				panic(http.ErrAbortHandler) // like ReverseProxy: the client sees a cut response
			}
			return
		}
		t.stats.errors.Add(1)
		lastErr = &targetError{addr: t.addr, err: err}
		if ctx.Err() != nil {
			break
		}
		var de *dialError
		if errors.As(err, &de) {
			t.markDown(p.opts.DownTime)
			continue
		}
		// Sent (perhaps in part) but no response: like the transport on a reused
		// connection, send again only an idempotent request, and only once.
		if retried || !idem || isTimeout(err) {
			break
		}
		retried = true
	}
	if lastErr == nil {
		lastErr = errNoTargets
	}
	p.handleError(w, r, lastErr)
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

const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyClose
)

// head is a parsed response head.
type head struct {
	status    int
	mode      int
	length    int64
	keepAlive bool
	conn      bool // has a Connection header: strip the fields it names
}

// readLine returns the next line without its line ending; the slice is valid
// until the next read.
func (pc *pconn) readLine(limit int) ([]byte, error) {
	line, err := pc.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		pc.long = append(pc.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(pc.long) > limit {
				return nil, errHeaderTooLarge
			}
			line, err = pc.br.ReadSlice('\n')
			pc.long = append(pc.long, line...)
		}
		line = pc.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readHead reads the status line and header of the final response into pc.hdr,
// forwarding 1xx interim responses (except 100, which the proxy did not ask for).
func (p *Proxy) readHead(pc *pconn, w http.ResponseWriter, r *http.Request, hd *head) error {
	for {
		line, err := pc.readLine(maxResponseHeaderBytes)
		if err != nil {
			return err
		}
		// HTTP/1.x SP 3DIGIT [SP reason]
		if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
			(len(line) > 12 && line[12] != ' ') {
			return errMalformedResponse
		}
		code := 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return errMalformedResponse
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 {
			return errMalformedResponse
		}
		*hd = head{status: code, keepAlive: line[7] == '1', length: -1}
		if err := pc.readFields(hd, true); err != nil {
			return err
		}
		if code >= 200 {
			break
		}
		switch code {
		case http.StatusSwitchingProtocols:
			return errUnexpected1xx
		case http.StatusContinue:
			continue
		}
		// 103 Early Hints and the like: pass them on.
		h := w.Header()
		pc.setHeader(h, hd, "")
		w.WriteHeader(code)
		clear(h)
	}
	switch {
	case r.Method == http.MethodHead || hd.status == http.StatusNoContent || hd.status == http.StatusNotModified:
		hd.mode = bodyNone
	case hd.mode == bodyChunked:
	case hd.length >= 0:
		hd.mode = bodyLength
	default:
		hd.mode = bodyClose
		hd.keepAlive = false
	}
	return nil
}

// readFields reads header (or trailer) fields up to the empty line into
// pc.hdr/pc.offs, strictly: no obsolete folding, valid names and values.
// With framing it interprets Content-Length, Transfer-Encoding and Connection.
func (pc *pconn) readFields(hd *head, framing bool) error {
	pc.hdr, pc.offs = pc.hdr[:0], pc.offs[:0]
	for {
		line, err := pc.readLine(maxResponseHeaderBytes)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if len(pc.hdr)+len(line) > maxResponseHeaderBytes {
			return errHeaderTooLarge
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !isTokenChar(c) {
				return errMalformedResponse // includes folding (leading space) and space before the colon
			}
		}
		if colon <= 0 {
			return errMalformedResponse
		}
		name, val := line[:colon], line[colon+1:]
		for len(val) > 0 && (val[0] == ' ' || val[0] == '\t') {
			val = val[1:]
		}
		for len(val) > 0 && (val[len(val)-1] == ' ' || val[len(val)-1] == '\t') {
			val = val[:len(val)-1]
		}
		for _, c := range val {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return errMalformedResponse
			}
		}
		if framing {
			switch {
			case asciiEqualFold(name, "Content-Length"):
				n, ok := parseLength(val)
				if !ok || (hd.length >= 0 && hd.length != n) {
					return errMalformedResponse
				}
				hd.length = n
			case asciiEqualFold(name, "Transfer-Encoding"):
				if hd.mode == bodyChunked || !asciiEqualFold(val, "chunked") {
					return errMalformedResponse // only a single "chunked" coding is supported
				}
				hd.mode = bodyChunked
			case asciiEqualFold(name, "Connection"):
				hd.conn = true
				if hasToken(val, "close") {
					hd.keepAlive = false
				}
			}
		}
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
		pc.hdr = append(pc.hdr, name...)
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
		pc.hdr = append(pc.hdr, val...)
		pc.offs = append(pc.offs, int32(len(pc.hdr)))
	}
}

// respSkip are response headers not passed to the client (hop-by-hop).
var respSkip = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Transfer-Encoding": true, "Upgrade": true,
}

// setHeader copies the fields read by readFields into h, keys prefixed by prefix
// (http.TrailerPrefix for trailers): one string and one slice for all values.
func (pc *pconn) setHeader(h http.Header, hd *head, prefix string) {
	n := len(pc.offs) / 3
	if n == 0 {
		return
	}
	s := string(pc.hdr)
	vals := make([]string, n)
	var conn []string
	if hd.conn {
		conn = make([]string, 0, 1)
		for i := 0; i < n; i++ {
			o := pc.offs[3*i:]
			if k := s[o[0]:o[1]]; strings.EqualFold(k, "Connection") {
				conn = append(conn, s[o[1]:o[2]])
			}
		}
	}
	for i := 0; i < n; i++ {
		o := pc.offs[3*i:]
		k, v := s[o[0]:o[1]], s[o[1]:o[2]]
		if !isCanonical(k) {
			k = http.CanonicalHeaderKey(k)
		}
		if respSkip[k] || (hd.mode == bodyChunked && k == "Content-Length") || (conn != nil && listed(conn, k)) {
			continue
		}
		if prefix != "" {
			k = prefix + k
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
}

// fill makes sure data is buffered, flushing the client first when the read
// would block (so streamed responses reach the client promptly).
func (pc *pconn) fill(flush func()) error {
	if pc.br.Buffered() > 0 {
		return nil
	}
	flush()
	_, err := pc.br.Peek(1)
	return err
}

// copyN copies n body bytes (n < 0: until EOF) from the upstream to w.
func (pc *pconn) copyN(w io.Writer, n int64, flush func()) error {
	for n != 0 {
		if err := pc.fill(flush); err != nil {
			if err == io.EOF {
				if n < 0 {
					return nil
				}
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		k := pc.br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := pc.br.Peek(k)
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = pc.br.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

// copyChunked copies a chunked body to w, then its trailers into h.
func (pc *pconn) copyChunked(w io.Writer, h http.Header, flush func()) error {
	for {
		if err := pc.fill(flush); err != nil {
			return err
		}
		line, err := pc.readLine(4096)
		if err != nil {
			return err
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errBadBody
		}
		if size == 0 {
			var hd head
			if err := pc.readFields(&hd, false); err != nil {
				return err
			}
			pc.setHeader(h, &hd, http.TrailerPrefix)
			return nil
		}
		if err := pc.copyN(w, size, flush); err != nil {
			return err
		}
		if line, err := pc.readLine(16); err != nil || len(line) != 0 {
			return errBadBody
		}
	}
}

func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto end
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
end:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	return n, true
}

func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		t := v[:i]
		for len(t) > 0 && (t[0] == ' ' || t[0] == '\t') {
			t = t[1:]
		}
		for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
			t = t[:len(t)-1]
		}
		if asciiEqualFold(t, tok) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isCanonical reports whether k is already in canonical MIME header form.
func isCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// isTokenChar reports whether c may appear in a header field name (RFC 9110 token).
func isTokenChar(c byte) bool { return tokenChars[c] }

// tokenChars marks the visible ASCII characters other than delimiters.
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()
