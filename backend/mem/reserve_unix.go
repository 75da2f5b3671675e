//go:build unix

package mem

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// reservation holds a loopback port for an app that is still booting: the
// socket is bound but not listening, so connections to it are refused and no
// other socket (an outgoing connection's ephemeral port included) can take it.
type reservation struct {
	addr string
	fd   int
}

// reserve binds a TCP socket to a free port on 127.0.0.1 without listening.
func reserve() (*reservation, error) {
	// As package net does: no fork may copy the descriptor before it is close-on-exec.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("mem: reserve a port: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("mem: reserve a port: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("mem: reserve a port: %w", err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	return &reservation{addr: addr, fd: fd}, nil
}

// listen starts listening on the reserved port; the reservation is used up.
func (r *reservation) listen() (net.Listener, error) {
	if err := syscall.Listen(r.fd, syscall.SOMAXCONN); err != nil {
		r.close()
		return nil, fmt.Errorf("listen on %s: %w", r.addr, err)
	}
	f := os.NewFile(uintptr(r.fd), r.addr)
	defer f.Close() // FileListener holds its own copy of the descriptor
	return net.FileListener(f)
}

// close gives the port up without ever listening.
func (r *reservation) close() { _ = syscall.Close(r.fd) }
