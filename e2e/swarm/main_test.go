// Package swarme2e runs deploys end to end on a real two-node swarm (this
// engine as manager, a second dockerd in a network namespace as worker) that
// TestMain builds with internal/swarmtest and tears down, under load through
// the proxy.
package swarme2e

import (
	"fmt"
	"os"
	"testing"

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
	var images []swarmtest.Image
	for _, v := range versions {
		opts := docker.ImageOptions{Env: map[string]string{"VERSION": v}, Labels: map[string]string{"cutover.e2e": "true"}}
		images = append(images, swarmtest.Image{Name: image(v), Dir: appDir, Options: opts})
	}
	swarmtest.Main(m, namespace, images, func(e swarmtest.Env) {
		sb, cluster, skipReason = e.Backend, e.Swarm, e.Skip
	})
}
