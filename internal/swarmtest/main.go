package swarmtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/backend/swarm"
)

// Image is an image a test package builds from a Go main package (Dir) on
// the manager's engine, and loads into the worker's.
type Image struct {
	Name    string
	Dir     string
	Options docker.ImageOptions
}

// Env is what Main hands a test package before its tests run: the swarm and
// a swarm backend in the package's namespace (LocalImages, NodeEngines set),
// or, with no swarm here and CI not "true", Skip says why and the rest is nil.
type Env struct {
	Swarm   *Swarm
	Backend *swarm.Backend
	Skip    string
}

// Main is a swarm test package's TestMain: it builds the two-node swarm
// (waiting up to 8 minutes for another package's), builds and loads the
// images, makes the backend, calls use, runs the tests, then sweeps the
// namespace's services, removes the images, tears the swarm down, checks
// that no goroutine leaked, and exits.
func Main(m *testing.M, namespace string, images []Image, use func(Env)) {
	code := runMain(m, namespace, images, use)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runMain(m *testing.M, namespace string, images []Image, use func(Env)) int {
	// Up waits for another package's swarm (the lock) within this bound.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s, err := Up(ctx, Options{Log: os.Stderr})
	if err != nil {
		msg, fail := SkipOrFail(err)
		fmt.Fprintln(os.Stderr, msg)
		if fail {
			return 1
		}
		use(Env{Skip: msg})
		return m.Run()
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if err := s.Down(dctx); err != nil {
			fmt.Fprintln(os.Stderr, "swarm down:", err)
		}
	}()
	// The images: built on the manager's engine, loaded into the worker's.
	db, err := docker.New(ctx, docker.Options{Namespace: namespace})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: docker backend:", err)
		return 1
	}
	defer db.Close()
	start := time.Now()
	for _, img := range images {
		if err := db.BuildGoImage(ctx, img.Name, img.Dir, img.Options); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: building %s: %v\n", img.Name, err)
			return 1
		}
		defer func() {
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer rcancel()
			if err := db.RemoveImage(rctx, img.Name); err != nil {
				fmt.Fprintln(os.Stderr, "remove image:", err)
			}
		}()
		if err := s.LoadImage(ctx, img.Name); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "built %d images and loaded them into the worker in %v\n", len(images), time.Since(start).Round(time.Millisecond))
	b, err := swarm.New(ctx, swarm.Options{Namespace: namespace, LocalImages: true, NodeEngines: s.NodeEngines()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: swarm backend:", err)
		return 1
	}
	defer b.Close()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if n, err := b.DestroyAll(sctx, ""); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		} else if n > 0 {
			fmt.Fprintf(os.Stderr, "sweep: removed %d leftover services\n", n)
		}
	}()
	use(Env{Swarm: s, Backend: b})
	return m.Run()
}
