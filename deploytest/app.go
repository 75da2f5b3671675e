package deploytest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/cutover/deploy"
)

// App returns the app for version: "/" answers the version, "/health"
// answers 200, "/slow?ms=N" answers the version after N milliseconds, and
// "/fail" answers 500.
func App(version string) http.Handler {
	mux := http.NewServeMux()
	body := []byte(version)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			_, _ = w.Write(body)
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	return mux
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
