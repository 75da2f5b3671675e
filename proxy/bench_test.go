package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// BenchmarkProxyGET measures a small GET through the proxy over loopback,
// net/http's server and client included.
func BenchmarkProxyGET(b *testing.B) {
	up := newBenchBackend(b)
	p, front, c := newFront(b, Options{})
	setTargets(b, p, map[string]int{up: 1})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(front.URL)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

func newBenchBackend(tb testing.TB) string {
	tb.Helper()
	bk := newBackend(tb, "bench", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	return bk.addr()
}

// rawBackend is an allocation-free HTTP/1.1 upstream for the handler
// benchmarks: it reads request heads (GET only) and answers a fixed response,
// so that allocations counted are the proxy's own.
func rawBackend(tb testing.TB) string {
	tb.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nok")
	return rawServer(tb, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 { // end of a request head
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	})
}

// discardWriter is a reusable http.ResponseWriter and http.Flusher.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// BenchmarkHandler measures the proxy's handler alone (no net/http server on
// the client side): one proxied GET per op over pooled loopback connections to
// allocation-free upstreams, with statistics, retries, X-Forwarded-* headers,
// client-disconnect cancellation and a response-header timeout on. Each op gets
// a fresh cancellable request context, as net/http gives every request; making
// it (and the request copy that carries it) is left out of handler-allocs/op.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name    string
		weights []int
	}{
		{"1target", []int{1}},
		{"10targets", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"canary5of95", []int{5, 95}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := New(Options{ResponseHeaderTimeout: 30e9})
			defer p.CloseIdleConnections()
			set := map[string]int{}
			for _, w := range tc.weights {
				set[rawBackend(b)] = w
			}
			setTargets(b, p, set)
			base := httptest.NewRequest("GET", "http://app.example/path?q=1", nil)
			base.RequestURI = "/path?q=1" // origin-form, as a server reads it from most clients
			base.Header.Set("User-Agent", "bench")
			base.Header.Set("Accept", "*/*")
			harness := testing.AllocsPerRun(100, func() {
				ctx, cancel := context.WithCancel(context.Background())
				benchSink = base.WithContext(ctx)
				cancel()
			})
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					ctx, cancel := context.WithCancel(context.Background())
					p.ServeHTTP(w, base.WithContext(ctx))
					cancel()
					if w.code != 200 {
						b.Errorf("status %d", w.code)
						return
					}
				}
			})
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N)-harness, "handler-allocs/op")
		})
	}
}

// benchSink keeps the harness's request copy on the heap, as in the benchmark.
var benchSink *http.Request

// BenchmarkSetTargets measures changing the target set (weights of 10
// targets, and replacing one target by another) with no request in flight.
func BenchmarkSetTargets(b *testing.B) {
	mk := func(w0, extra int) map[string]int {
		m := map[string]int{}
		for i := range 10 {
			m[fmt.Sprintf("127.0.0.1:%d", 20000+i)] = 10
		}
		m["127.0.0.1:20000"] = w0
		if extra > 0 {
			delete(m, "127.0.0.1:20009")
			m[fmt.Sprintf("127.0.0.1:%d", 30000+extra)] = 10
		}
		return m
	}
	for _, tc := range []struct {
		name string
		a, c map[string]int
	}{
		{"weights", mk(5, 0), mk(50, 0)},
		{"replace", mk(10, 0), mk(10, 1)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := New(Options{})
			defer p.CloseIdleConnections()
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				set := tc.a
				if i%2 == 1 {
					set = tc.c
				}
				if err := p.SetTargets(ctx, set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
