package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// The lean path's upstream connections: a per-target pool, and the deadline
// and hook handling that lets a client that goes away interrupt a request.

// pconn is a pooled upstream connection.
type pconn struct {
	nc     net.Conn
	br     *bufio.Reader // reads through pc.Read
	bw     *bufio.Writer // writes through pc.Write
	idleAt int64         // now() when put back
	reused bool
	cancel func() // interrupts blocked reads and writes (the client went away)
	peek   peeker

	// The attempt in progress (see arm). The read deadline is not cleared
	// when an attempt ends; the next one sets its own.
	ctx   context.Context
	stop  func() bool // stops the armed hook; nil while none is armed
	soft  bool        // the read deadline only ends the first wait (hookDelay)
	hard  time.Time   // the read deadline after it: the response-header timeout, or none
	final bool        // bw's last flush, which fits its buffer: no hook needed

	long []byte  // a line longer than br's buffer
	hdr  []byte  // the header block: names and values
	offs []int32 // per field: name start, value start, value end in hdr
	num  [20]byte
}

func newPconn(nc net.Conn) *pconn {
	pc := &pconn{nc: nc}
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	pc.bw = bufio.NewWriterSize(pc, 4<<10)
	pc.cancel = func() { _ = nc.SetDeadline(aLongTimeAgo) }
	pc.peek.init(nc)
	return pc
}

// arm makes sure the client-disconnect hook is armed for the attempt, and
// reports the client's context error if it went away. Whoever moves the read
// deadline checks the context after it (arm does), so a past deadline the hook
// set is never overwritten unnoticed.
func (pc *pconn) arm() error {
	if err := pc.ctx.Err(); err != nil {
		return err
	}
	if pc.stop == nil && pc.ctx.Done() != nil {
		pc.stop = context.AfterFunc(pc.ctx, pc.cancel)
	}
	return nil
}

// Read reads from the upstream connection for br. When the first wait for the
// response ends at hookDelay, it moves the deadline to the response-header
// timeout (or none), arms the hook and reads on.
func (pc *pconn) Read(b []byte) (int, error) {
	n, err := pc.nc.Read(b)
	if err != nil && pc.soft && errors.Is(err, os.ErrDeadlineExceeded) {
		pc.soft = false
		dl := pc.hard
		if !dl.IsZero() && time.Until(dl) < lastLook {
			// This goroutine ran only after the timeout had (nearly) passed; a
			// response that came in time must still be read, as a single
			// blocking read would have.
			dl = time.Now().Add(lastLook)
		}
		_ = pc.nc.SetReadDeadline(dl)
		if err := pc.arm(); err != nil {
			return 0, err
		}
		n, err = pc.nc.Read(b)
	}
	return n, err
}

// lastLook is how long a read whose response-header timeout passed while it
// waited to run still looks for a response that arrived in time.
const lastLook = time.Millisecond

// Write writes to the upstream connection for bw. Only the last flush of a
// request that fits bw's buffer goes out without the hook: on a connection
// with nothing left unsent it cannot block. Anything larger might, on a
// backend that does not read.
func (pc *pconn) Write(b []byte) (int, error) {
	if !pc.final {
		if err := pc.arm(); err != nil {
			return 0, err
		}
	}
	return pc.nc.Write(b)
}

var aLongTimeAgo = time.Unix(1, 0)

// connPool holds a target's idle connections (LIFO) and caps its connections.
type connPool struct {
	mu     sync.Mutex
	idle   []*pconn
	closed bool
	slots  chan struct{} // nil: no cap; set before the target is published
}

func (cp *connPool) init(maxConns int) {
	if maxConns > 0 && cp.slots == nil {
		cp.slots = make(chan struct{}, maxConns)
	}
}

// get returns an idle connection, or dials one when there is none or fresh is
// set. With check, an idle connection is peeked at first (see peeker).
func (cp *connPool) get(ctx context.Context, p *Proxy, addr string, check, fresh bool) (*pconn, error) {
	if cp.slots != nil {
		select {
		case cp.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	oldest := now() - int64(p.opts.IdleConnTimeout)
	for !fresh {
		cp.mu.Lock()
		n := len(cp.idle)
		if n == 0 {
			cp.mu.Unlock()
			break
		}
		pc := cp.idle[n-1]
		cp.idle[n-1] = nil
		cp.idle = cp.idle[:n-1]
		cp.mu.Unlock()
		if pc.idleAt >= oldest && pc.br.Buffered() == 0 && (!check || pc.peek.alive()) {
			pc.reused = true
			return pc, nil
		}
		_ = pc.nc.Close()
	}
	nc, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		cp.release()
		return nil, &dialError{err}
	}
	return newPconn(nc), nil
}

func (cp *connPool) release() {
	if cp.slots != nil {
		<-cp.slots
	}
}

func (cp *connPool) put(pc *pconn) {
	pc.idleAt = now()
	cp.mu.Lock()
	if cp.closed || len(cp.idle) >= maxIdlePerTarget {
		cp.mu.Unlock()
		_ = pc.nc.Close()
	} else {
		cp.idle = append(cp.idle, pc)
		cp.mu.Unlock()
	}
	cp.release()
}

func (cp *connPool) discard(pc *pconn) {
	_ = pc.nc.Close()
	cp.release()
}

// closeIdle closes the idle connections; with final, connections put back
// later are closed too (the target was removed).
func (cp *connPool) closeIdle(final bool) {
	cp.mu.Lock()
	idle := cp.idle
	cp.idle = nil
	cp.closed = cp.closed || final
	cp.mu.Unlock()
	for _, pc := range idle {
		_ = pc.nc.Close()
	}
}
