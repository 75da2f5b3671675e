package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// What both request paths share on the way out and back: the forwarding
// headers, and the answers the proxy writes itself when no target answers.

// forwarded returns the X-Forwarded-For, -Host and -Proto values for a request
// received from r.RemoteAddr (see Options.TrustForwarded).
func forwarded(r *http.Request, trust bool) (xff, xfh, xfp string) {
	xff = clientIP(r.RemoteAddr)
	xfh, xfp = r.Host, "http"
	if r.TLS != nil {
		xfp = "https"
	}
	if !trust {
		return xff, xfh, xfp
	}
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" {
		xfh = v
	}
	if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
		xfp = v
	}
	return xff, xfh, xfp
}

// clientIP returns the host part of a "host:port" remote address, without
// brackets, and without allocating.
func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 && strings.IndexByte(remote[i:], ']') < 0 {
		remote = remote[:i]
	}
	if len(remote) > 1 && remote[0] == '[' && remote[len(remote)-1] == ']' {
		remote = remote[1 : len(remote)-1]
	}
	return remote
}

// tooLarge reports whether err, or the error that ended reading r's body, is
// the MaxBodyBytes limit.
func tooLarge(r *http.Request, err error) bool {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return true
	}
	if br, ok := r.Body.(*bodyReader); ok {
		return errors.As(br.b.err, &mbe)
	}
	return false
}

func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case tooLarge(r, err):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, errNoTargets):
		writeError(w, http.StatusServiceUnavailable, "no healthy targets")
	case errors.Is(err, errPaused):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "service unavailable: paused for maintenance")
	case errors.Is(err, errOverloaded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "service unavailable: every target is at its concurrency limit")
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		w.WriteHeader(http.StatusBadGateway)
	default:
		if p.log.IsError() { // the arguments would allocate even for a null logger
			target := ""
			var te *targetError
			if errors.As(err, &te) {
				target, err = te.addr, te.err
			}
			p.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "target", target, "error", err)
		}
		writeError(w, http.StatusBadGateway, "bad gateway: upstream unavailable")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
