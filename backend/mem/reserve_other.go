//go:build !unix

package mem

import "net"

// reservation remembers a loopback port for an app that is still booting.
// Without unix sockets' bind-then-listen, the port is only remembered: another
// socket may take it before the app listens.
type reservation struct{ addr string }

// reserve picks a free port on 127.0.0.1.
func reserve() (*reservation, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return &reservation{addr: ln.Addr().String()}, nil
}

// listen starts listening on the remembered port.
func (r *reservation) listen() (net.Listener, error) { return net.Listen("tcp", r.addr) }

// close gives the port up.
func (r *reservation) close() {}
