// Package swarme2e runs deploys end to end on a real two-node swarm (this
// engine as manager, a second dockerd in a network namespace as worker) that
// TestMain builds with internal/swarmtest and tears down, under load through
// the proxy.
package swarme2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/internal/swarmtest"
)

const (
	imageRepo = "cutover-swarme2e-app" // tags <version>-<pid>, built from examples/app
	appDir    = "../../examples/app"
)

var (
	namespace = fmt.Sprintf("cutover-swarme2e-%d", os.Getpid())
	versions  = []string{"v1", "v2"}
)

var (
	sb         *swarm.Backend
	cluster    *swarmtest.Swarm
	skipReason string
)

func image(version string) string { return fmt.Sprintf("%s:%s-%d", imageRepo, version, os.Getpid()) }

func TestMain(m *testing.M) {
	code := run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	// Up waits for another package's swarm (the lock) within this bound.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s, err := swarmtest.Up(ctx, swarmtest.Options{Log: os.Stderr})
	if err != nil {
		msg, fail := swarmtest.SkipOrFail(err)
		fmt.Fprintln(os.Stderr, msg)
		if fail {
			return 1
		}
		skipReason = msg
		return m.Run()
	}
	cluster = s
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if err := s.Down(dctx); err != nil {
			fmt.Fprintln(os.Stderr, "swarm down:", err)
		}
	}()
	db, err := docker.New(ctx, docker.Options{Namespace: namespace})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: docker backend:", err)
		return 1
	}
	defer db.Close()
	start := time.Now()
	for _, v := range versions {
		opts := docker.ImageOptions{Env: map[string]string{"VERSION": v}, Labels: map[string]string{"cutover.e2e": "true"}}
		if err := db.BuildGoImage(ctx, image(v), appDir, opts); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: building the app image:", err)
			return 1
		}
		defer func() {
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer rcancel()
			if err := db.RemoveImage(rctx, image(v)); err != nil {
				fmt.Fprintln(os.Stderr, "remove image:", err)
			}
		}()
		if err := s.LoadImage(ctx, image(v)); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "built %s and %s, loaded into the worker, in %v\n", image("v1"), image("v2"), time.Since(start).Round(time.Millisecond))
	b, err := swarm.New(ctx, swarm.Options{Namespace: namespace, LocalImages: true, NodeEngines: s.NodeEngines()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: swarm backend:", err)
		return 1
	}
	defer b.Close()
	sb = b
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if n, err := b.DestroyAll(sctx, ""); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		} else if n > 0 {
			fmt.Fprintf(os.Stderr, "sweep: removed %d leftover services\n", n)
		}
	}()
	return m.Run()
}
