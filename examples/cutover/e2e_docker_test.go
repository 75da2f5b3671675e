package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/deploytest"
)

// dockerEngine returns a backend in the daemon's namespace, or skips the
// test when the engine is unreachable, unless CI=true, where that fails.
func dockerEngine(t *testing.T) *docker.Backend {
	t.Helper()
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := docker.New(pctx, docker.Options{Namespace: "cutover"} /* the daemon's namespace */)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Docker engine is unreachable and CI=true: %v", err)
		}
		t.Skipf("the Docker engine is unreachable (set CI=true to make this a failure): %v", err)
	}
	return b
}

// dockerApp returns a new app name and images of the sample app
// examples/app (one static binary), images[i] tagged and answering
// versions[i]. When the test ends every container of the app goes, then the
// images.
func dockerApp(t *testing.T, b *docker.Backend, versions ...string) (app string, images []string) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	app = "e2e-" + suffix
	for _, v := range versions {
		images = append(images, "cutover-e2e-"+suffix+":"+v)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := b.DestroyAll(cctx, app)
		assert.NoError(t, err)
		t.Logf("removed %d containers of %s", n, app)
		for _, img := range images {
			assert.NoError(t, b.RemoveImage(cctx, img))
		}
		b.Close()
	})
	appBin := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command("go", "build", "-o", appBin, "../app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, img := range images {
		require.NoError(t, b.BuildBinaryImage(ctx, img, appBin, docker.ImageOptions{Env: map[string]string{"VERSION": versions[i]}}))
	}
	return app, images
}

// TestKillDaemonMidDeployRecoversDocker is TestKillDaemonMidDeployRecovers on
// the Docker engine: SIGKILL of the daemon at each phase of a deploy under
// load; the containers outlive it, and the restarted daemon adopts them and
// recovers.
func TestKillDaemonMidDeployRecoversDocker(t *testing.T) {
	versions := make([]string, len(killPhases)+1)
	for i := range versions {
		versions[i] = fmt.Sprintf("k%d", i)
	}
	app, images := dockerApp(t, dockerEngine(t), versions...)
	killAtEachPhase(t, newEnv(t, app, images[0]), "docker", images)
}

// TestEndToEndDocker runs the scenario of TestEndToEndMem on the local Docker
// engine, with images of the sample app examples/app. It is skipped when the
// engine is unreachable, unless CI=true, where that fails. Every container it
// made (its app's label) and its images are removed at the end.
func TestEndToEndDocker(t *testing.T) {
	ctx := context.Background()
	b := dockerEngine(t)
	versions := [3]string{"v1", "v2", "v3"}
	app, imgs := dockerApp(t, b, versions[:]...)
	images := [3]string(imgs)
	repo := strings.TrimSuffix(images[0], ":v1")

	e := newEnv(t, app, images[0])
	scenario(t, e, "docker", images, versions)

	// An image that does not exist: a usage error, nothing deployed.
	r := e.run("deploy", "--image", repo+":nope")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "image "+repo+":nope not found locally; build or load it")
	assert.NotContains(t, r.stderr, "invalid:")
	r = e.run("releases", "--json")
	assert.NotContains(t, r.stdout, ":nope")

	// The containers outlive the daemon; a new daemon adopts and serves them.
	e.restart("docker")
	r = e.run("status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"version": "v4"`)
	require.Eventually(t, func() bool { return get(e.url()) == versions[1] }, 30*time.Second, 50*time.Millisecond)

	// SIGKILL of the daemon once the new version took traffic, under load;
	// a new daemon recovers: v4 again at its count, the release rolled back.
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 20))
	r, killed := e.deployUntil("machine_routed", true, "--image", images[2])
	require.True(t, killed)
	assert.Contains(t, r.stderr, "the daemon stopped")
	t.Logf("load while the daemon was killed: %s", run.Stop())
	e.start("docker")
	st := e.waitRecovered()
	require.Len(t, st.Machines, 2)
	for _, m := range st.Machines {
		assert.Equal(t, "v4", m.Version)
		assert.Equal(t, 1, st.Targets[m.Addr])
	}
	rel := lastRelease(t, e)
	assert.Equal(t, "rolled_back", rel.Status)
	assert.Contains(t, rel.Reason, "stopped before the deploy finished (killed or crashed); on restart v4 was restored")
	run = deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 200))
	lr := run.Stop()
	assert.Zero(t, lr.Failed, "failed requests after the recovery: %v", lr.Errors)
	assert.Equal(t, map[string]int64{versions[1]: lr.ByBody[versions[1]]}, lr.ByBody)

	// serve --upgrade under load: the new daemon adopts the containers and
	// takes the sockets; no request fails, the containers stay.
	run = deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	require.NoError(t, run.WaitRequests(ctx, 100))
	e.upgrade("docker")
	n := run.Mark()
	require.NoError(t, run.WaitEpoch(ctx, n, 200))
	lr = run.Stop()
	t.Logf("load across serve --upgrade: %s", lr)
	assert.Zero(t, lr.Failed, "failed requests across the upgrade: %v", lr.Errors)
	st = e.waitRecovered()
	require.Len(t, st.Machines, 2)
	for _, m := range st.Machines {
		assert.Equal(t, "v4", m.Version, "the same containers")
	}
}
