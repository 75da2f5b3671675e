package mem

import (
	"io"
	"net"
	"sync"
	"time"
)

// forwarder fronts a machine as Docker's published port does: it listens from
// the moment the machine starts, accepts every connection, and forwards it to
// the app's own address, or closes it at once when the app does not accept
// (it is booting, never listens, or stopped listening while it shuts down).
type forwarder struct {
	ln      net.Listener
	backend string // the app's own address

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newForwarder(backend string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go f.forward(c)
	}
}

// track registers c; it reports false once the forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
		c.Close()
	}
}

// forward pipes c to the app, or closes c when the app does not accept.
func (f *forwarder) forward(c net.Conn) {
	defer f.wg.Done()
	up, err := net.DialTimeout("tcp", f.backend, time.Second)
	if err != nil {
		f.untrack(c) // what docker-proxy does: the client sees its connection closed
		return
	}
	if !f.track(up) {
		up.Close()
		f.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // pass the half-close on
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	f.untrack(c, up)
}

// close stops accepting and closes every connection; wait waits for the
// goroutines to end.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	cs := f.conns
	f.conns = map[net.Conn]struct{}{}
	f.mu.Unlock()
	f.ln.Close()
	for c := range cs {
		c.Close()
	}
}

func (f *forwarder) wait() { f.wg.Wait() }
