// Package edge is the cutover daemon's public front door: plain HTTP, or
// HTTPS with certificates from an ACME CA (golang.org/x/crypto/acme/autocert)
// or from files, HTTP redirected to HTTPS with the ACME HTTP-01 challenge
// answered on the HTTP port, HTTP/2 for TLS clients, and the timeouts and
// size limits a port open to the internet needs.
//
// TLS belongs to the daemon: the proxy package stays importable on its own
// and serves whatever handler a Front is given (a *proxy.Proxy or a
// *proxy.Mux of several apps).
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/cutover/deploy/proxy"
)

// Defaults of Options, used when the corresponding field is zero.
const (
	// DefaultBodyIdleTimeout is how long a request body may go without a
	// byte arriving (a slow-body attack); the upload as a whole is not bounded.
	DefaultBodyIdleTimeout = 60 * time.Second
	// DefaultACMEDirectory is Let's Encrypt's production directory.
	DefaultACMEDirectory = autocert.DefaultACMEDirectory
)

// ErrNoHosts is returned (wrapped) by New when TLS is asked for without a
// list of host names: an ACME CA would be asked for certificates for any
// name a client sends.
var ErrNoHosts = errors.New("edge: TLS needs the list of host names it serves")

// Options configures a Front. The zero value serves plain HTTP with safe
// server defaults.
type Options struct {
	// Hosts are the host names served over TLS (no wildcards with ACME: the
	// HTTP-01 challenge cannot prove them). Required when TLS is on.
	Hosts []string

	// ACME, when set, turns TLS on with certificates obtained and renewed
	// from an ACME CA.
	ACME *ACME

	// CertFile and KeyFile, when both set, turn TLS on with this certificate
	// (PEM; the chain may follow the leaf) instead of ACME.
	CertFile, KeyFile string

	// Server holds the client-side timeouts and header size limit of both
	// servers (see proxy.ServerOptions: read-header 10s, idle 120s, headers
	// 64 KiB by default).
	Server proxy.ServerOptions

	// BodyIdleTimeout bounds how long a request body may go without a byte
	// arriving; the request then fails (the proxy answers 502 or 400, or the
	// connection closes). Zero means DefaultBodyIdleTimeout (60s); negative,
	// none.
	BodyIdleTimeout time.Duration

	// HTTPSPort is the port HTTP requests are redirected to; zero means 443.
	// Set it when the HTTPS listener is not on 443 (tests, a port mapping).
	HTTPSPort int

	// ErrorLog receives the servers' errors; nil means the log package's logger.
	ErrorLog *log.Logger
}

// ACME configures certificates from an ACME CA.
type ACME struct {
	// CacheDir keeps the account key and the certificates, so that a restart
	// reuses them (a subdirectory of the daemon's state directory). Required.
	CacheDir string
	// DirectoryURL is the CA's directory; empty means DefaultACMEDirectory
	// (Let's Encrypt).
	DirectoryURL string
	// Email is the contact address given to the CA; optional.
	Email string
	// HTTPClient talks to the CA; nil means http.DefaultClient. Tests give
	// one that trusts their CA's HTTPS certificate.
	HTTPClient *http.Client
}

// TLS reports whether o asks for TLS.
func (o Options) TLS() bool { return o.ACME != nil || o.CertFile != "" || o.KeyFile != "" }

// Validate reports options that cannot serve: TLS without hosts
// (ErrNoHosts), only one of CertFile and KeyFile, ACME without a cache
// directory or with a wildcard host.
func (o Options) Validate() error {
	if !o.TLS() {
		return nil
	}
	if len(o.Hosts) == 0 {
		return fmt.Errorf("%w: give the names clients use (such as app.example.com)", ErrNoHosts)
	}
	if o.ACME == nil && (o.CertFile == "" || o.KeyFile == "") {
		return errors.New("edge: give both the certificate file and the key file")
	}
	if o.ACME != nil {
		if o.CertFile != "" || o.KeyFile != "" {
			return errors.New("edge: give either ACME or a certificate and key, not both")
		}
		if o.ACME.CacheDir == "" {
			return errors.New("edge: ACME needs a cache directory")
		}
		for _, h := range o.Hosts {
			if strings.Contains(h, "*") {
				return fmt.Errorf("edge: ACME cannot obtain a certificate for the wildcard %q over HTTP-01: give a certificate file", h)
			}
		}
	}
	return nil
}

