// Command app is the sample app that examples/docker and the end-to-end tests
// (e2e/ and examples/cutover's Docker test) deploy in containers. It builds as
// a static binary (CGO_ENABLED=0), so an image holding only this binary runs
// on any engine with no base image.
//
// With no arguments it serves HTTP on $PORT (default 8080):
//
//	/        answers the version: -version, else $VERSION, else "dev"
//	/health  answers 200 "ok", or 503 when UNHEALTHY=1
//	/slow    answers the version after 200ms
//	/upload  (POST) reads the body, then answers the version
//	/stream  answers the version one byte at a time, flushed, 20ms apart
//
// SIGTERM and SIGINT shut it down gracefully: it stops accepting, lets
// requests in flight finish (up to 10s), then exits 0. With LISTEN_AFTER set
// (such as "2s") it listens only that long after it starts, as an app that
// loads its config and connects to its database first.
//
// With the arguments "migrate [code]" it is a release command: it prints a few
// lines, as a schema migration would, and exits with code (default 0).
//
// With the arguments "worker [args...]" it is a worker process group: it
// prints one line (its version, $FLY_PROCESS_GROUP and args), serves nothing
// and runs until SIGTERM or SIGINT, then exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	version := flag.String("version", "", "version to answer on / (default $VERSION, else \"dev\")")
	flag.Parse()
	if flag.NArg() > 0 {
		os.Exit(command(flag.Args()))
	}
	v := *version
	if v == "" {
		v = os.Getenv("VERSION")
	}
	if v == "" {
		v = "dev"
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	var listenAfter time.Duration
	if s := os.Getenv("LISTEN_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "app: LISTEN_AFTER=%q: %v\n", s, err)
			os.Exit(2)
		}
		listenAfter = d
	}
	if err := serve(":"+port, v, os.Getenv("UNHEALTHY") == "1", listenAfter); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

// command runs a one-shot command and returns its exit code.
func command(args []string) int {
	switch args[0] {
	case "migrate":
		code := 0
		if len(args) > 1 {
			c, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(os.Stderr, "app: migrate: bad exit code %q\n", args[1])
				return 2
			}
			code = c
		}
		fmt.Printf("migrate: version %s, release command %s\n", os.Getenv("VERSION"), os.Getenv("RELEASE_COMMAND"))
		fmt.Println("migrate: applying 0001_init.sql")
		if code != 0 {
			fmt.Printf("migrate: failed, exiting with code %d\n", code)
			return code
		}
		fmt.Println("migrate: done")
		return 0
	}
	if args[0] == "worker" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		fmt.Printf("worker: version %s, group %s, args %q\n", os.Getenv("VERSION"), os.Getenv("FLY_PROCESS_GROUP"), args[1:])
		<-ctx.Done()
		fmt.Println("worker: stopping")
		return 0
	}
	fmt.Fprintf(os.Stderr, "app: unknown command %q (want migrate [exit-code] or worker [args])\n", args[0])
	return 2
}

func serve(addr, version string, unhealthy bool, listenAfter time.Duration) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		f, _ := w.(http.Flusher)
		for i := range len(version) {
			if i > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			_, _ = w.Write([]byte{version[i]})
			if f != nil {
				f.Flush()
			}
		}
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if listenAfter > 0 {
		fmt.Fprintf(os.Stderr, "app: booting; listening in %v\n", listenAfter)
		select {
		case <-time.After(listenAfter):
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "app: stopped while booting")
			return nil
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "app: version %q listening on %s (unhealthy=%v)\n", version, addr, unhealthy)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(os.Stderr, "app: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(os.Stderr, "app: bye")
	return nil
}
