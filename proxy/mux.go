package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrInvalidRoute is returned (wrapped) by Mux.Handle for a host or path
// prefix that cannot be routed, or one already taken. Match it with errors.Is.
var ErrInvalidRoute = errors.New("proxy: invalid route")

// Mux routes requests to one handler per app (usually a *Proxy, each with its
// own targets, so that each app is deployed, paused and monitored on its own)
// by the request's host name and, optionally, a path prefix, as kamal-proxy
// does for the apps of one server. A request whose host no route names, or
// whose path no prefix of its host matches, is answered 404: never another
// app's backend. The zero value is an empty Mux, ready to use; it is safe for
// concurrent use, and routes may change while requests flow.
type Mux struct {
	mu     sync.Mutex // serializes changes
	routes atomic.Pointer[map[string][]muxRoute]
}

// muxRoute is one path prefix of a host.
type muxRoute struct {
	prefix string // "" or "/..." without a trailing slash
	h      http.Handler
}

// Handle routes the requests for host whose path is prefix or lies below it
// to h. Host is a DNS name (matched case-insensitively, without the port), or
// "*.example.com" for the names one label below example.com (an exact name
// wins over a wildcard). Prefix is "" or "/" for every path, or a path such as
// "/api", which takes "/api" and "/api/..." but not "/apis" (the longest
// prefix wins; the path is passed on unchanged). A route that exists already
// is an error wrapping ErrInvalidRoute.
func (m *Mux) Handle(host, prefix string, h http.Handler) error {
	host, err := normHost(host)
	if err != nil {
		return err
	}
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" && (prefix[0] != '/' || strings.ContainsAny(prefix, "?#")) {
		return fmt.Errorf("%w: path prefix %q must start with / and hold no ? or #", ErrInvalidRoute, prefix)
	}
	if h == nil {
		return fmt.Errorf("%w: nil handler for %s%s", ErrInvalidRoute, host, prefix)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.clone()
	rs := next[host]
	if slices.ContainsFunc(rs, func(r muxRoute) bool { return r.prefix == prefix }) {
		return fmt.Errorf("%w: %s%s is routed already", ErrInvalidRoute, host, prefix)
	}
	rs = append(slices.Clone(rs), muxRoute{prefix: prefix, h: h})
	slices.SortFunc(rs, func(a, b muxRoute) int { return len(b.prefix) - len(a.prefix) }) // longest first
	next[host] = rs
	m.routes.Store(&next)
	return nil
}

// Remove removes the route of host and prefix, if there is one.
func (m *Mux) Remove(host, prefix string) {
	host, err := normHost(host)
	if err != nil {
		return
	}
	prefix = strings.TrimRight(prefix, "/")
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.clone()
	rs := slices.DeleteFunc(slices.Clone(next[host]), func(r muxRoute) bool { return r.prefix == prefix })
	if len(rs) == 0 {
		delete(next, host)
	} else {
		next[host] = rs
	}
	m.routes.Store(&next)
}

// Hosts returns the host names routed, sorted (wildcards included): the
// names a certificate is needed for.
func (m *Mux) Hosts() []string {
	var hs []string
	if p := m.routes.Load(); p != nil {
		for h := range *p {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	return hs
}

// Handler returns the handler for r, or nil when no route matches.
func (m *Mux) Handler(r *http.Request) http.Handler {
	p := m.routes.Load()
	if p == nil {
		return nil
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 { // no allocation; routes never hold ':' (normHost)
		host = host[:i]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	rs, ok := (*p)[host]
	if !ok {
		if i := strings.IndexByte(host, '.'); i > 0 {
			rs, ok = (*p)["*"+host[i:]]
		}
	}
	if !ok {
		return nil
	}
	path := r.URL.Path
	for _, rt := range rs {
		if rt.prefix == "" || path == rt.prefix || strings.HasPrefix(path, rt.prefix) && path[len(rt.prefix)] == '/' {
			return rt.h
		}
	}
	return nil
}

// ServeHTTP sends r to the handler of its host and path, or answers 404.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := m.Handler(r)
	if h == nil {
		writeError(w, http.StatusNotFound, "not found: no app serves this host and path")
		return
	}
	h.ServeHTTP(w, r)
}

func (m *Mux) clone() map[string][]muxRoute {
	next := map[string][]muxRoute{}
	if p := m.routes.Load(); p != nil {
		for h, rs := range *p {
			next[h] = rs
		}
	}
	return next
}

// normHost checks a route's host name and returns it in lower case.
func normHost(host string) (string, error) {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	name := strings.TrimPrefix(h, "*.")
	if name == "" || strings.ContainsAny(name, ":/*[] ") || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return "", fmt.Errorf("%w: host %q (want a name such as app.example.com or *.example.com)", ErrInvalidRoute, host)
	}
	return h, nil
}
