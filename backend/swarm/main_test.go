package swarm_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

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
	images := []swarmtest.Image{{Name: testImage, Dir: "../docker/internal/testapp"}}
	swarmtest.Main(m, testNamespace, images, func(e swarmtest.Env) {
		tb, cluster, skipReason = e.Backend, e.Swarm, e.Skip
	})
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