// Front serves a handler on an HTTP listener and, with TLS, an HTTPS one.
type Front struct {
	opts    Options
	h       http.Handler
	mgr     *autocert.Manager
	httpSrv *http.Server
	tlsSrv  *http.Server // nil without TLS
	hosts   proxy.Mux    // opts.Hosts, matched as the proxy matches them

	draining atomic.Bool // responses close their connections (see Drain)
	mu       sync.Mutex
	lns      []*stopListener // what Serve accepts on, for Drain to stop
	conns    int             // client connections open, on both servers
	changed  chan struct{}   // closed and replaced when conns changes
}

// New returns a Front for h, or an error when the options cannot serve
// (see Validate) or the certificate files cannot be loaded.
func New(h http.Handler, opts Options) (*Front, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f := &Front{opts: opts, changed: make(chan struct{})}
	f.h = f.closing(bodyIdle(h, opts.BodyIdleTimeout))
	if !opts.TLS() {
		f.httpSrv = proxy.NewServer("", f.h, opts.Server)
		f.httpSrv.ConnState = f.connState
		return f, nil
	}
	for _, h := range opts.Hosts {
		if err := f.hosts.Handle(h, "", http.NotFoundHandler()); err != nil {
			return nil, err
		}
	}
	var tc *tls.Config
	var httpH http.Handler = http.HandlerFunc(f.redirect)
	if opts.ACME != nil {
		a := opts.ACME
		dir := a.DirectoryURL
		if dir == "" {
			dir = DefaultACMEDirectory
		}
		f.mgr = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Clean(a.CacheDir)),
			HostPolicy: hostPolicy(opts.Hosts),
			Email:      a.Email,
			Client:     &acme.Client{DirectoryURL: dir, HTTPClient: a.HTTPClient},
		}
		tc = f.mgr.TLSConfig()
		httpH = f.mgr.HTTPHandler(httpH) // answers HTTP-01 challenges, redirects the rest
	} else {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("edge: certificate: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	}
	tc.MinVersion = tls.VersionTLS12
	f.httpSrv = proxy.NewServer("", f.closing(httpH), opts.Server)
	f.tlsSrv = proxy.NewServer("", f.h, opts.Server)
	f.tlsSrv.TLSConfig = tc
	f.httpSrv.ConnState, f.tlsSrv.ConnState = f.connState, f.connState
	return f, nil
}

// closing wraps h so that, once the Front drains, each response closes its
// connection: "Connection: close" over HTTP/1, a GOAWAY over HTTP/2. The
// client's next request then opens a new connection.
func (f *Front) closing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// connState counts the open client connections.
func (f *Front) connState(_ net.Conn, st http.ConnState) {
	d := 0
	switch st {
	case http.StateNew:
		d = 1
	case http.StateClosed, http.StateHijacked:
		d = -1
	default:
		return
	}
	f.mu.Lock()
	f.conns += d
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Drain hands the clients over to another process serving the same
// listening sockets (a daemon upgrade): Serve stops accepting (the sockets
// stay open in the other process, which accepts from then on), every
// response closes its connection, and Drain returns once no client
// connection is open, or ctx ends. It does not close connections: Shutdown,
// after it, closes those left idle and waits for the requests in flight.
//
// Closing an idle keep-alive connection at once, as Shutdown does, races
// with a client that sends its next request on it: a POST would fail. Over a
// connection that answers "Connection: close" (a GOAWAY over HTTP/2) a
// client never sends another request.
func (f *Front) Drain(ctx context.Context) error {
	f.mu.Lock()
	f.draining.Store(true)
	lns := f.lns
	f.mu.Unlock()
	for _, l := range lns {
		l.stop()
	}
	for {
		f.mu.Lock()
		n, changed := f.conns, f.changed
		f.mu.Unlock()
		if n <= 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("edge: drain: %d client connections still open: %w", n, ctx.Err())
		}
	}
}

// errStopped is what a stopListener's Accept returns once Drain stopped it.
var errStopped = errors.New("edge: stopped accepting: another process serves the socket")

// stopListener is a listener Drain can stop without Serve taking it for a
// failure.
type stopListener struct {
	net.Listener
	once    sync.Once
	stopped atomic.Bool
}

func (l *stopListener) stop() {
	l.stopped.Store(true)
	l.once.Do(func() { _ = l.Listener.Close() })
}

func (l *stopListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.stopped.Load() {
		return nil, errStopped
	}
	return c, err
}

func (l *stopListener) Close() error {
	var err error
	l.once.Do(func() { err = l.Listener.Close() })
	return err
}

// Serve serves HTTP on httpLn and, with TLS, HTTPS on tlsLn (nil without
// TLS), until Shutdown or Close; it then returns nil. A listener's failure
// stops both and is returned.
func (f *Front) Serve(httpLn, tlsLn net.Listener) error {
	if (tlsLn != nil) != (f.tlsSrv != nil) {
		if tlsLn != nil {
			tlsLn.Close()
		}
		httpLn.Close()
		return errors.New("edge: give an HTTPS listener exactly when TLS is on")
	}
	errs := make(chan error, 2)
	n := 1
	hl, tl := &stopListener{Listener: httpLn}, (*stopListener)(nil)
	if tlsLn != nil {
		tl = &stopListener{Listener: tlsLn}
	}
	f.mu.Lock()
	f.lns = append(f.lns, hl)
	if tl != nil {
		f.lns = append(f.lns, tl)
	}
	if f.draining.Load() { // Drain ran before Serve: accept nothing
		hl.stop()
		if tl != nil {
			tl.stop()
		}
	}
	f.mu.Unlock()
	go func() { errs <- f.httpSrv.Serve(hl) }()
	if tl != nil {
		n++
		go func() { errs <- f.tlsSrv.Serve(tls.NewListener(tl, f.tlsSrv.TLSConfig)) }()
	}
	var first error
	for range n {
		err := <-errs
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, errStopped) {
			err = nil
		}
		if err != nil && first == nil {
			first = err
			_ = f.Close()
		}
	}
	return first
}

