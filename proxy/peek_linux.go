package proxy

import (
	"net"
	"syscall"
)

// peeker checks an idle connection with a non-blocking MSG_PEEK read: EOF means
// the backend closed it while idle, data means it sent something unasked for.
// Either way the connection is not used.
type peeker struct {
	raw syscall.RawConn
	fn  func(fd uintptr)
	n   int
	err error
	buf [1]byte
}

func (pk *peeker) init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	pk.raw = raw
	pk.fn = func(fd uintptr) {
		pk.n, _, pk.err = syscall.Recvfrom(int(fd), pk.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}
}

// alive peeks through Control, not Read: the peek never waits, and an idle
// connection's read deadline may have passed (attempts leave theirs set).
func (pk *peeker) alive() bool {
	if pk.raw == nil {
		return true
	}
	if err := pk.raw.Control(pk.fn); err != nil {
		return false
	}
	return pk.err == syscall.EAGAIN
}
