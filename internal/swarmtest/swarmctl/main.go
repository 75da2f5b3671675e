// Command swarmctl builds or tears down the two-node test swarm of package
// swarmtest by hand or from CI (.ci/swarm.sh calls it):
//
//	go run ./internal/swarmtest/swarmctl up     # build it and leave it running
//	go run ./internal/swarmtest/swarmctl down   # tear down whatever one is left
//
// After up, the manager is this machine's engine and the worker's engine
// answers on unix:///run/cutover-swarm/docker.sock (DOCKER_HOST for the
// docker CLI), which the worker node's label cutover.engine names, so that
// go run ./examples/swarm finds it. It needs root, ip, nsenter and dockerd.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cutover/deploy/internal/swarmtest"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: swarmctl up|down")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	opts := swarmtest.Options{Log: os.Stderr}
	switch os.Args[1] {
	case "up":
		s, err := swarmtest.Up(ctx, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "swarmctl up:", err)
			os.Exit(1)
		}
		fmt.Printf("manager %s %s\nworker %s %s %s\n", s.ManagerNodeID, swarmtest.ManagerAddr, s.WorkerNodeID, swarmtest.WorkerAddr, s.WorkerHost)
		s.Release()
	case "down":
		found, err := swarmtest.DownLeftover(ctx, opts)
		if errors.Is(err, swarmtest.ErrUnavailable) {
			fmt.Fprintln(os.Stderr, "swarmctl down: nothing to do:", err)
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "swarmctl down:", err)
			os.Exit(1)
		}
		if !found {
			fmt.Fprintln(os.Stderr, "swarmctl down: no swarm to tear down")
		}
	}
}
