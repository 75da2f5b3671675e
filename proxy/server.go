package proxy

import (
	"log"
	"net/http"
	"time"
)

// Defaults of NewServer, used when the corresponding ServerOptions field is zero.
const (
	// DefaultReadHeaderTimeout bounds how long a client may take to send its
	// request line and headers (slowloris protection).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive client connection may stay idle.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds the request line and headers a client may send;
	// beyond it the server answers 431.
	DefaultMaxHeaderBytes = 64 << 10
)

// ServerOptions configures NewServer. The zero value gives safe defaults.
type ServerOptions struct {
	// ReadHeaderTimeout: zero means DefaultReadHeaderTimeout (10s); negative, none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout: zero means DefaultIdleTimeout (120s); negative, none.
	IdleTimeout time.Duration
	// MaxHeaderBytes: zero means DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// ReadTimeout and WriteTimeout bound a whole request's upload and a whole
	// response's download. Zero means none: uploads may be slow and responses
	// may stream (server-sent events, long polls); bound bodies with
	// Options.MaxBodyBytes and upstream waits with Options.ResponseHeaderTimeout.
	ReadTimeout, WriteTimeout time.Duration
	// ErrorLog receives the server's errors; nil means the log package's logger.
	ErrorLog *log.Logger
}

// NewServer returns an *http.Server for addr serving h (usually a *Proxy) with
// safe defaults for a server exposed to clients: a read-header timeout, an idle
// timeout and a header size limit (see ServerOptions). Start it with
// ListenAndServe or Serve; stop it with Shutdown, which stops accepting, closes
// idle connections and waits for the requests in flight to complete (drains).
// Shutdown does not wait for upgraded (hijacked) connections such as WebSockets:
// they end when either side closes them.
func NewServer(addr string, h http.Handler, opts ServerOptions) *http.Server {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	maxHdr := opts.MaxHeaderBytes
	if maxHdr <= 0 {
		maxHdr = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: pick(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       pick(opts.IdleTimeout, DefaultIdleTimeout),
		ReadTimeout:       max(opts.ReadTimeout, 0),
		WriteTimeout:      max(opts.WriteTimeout, 0),
		MaxHeaderBytes:    maxHdr,
		ErrorLog:          opts.ErrorLog,
	}
}
