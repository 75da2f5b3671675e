package deploytest

import (
	"net/http"
	"strconv"
	"time"
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
