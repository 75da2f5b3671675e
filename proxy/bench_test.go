package proxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkProxyGET measures a small GET through the proxy over loopback: a
// baseline for later work on the upstream path.
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
