package swarm_test

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

// The tests run on a real two-node swarm that TestMain builds (this engine as
// manager, a second dockerd in a network namespace as worker) and tears down.
var (
	testNamespace = fmt.Sprintf("cutover-swarmtest-%d", os.Getpid())
	testImage     = fmt.Sprintf("cutover-swarmtest-app:%d", os.Getpid())
)

var (
	tb         *swarm.Backend // shared backend, in testNamespace
	cluster    *swarmtest.Swarm
	skipReason string // non-empty: no swarm here and CI is not "true"
)

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
	// The image: built on the manager's engine, loaded into the worker's.
	db, err := docker.New(ctx, docker.Options{Namespace: testNamespace})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: docker backend:", err)
		return 1
	}
	defer db.Close()
	start := time.Now()
	if err := db.BuildGoImage(ctx, testImage, "../docker/internal/testapp", docker.ImageOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: building the test image:", err)
		return 1
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		if err := db.RemoveImage(rctx, testImage); err != nil {
			fmt.Fprintln(os.Stderr, "remove image:", err)
		}
	}()
	if err := s.LoadImage(ctx, testImage); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "built %s and loaded it into the worker in %v\n", testImage, time.Since(start).Round(time.Millisecond))
	b, err := swarm.New(ctx, swarm.Options{Namespace: testNamespace, LocalImages: true, NodeEngines: s.NodeEngines()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: swarm backend:", err)
		return 1
	}
	defer b.Close()
	tb = b
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

// backend skips the test when there is no swarm, and returns the shared backend.
func backend(t *testing.T) *swarm.Backend {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return tb
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
