// Command demoapp is the demo app for cutover on Docker: a static binary that
// serves internal/demo's handler on $PORT (default 8080), answering $VERSION
// on "/" and 200 on "/health", and shuts down gracefully on SIGTERM or SIGINT.
// The end-to-end test builds it into images such as demo:v1 with VERSION=v1.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cutover/deploy/internal/demo"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	version := os.Getenv("VERSION")
	if version == "" {
		version = "dev"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Addr: ":" + port, Handler: demo.Handler(version), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("demoapp %s listening on :%s\n", version, port)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	fmt.Println("demoapp: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	}
}
