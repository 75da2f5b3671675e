package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/deploy/backend/docker"
)

// The tests label every container with their namespace, and remove them all:
// each test its own app's, and TestMain every container of the namespace
// before and after the run. The namespace and the image tags hold the process
// ID, so that runs sharing one engine (two checkouts testing at once) neither
// sweep each other's containers nor remove each other's images.
const (
	imageRepo = "cutover-e2e-app" // tags <version>-<pid>, built from examples/app
	appDir    = "../examples/app"
)

var (
	namespace = fmt.Sprintf("cutover-e2e-%d", os.Getpid())
)

var (
	engineBackend *docker.Backend // shared backend in namespace
	skipReason    string          // non-empty: the engine is unreachable and CI is not "true"
	versions      = []string{"v1", "v2"}
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
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	b, err := docker.New(pctx, docker.Options{Namespace: namespace})
	pcancel()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: docker engine unreachable and CI=true: %v\n", err)
			return 1
		}
		skipReason = fmt.Sprintf("docker engine unreachable, skipping the end-to-end tests (set CI=true to make this a failure): %v", err)
		fmt.Fprintln(os.Stderr, "SKIP:", skipReason)
		return m.Run()
	}
	engineBackend = b
	defer b.Close()
	sweep := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if n, err := b.DestroyAll(ctx, ""); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		} else if n > 0 {
			fmt.Fprintf(os.Stderr, "sweep: removed %d leftover containers\n", n)
		}
	}
	sweep()
	defer func() {
		sweep()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, v := range versions {
			if err := b.RemoveImage(ctx, image(v)); err != nil {
				fmt.Fprintln(os.Stderr, "remove image:", err)
			}
		}
	}()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, v := range versions {
		opts := docker.ImageOptions{Env: map[string]string{"VERSION": v}, Labels: map[string]string{"cutover.e2e": "true"}}
		if err := b.BuildGoImage(ctx, image(v), appDir, opts); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: building the app image:", err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "built %s and %s in %v (engine API %s)\n", image("v1"), image("v2"), time.Since(start).Round(time.Millisecond), b.APIVersion())
	return m.Run()
}
