package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// The retry policy, one for both request paths (lean.go and fallback.go).

// dialError marks an error from dialling: nothing of the request was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }

func (e *dialError) Unwrap() error { return e.err }

// maxAttempts bounds the targets one request tries.
const maxAttempts = 8

// targetError is an upstream error with the target it came from, for the log.
type targetError struct {
	addr string
	err  error
}

func (e *targetError) Error() string { return "target " + e.addr + ": " + e.err.Error() }

func (e *targetError) Unwrap() error { return e.err }

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
