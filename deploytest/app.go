package deploytest

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cutover/deploy"
)

// App returns an app that behaves like a small real one and tells its
// version:
//
//	/             answers the version (any path not listed here does too)
//	/health       answers 200 "ok"
//	/slow?ms=N    answers the version after N milliseconds
//	POST /upload  reads the whole body, then answers the version
//	/stream       answers the version one byte at a time, flushed, 10ms apart
//	/flaky?pct=N  answers 500 to N of every 100 requests to it (counted by
//	              this app value), the version to the others
//	/fail         answers 500
//
// LoadOptions.Mixed sends GET /, GET /slow, POST /upload and GET /stream.
func App(version string) http.Handler {
	mux := http.NewServeMux()
	body := []byte(version)
	answer := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { answer(w) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		if wait(r.Context(), time.Duration(ms)*time.Millisecond) {
			answer(w)
		}
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "upload: "+err.Error(), http.StatusBadRequest)
			return
		}
		answer(w)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		rc := http.NewResponseController(w)
		for i := range body {
			if i > 0 && !wait(r.Context(), 10*time.Millisecond) {
				return
			}
			if _, err := w.Write(body[i : i+1]); err != nil {
				return
			}
			_ = rc.Flush()
		}
	})
	var flaky atomic.Int64
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		pct, _ := strconv.Atoi(r.URL.Query().Get("pct"))
		if n := flaky.Add(1) - 1; int(n%100) < pct {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		answer(w)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	return mux
}

// wait waits d or until ctx ends, and reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SlowBoot returns an app constructor, one app per machine (as
// mem.Backend.RegisterPerMachine takes), for an app that listens at once but
// boots for boot, as one that warms caches or connects to its database
// first: until boot has passed since the machine's app was made, every path,
// "/health" included, answers 503 "booting"; then the machine serves
// App(spec.Version). A TCP check passes it at once; an HTTP check of
// "/health" only once it has booted.
func SlowBoot(boot time.Duration) func(deploy.MachineSpec) http.Handler {
	return func(spec deploy.MachineSpec) http.Handler {
		started := time.Now()
		app := App(spec.Version)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if time.Since(started) < boot {
				http.Error(w, "booting", http.StatusServiceUnavailable)
				return
			}
			app.ServeHTTP(w, r)
		})
	}
}
