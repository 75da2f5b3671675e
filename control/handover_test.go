//go:build unix

package control_test

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/proxy"
)

// Listeners handed over (several, by name) keep their addresses and the
// connections waiting on them: the new owner accepts them; Done reports
// ready once, or not ready when the taker gives up; a refusal's reason
// reaches the taker.
func TestHandover(t *testing.T) {
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pub.Close()
	tlsPort, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tlsPort.Close()
	done := make(chan bool, 2)
	refuse := error(nil)
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	s := &control.Server{Router: px, Handover: &control.Handover{
		Files: func() (map[string]*os.File, error) {
			if refuse != nil {
				return nil, refuse
			}
			f, err := pub.(*net.TCPListener).File()
			if err != nil {
				return nil, err
			}
			f2, err := tlsPort.(*net.TCPListener).File()
			return map[string]*os.File{"public": f, "https": f2}, err
		},
		Done: func(ready bool) { done <- ready },
	}}
	c := serve(t, s)
	path := c.Path()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Given up: the old one goes on.
	tk, err := control.TakeOver(ctx, path)
	require.NoError(t, err)
	for _, f := range tk.Files {
		f.Close()
	}
	tk.Abandon()
	assert.False(t, <-done)
	// Handing a listener over leaves it non-blocking: a blocking accept could
	// not be woken by Close, and the old daemon's shutdown would hang.
	assertNonBlocking(t, pub)
	assertNonBlocking(t, tlsPort)

	tk, err = control.TakeOver(ctx, path)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), tk.PID)
	ln, err := net.FileListener(tk.Files["public"])
	require.NoError(t, err)
	tk.Files["public"].Close()
	defer ln.Close()
	assert.Equal(t, pub.Addr().String(), ln.Addr().String())
	require.Len(t, tk.Files, 2)
	ln2, err := net.FileListener(tk.Files["https"])
	require.NoError(t, err)
	tk.Files["https"].Close()
	defer ln2.Close()
	assert.Equal(t, tlsPort.Addr().String(), ln2.Addr().String())
	require.NoError(t, tk.Ready())
	assert.True(t, <-done)
	pub.Close() // the old one stops accepting: the sockets stay open in the new
	tlsPort.Close()
	for _, l := range []net.Listener{ln, ln2} {
		conn, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		defer conn.Close()
		acc, err := l.Accept()
		require.NoError(t, err)
		acc.Close()
	}

	refuse = errors.New("a deploy runs")
	_, err = control.TakeOver(ctx, path)
	assert.EqualError(t, err, "a deploy runs")
}

func TestHandoverRefusedWithoutHandover(t *testing.T) {
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	c := serve(t, &control.Server{Router: px})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := control.TakeOver(ctx, c.Path())
	assert.ErrorIs(t, err, control.ErrNoHandover)
}

// assertNonBlocking fails t unless l's descriptor is in non-blocking mode.
func assertNonBlocking(t *testing.T, l net.Listener) {
	t.Helper()
	rc, err := l.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var flags uintptr
	var errno syscall.Errno
	require.NoError(t, rc.Control(func(fd uintptr) {
		flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	}))
	require.Zero(t, errno)
	assert.NotZero(t, flags&syscall.O_NONBLOCK, "%s: O_NONBLOCK is off", l.Addr())
}
