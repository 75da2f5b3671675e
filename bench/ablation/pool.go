package ablation

import (
	"bufio"
	"net"
	"sync"
)

// Conn is a pooled upstream connection with its buffers.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer
}

// Pool keeps idle upstream connections to one address, newest first.
type Pool struct {
	Addr string
	mu   sync.Mutex
	idle []*Conn
}

// Get returns an idle connection, or dials a new one.
func (p *Pool) Get() (*Conn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, 4096), W: bufio.NewWriterSize(c, 4096)}, nil
}

// Put returns c to the pool for reuse.
func (p *Pool) Put(c *Conn) {
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}
