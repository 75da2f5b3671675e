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
	fn  func(fd uintptr) bool
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
	pk.fn = func(fd uintptr) bool {
		pk.n, _, pk.err = syscall.Recvfrom(int(fd), pk.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}
}

func (pk *peeker) alive() bool {
	if pk.raw == nil {
		return true
	}
	if err := pk.raw.Read(pk.fn); err != nil {
		return false
	}
	return pk.err == syscall.EAGAIN
}
