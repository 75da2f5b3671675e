package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cutover/deploy/examples/cutover/internal/edge"
	"github.com/cutover/deploy/proxy"
)

// DefaultMaxBodyBytes is serve's default --max-body-bytes: the largest
// request body the proxy accepts (413 beyond it).
const DefaultMaxBodyBytes = 100 << 20

// frontFlags are serve's flags for the public port: TLS, host names and
// the limits a port open to the internet needs.
type frontFlags struct {
	bind       string
	hosts      []string
	httpsPort  int
	acme       bool
	acmeDir    string
	acmeEmail  string
	acmeCA     string
	certFile   string
	keyFile    string
	maxBody    int64
	maxHeader  int
	readHeader time.Duration
	idle       time.Duration
	bodyIdle   time.Duration
	apps       []appSpec // --app: more apps
}

func addFrontFlags(fs *flag.FlagSet) *frontFlags {
	f := &frontFlags{}
	fs.StringVar(&f.bind, "bind", "127.0.0.1", "address the public ports listen on (0.0.0.0 for every interface)")
	fs.Func("host", "a host name the app serves (repeat, or comma-separated); with it, other hosts get 404; required with TLS", func(v string) error {
		f.hosts = append(f.hosts, hostList(v)...)
		return nil
	})
	fs.Func("app", "serve another app too: PATH=HOST[,HOST] (its fly.toml and host names; repeat for more); needs --host for the first app", func(v string) error {
		a, err := parseApp(v)
		if err == nil {
			f.apps = append(f.apps, a)
		}
		return err
	})
	fs.IntVar(&f.httpsPort, "https-port", 0, "serve HTTPS on this port (HTTP on --port then redirects to it and answers ACME challenges); 0: no TLS")
	fs.BoolVar(&f.acme, "acme", false, "with --https-port: get certificates from an ACME CA (cached in <state-dir>/acme, reused after a restart)")
	fs.StringVar(&f.acmeDir, "acme-directory", edge.DefaultACMEDirectory, "the ACME CA's directory URL")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "contact address given to the ACME CA")
	fs.StringVar(&f.acmeCA, "acme-ca-file", "", "PEM file of CA certificates to trust for the ACME directory's HTTPS (a private or test CA); default: the system's")
	fs.StringVar(&f.certFile, "cert", "", "with --https-port: certificate file (PEM, chain after the leaf) instead of ACME")
	fs.StringVar(&f.keyFile, "key", "", "the private key file of --cert")
	fs.Int64Var(&f.maxBody, "max-body-bytes", DefaultMaxBodyBytes, "largest request body accepted (413 beyond it); 0: no limit")
	fs.IntVar(&f.maxHeader, "max-header-bytes", proxy.DefaultMaxHeaderBytes, "largest request line and headers accepted (431 beyond it)")
	fs.DurationVar(&f.readHeader, "read-header-timeout", proxy.DefaultReadHeaderTimeout, "how long a client may take to send its request headers")
	fs.DurationVar(&f.idle, "idle-timeout", proxy.DefaultIdleTimeout, "how long an idle keep-alive client connection is kept")
	fs.DurationVar(&f.bodyIdle, "body-idle-timeout", edge.DefaultBodyIdleTimeout, "how long a request body may go without a byte arriving")
	return f
}

// options checks the flags and returns the front door's options; every
// failure is a usage error.
func (f *frontFlags) options(stateDir string) (edge.Options, error) {
	hosts := f.hosts
	for _, a := range f.apps {
		hosts = append(hosts, a.hosts...)
	}
	o := edge.Options{
		Hosts: hosts,
		Server: proxy.ServerOptions{ReadHeaderTimeout: orNone(f.readHeader), IdleTimeout: orNone(f.idle),
			MaxHeaderBytes: f.maxHeader},
		BodyIdleTimeout: orNone(f.bodyIdle),
		HTTPSPort:       f.httpsPort,
	}
	tlsFlags := f.acme || f.certFile != "" || f.keyFile != ""
	switch {
	case f.httpsPort < 0 || f.httpsPort > 65535:
		return o, usagef("--https-port %d out of range", f.httpsPort)
	case f.httpsPort == 0 && tlsFlags:
		return o, usagef("--acme, --cert and --key need --https-port")
	case f.httpsPort != 0 && !tlsFlags:
		return o, usagef("--https-port needs certificates: pass --acme, or --cert and --key")
	case f.acme && (f.certFile != "" || f.keyFile != ""):
		return o, usagef("pass either --acme or --cert and --key, not both")
	case len(f.apps) > 0 && len(f.hosts) == 0:
		return o, usagef("--app needs the host names of the first app too: pass --host NAME")
	case f.maxBody < 0 || f.maxHeader <= 0:
		return o, usagef("--max-body-bytes must be at least 0 and --max-header-bytes positive")
	}
	if f.acme {
		a := &edge.ACME{CacheDir: filepath.Join(stateDir, "acme"), DirectoryURL: f.acmeDir, Email: f.acmeEmail}
		if f.acmeCA != "" {
			pem, err := os.ReadFile(f.acmeCA)
			if err != nil {
				return o, usagef("cannot read --acme-ca-file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, usagef("--acme-ca-file %s holds no PEM certificate", f.acmeCA)
			}
			a.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
				Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}
		o.ACME = a
	} else {
		o.CertFile, o.KeyFile = f.certFile, f.keyFile
	}
	if err := o.Validate(); err != nil {
		return o, usagef("%v: pass --host NAME (repeat it for each name)", err)
	}
	return o, nil
}

// handler returns what the public port serves: px, behind a Mux of the
// --host names when some are given (other hosts then get 404; the apps of
// --app are added to it).
func (f *frontFlags) handler(px *proxy.Proxy) (http.Handler, *proxy.Mux, error) {
	if len(f.hosts) == 0 {
		return px, nil, nil
	}
	mux := new(proxy.Mux)
	for _, h := range f.hosts {
		if err := mux.Handle(h, "", px); err != nil {
			return nil, nil, usagef("--host %s: %v", h, err)
		}
	}
	return mux, mux, nil
}

// listenTLS listens on the HTTPS port, or returns nil without TLS. handed,
// when not nil, is the HTTPS port taken over from the daemon an upgrade
// replaces: it is used as is.
func (f *frontFlags) listenTLS(handed net.Listener) (net.Listener, error) {
	if f.httpsPort == 0 || handed != nil {
		return handed, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(f.bind, strconv.Itoa(f.httpsPort)))
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s:%d (%v): pass another --https-port", f.bind, f.httpsPort, err)
	}
	return ln, nil
}

// orNone maps a flag's 0 ("none") to the negative value the options use for none.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