// Shutdown stops accepting, lets the requests in flight complete (or ctx
// end) on both servers.
func (f *Front) Shutdown(ctx context.Context) error {
	err := f.httpSrv.Shutdown(ctx)
	if f.tlsSrv != nil {
		err = errors.Join(err, f.tlsSrv.Shutdown(ctx))
	}
	return err
}

// Close closes both servers and their connections at once.
func (f *Front) Close() error {
	err := f.httpSrv.Close()
	if f.tlsSrv != nil {
		err = errors.Join(err, f.tlsSrv.Close())
	}
	return err
}

// redirect sends a plain HTTP request to HTTPS on the same host: 308 keeps
// the method and body of a POST; a host not served is 404.
func (f *Front) redirect(w http.ResponseWriter, r *http.Request) {
	if f.hosts.Handler(r) == nil {
		http.Error(w, "not found: no app serves this host", http.StatusNotFound)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if p := f.opts.HTTPSPort; p != 0 && p != 443 {
		host = net.JoinHostPort(host, fmt.Sprint(p))
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// hostPolicy allows the certificates of hosts only. The HTTP-01 handler asks
// with the request's Host, which carries the port when it is not 80.
func hostPolicy(hosts []string) autocert.HostPolicy {
	allow := autocert.HostWhitelist(hosts...)
	return func(ctx context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return allow(ctx, host)
	}
}

// bodyIdle wraps h so that a request body that goes idle times out.
func bodyIdle(h http.Handler, d time.Duration) http.Handler {
	if d == 0 {
		d = DefaultBodyIdleTimeout
	}
	if d < 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &idleBody{ReadCloser: r.Body, rc: rc, d: d}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// idleBody moves the read deadline forward on each read, and clears it once
// the body was read whole: a deadline left behind would cut a long response
// (the server reads the connection in the background to notice a client that
// goes away). After a failed read the deadline stays, so that the server
// does not wait for the rest of a stalled body.
type idleBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.clear()
	}
	return n, err
}

func (b *idleBody) clear() { _ = b.rc.SetReadDeadline(time.Time{}) }
