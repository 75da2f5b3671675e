package edge_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/examples/cutover/internal/edge"
	"github.com/cutover/deploy/proxy"
)

// TestClientLimits: on a plain Front over a Proxy, a client that stalls in
// its headers or in its body is cut off after the timeout; headers over the
// limit get 431 and a body over the app's limit 413; a request whose body
// arrived whole may take longer than the body idle timeout to be answered.
func TestClientLimits(t *testing.T) {
	slow := make(chan struct{})
	backend := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if r.URL.Path == "/slow" {
			<-slow
		}
		fmt.Fprintf(w, "got %d", len(b))
	})}
	bln := listen(t, 0)
	go func() { _ = backend.Serve(bln) }()
	defer backend.Close()
	px := proxy.New(proxy.Options{MaxBodyBytes: 1000})
	defer px.CloseIdleConnections()
	require.NoError(t, px.SetTargets(context.Background(), map[string]int{bln.Addr().String(): 1}))

	f, err := edge.New(px, edge.Options{
		Server:          proxy.ServerOptions{ReadHeaderTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096},
		BodyIdleTimeout: 300 * time.Millisecond,
	})
	require.NoError(t, err)
	ln := listen(t, 0)
	serve(t, f, ln, nil)
	addr := ln.Addr().String()

	exchange := func(req string) (string, time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), time.Since(start)
	}

	// Stalled headers: the connection is closed after the read-header timeout.
	line, d := exchange("GET / HTTP/1.1\r\nHost: a\r\n")
	require.Empty(t, line)
	require.GreaterOrEqual(t, d, 250*time.Millisecond) // the timeout runs from the accept, a little before start
	require.Less(t, d, 10*time.Second)
	// A stalled body: the request fails once the body idle timeout passes.
	line, d = exchange("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
	require.GreaterOrEqual(t, d, 300*time.Millisecond)
	require.Less(t, d, 10*time.Second)
	require.Contains(t, line, " 400 ", "a stalled body is not served")
	// Headers over the limit: 431.
	line, _ = exchange("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8192) + "\r\n\r\n")
	require.Contains(t, line, " 431 ")
	// A body over the app's limit: 413.
	line, _ = exchange("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("x", 2000))
	require.Contains(t, line, " 413 ")
	// A whole body, then an answer slower than the body idle timeout: served.
	done := make(chan string, 1)
	go func() {
		l, _ := exchange("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
		done <- l
	}()
	time.Sleep(600 * time.Millisecond) // twice the body idle timeout: the length of the slow answer, not a condition
	close(slow)
	require.Contains(t, <-done, " 200 ")
}
