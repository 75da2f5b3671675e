//go:build !linux

package proxy

import "net"

// peeker is a no-op where no non-blocking peek is implemented: an idle
// connection closed by the backend is then detected when it is used, and only
// idempotent requests are retried.
type peeker struct{}

func (pk *peeker) init(net.Conn) {}
func (pk *peeker) alive() bool   { return true }
