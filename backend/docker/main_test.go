package docker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The tests run against the local engine. They label every container with
// testNamespace and remove them all (per test, and in a sweep here).
// Both are per process, so that two runs on one engine never sweep each other's.
var (
	testNamespace = fmt.Sprintf("cutover-dockertest-%d", os.Getpid())
	testImage     = fmt.Sprintf("cutover-dockertest-app:%d", os.Getpid())
)

var (
	tb         *Backend // shared backend, in testNamespace
	skipReason string   // non-empty: the engine is unreachable and CI is not "true"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	b, err := New(pctx, Options{Namespace: testNamespace})
	pcancel()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: docker engine unreachable and CI=true: %v\n", err)
			return 1
		}
		skipReason = fmt.Sprintf("docker engine unreachable (set CI=true to make this a failure): %v", err)
		fmt.Fprintln(os.Stderr, "SKIP:", skipReason)
		return m.Run()
	}
	tb = b
	defer b.Close()
	sweep := func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if n, err := b.DestroyAll(sctx, ""); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		} else if n > 0 {
			fmt.Fprintf(os.Stderr, "sweep: removed %d leftover containers\n", n)
		}
	}
	sweep()

	start := time.Now()
	if err := b.BuildGoImage(ctx, testImage, "internal/testapp", ImageOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: building the test image:", err)
		sweep()
		return 1
	}
	fmt.Fprintf(os.Stderr, "built %s in %v (engine API %s)\n", testImage, time.Since(start).Round(time.Millisecond), b.APIVersion())
	defer func() {
		sweep()
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		if err := b.RemoveImage(rctx, testImage); err != nil {
			fmt.Fprintln(os.Stderr, "remove image:", err)
		}
	}()
	return m.Run()
}

// engine skips the test when the engine is unreachable, and returns the shared backend.
func engine(t *testing.T) *Backend {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return tb
}

var appSeq atomic.Int64

// newApp returns a unique app name for the test and removes its containers when the test ends.
func newApp(t *testing.T, b *Backend) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	app := fmt.Sprintf("%s-%d-%d", name, os.Getpid(), appSeq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.DestroyAll(ctx, app); err != nil {
			t.Errorf("cleanup of app %s: %v", app, err)
		}
	})
	return app
}
