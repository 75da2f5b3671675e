// Command testapp is the tiny HTTP app the Docker backend's tests run in
// containers. It is built into a static binary and imported as an image.
//
// With no arguments it serves HTTP on $PORT (default 8080):
//
//	/        answers $VERSION
//	/health  answers 200
//
// With $CHECK_PORT set it also serves, on that port, "check port" at every
// path (for tests of a health check on its own port).
//
// It logs one line per request on stdout, and a line on stderr at start.
// SIGTERM and SIGINT shut the server down gracefully (exit 0), unless
// IGNORE_SIGTERM=1, in which case SIGTERM is ignored (for kill tests).
//
// Boot behaviours of real apps, for the readiness tests:
//
//	LISTEN_AFTER=2s         listen only this long after start (a slow boot)
//	NEVER_LISTEN=1          never listen (a boot that never ends)
//	CLOSE_CONNS=1           accept every connection and close it at once
//	EXIT_AFTER=500ms        exit this long after start, before listening,
//	EXIT_CODE=3             with this code (default 1)
//
// With arguments "exit N" it prints a line on stdout and one on stderr and
// exits with code N (for command override tests); "exit N LINE..." prints
// LINE (the remaining arguments joined by spaces) on stdout instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "exit" {
		code, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "testapp: bad exit code:", os.Args[2])
			os.Exit(2)
		}
		if len(os.Args) > 3 {
			fmt.Println(strings.Join(os.Args[3:], " "))
		} else {
			fmt.Printf("testapp: exiting with code %d\n", code)
		}
		fmt.Fprintf(os.Stderr, "testapp: stderr before exit %d\n", code)
		os.Exit(code)
	}
	os.Exit(serve())
}

func serve() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	version := os.Getenv("VERSION")

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("testapp: %s %s\n", r.Method, r.URL.Path)
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	sigs := make(chan os.Signal, 1)
	if os.Getenv("IGNORE_SIGTERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sigs, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	if code, stop := boot(sigs); stop {
		return code
	}

	if os.Getenv("CLOSE_CONNS") == "1" {
		return closeConns(srv.Addr, sigs)
	}
	// Listen, then log, then serve: the start line is written before any
	// request can be answered (TestLogs expects it before the request lines).
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testapp: version %q listening on :%s\n", version, port)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cp := os.Getenv("CHECK_PORT"); cp != "" {
		cln, err := net.Listen("tcp", ":"+cp)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			return 1
		}
		csrv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "check port")
		})}
		go func() { errc <- csrv.Serve(cln) }()
		defer csrv.Close()
	}

	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 1
	case s := <-sigs:
		fmt.Printf("testapp: got %v, shutting down\n", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "testapp: shutdown:", err)
		return 1
	}
	fmt.Println("testapp: bye")
	return 0
}

// boot waits as the boot behaviours say; stop reports that the app must exit
// with code instead of serving.
func boot(sigs <-chan os.Signal) (code int, stop bool) {
	var exit <-chan time.Time
	if d, err := time.ParseDuration(os.Getenv("EXIT_AFTER")); err == nil {
		exit = time.After(d)
	}
	var listen <-chan time.Time
	switch d, err := time.ParseDuration(os.Getenv("LISTEN_AFTER")); {
	case os.Getenv("NEVER_LISTEN") == "1":
	case err == nil:
		listen = time.After(d)
	default:
		if exit == nil {
			return 0, false
		}
	}
	fmt.Fprintln(os.Stderr, "testapp: booting")
	select {
	case <-listen:
		return 0, false
	case <-exit:
		code := 1
		if c, err := strconv.Atoi(os.Getenv("EXIT_CODE")); err == nil {
			code = c
		}
		fmt.Fprintf(os.Stderr, "testapp: exiting during boot with code %d\n", code)
		return code, true
	case s := <-sigs:
		fmt.Printf("testapp: got %v while booting\n", s)
		return 0, true
	}
}

// closeConns accepts every connection and closes it at once, until a signal.
func closeConns(addr string, sigs <-chan os.Signal) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testapp: closing every connection on %s\n", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	<-sigs
	ln.Close()
	return 0
}
