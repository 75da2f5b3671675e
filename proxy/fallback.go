package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// The fallback path.
//
// The requests the lean path (lean.go) does not take (upgrades, Expect,
// request trailers, large or streamed bodies, or any request when
// Options.Transport is set) go through httputil.ReverseProxy: rewrite prepares
// the outbound request, and upstream, its RoundTripper, claims a target for each
// attempt under the retry policy (retry.go) and sends the request with the
// transport. The target's claim lasts until the ReverseProxy closes the
// response body (claimedBody).

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

// upstream is the RoundTripper the ReverseProxy uses: it claims a target for
// each attempt the retry policy (retry.go) allows and sends the request there
// with the transport.
type upstream struct{ p *Proxy }

func (u upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	p := u.p
	body, _ := req.Body.(*bodyReader)
	a := p.attempts(req.Context(), p.stickyKey(req), idempotent(req))
	for t := a.next(); t != nil; t = a.next() {
		res, err := p.send(req, t)
		if err == nil {
			return res, nil
		}
		t.release()
		if a.failed(t, err, body == nil || body.b.replayable()) && body != nil {
			req.Body, _ = body.b.getBody() // replayable, so it cannot fail
		}
	}
	return nil, a.err()
}

// send sends req to t with the transport. On success the claim on t lasts
// until the response body is closed; on failure the caller releases it.
func (p *Proxy) send(req *http.Request, t *target) (*http.Response, error) {
	req.URL.Host = t.addr
	start := now()
	res, err := p.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
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
