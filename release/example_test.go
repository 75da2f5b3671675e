package release_test

import (
	"context"
	"fmt"
	"os"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/release"
)

// A file store keeps the history across restarts; PreviousStable finds what
// to roll back to.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "releases")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := release.OpenFile(dir)
	if err != nil {
		panic(err)
	}
	for _, image := range []string{"web:1", "web:2", "web:3"} {
		rel, err := store.Create(ctx, deploy.Release{App: "web", Image: image, Status: deploy.ReleaseRunning})
		if err != nil {
			panic(err)
		}
		// v3 fails; the others complete.
		if rel.Version == 3 {
			rel.Status, rel.Reason = deploy.ReleaseFailed, "machine 3: health: unhealthy"
		} else {
			rel.Status, rel.Stable = deploy.ReleaseComplete, true
		}
		if err := store.Update(ctx, rel); err != nil {
			panic(err)
		}
	}

	reopened, _ := release.OpenFile(dir) // as after a restart
	list, _ := reopened.List(ctx, "web")
	for _, r := range list {
		fmt.Printf("v%d %s %s\n", r.Version, r.Image, r.Status)
	}
	prev, _ := release.PreviousStable(ctx, reopened, "web", 3)
	fmt.Printf("roll back to v%d (%s)\n", prev.Version, prev.Image)
	// Output:
	// v3 web:3 failed
	// v2 web:2 complete
	// v1 web:1 complete
	// roll back to v2 (web:2)
}
