package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
)

// deployUntil runs `cutover deploy --json` with args and kills the daemon
// (SIGKILL) at the first event of type at (of the new version, when new is
// set). It returns the deploy command's result.
func (e *env) deployUntil(at string, new bool, args ...string) (result, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"deploy", "--json"}, args...)...)
	cmd.Dir = e.dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, cmd.Start())
	killed := false
	version := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var ev control.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type == "" {
			continue
		}
		if ev.Type == "deploy_started" {
			version = ev.Version
		}
		if !killed && string(ev.Type) == at && (!new || ev.Version == version) {
			e.kill()
			killed = true
		}
	}
	err = cmd.Wait()
	r := result{stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	e.t.Logf("cutover deploy %v (killed at %s: %v): exit %d: %s", args, at, killed, r.code, r.stderr)
	return r, killed
}

// waitRecovered waits until the daemon runs no operation (its recovery is
// done) and returns its status.
func (e *env) waitRecovered() control.Status {
	e.t.Helper()
	var st control.Status
	require.Eventually(e.t, func() bool {
		r := e.run("status", "--json")
		st = control.Status{}
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Operation == nil
	}, 2*time.Minute, 200*time.Millisecond, "the restarted daemon finishes its recovery")
	return st
}

// The daemon is killed (SIGKILL) at each phase of a rolling deploy under
// load, then started again on the same state directory: it takes over its
// own lock at once, recovers without a manual step, the interrupted release
// ends rolled back with the true reason (or complete, when the deploy had
// finished), the app runs its 3 machines of the current release, and no
// request fails once it serves again. TestKillDaemonMidDeployRecoversDocker
// does the same on the Docker engine.
func TestKillDaemonMidDeployRecovers(t *testing.T) {
	images := make([]string, len(killPhases)+1)
	for i := range images {
		images[i] = fmt.Sprintf("demo:k%d", i)
	}
	killAtEachPhase(t, newEnv(t, "killed", images[0]), "mem", images)
}

// killPhases are the events of a rolling deploy the daemon is killed at.
var killPhases = []struct {
	at  string
	new bool // the event must be of the new version
}{
	{"deploy_started", false},
	{"machine_created", false},
	{"machine_healthy", false},
	{"machine_routed", true},
	{"machine_stopped", false},
	{"deploy_succeeded", false},
}

// killAtEachPhase deploys images[0] to 3 machines, then for each of
// killPhases deploys the next image and kills the daemon at that phase (see
// TestKillDaemonMidDeployRecovers). An image's tag is the version its app
// answers.
func killAtEachPhase(t *testing.T, e *env, backend string, images []string) {
	tag := func(image string) string { return image[strings.LastIndex(image, ":")+1:] }
	e.start(backend)
	r := e.run("deploy", "--image", images[0], "--count", "3")
	require.Equal(t, 0, r.code, r.stderr)

	for i, p := range killPhases {
		func() {
			t.Logf("=== killed at %s", p.at)
			ctx := context.Background()
			run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
			require.NoError(t, run.WaitRequests(ctx, 20))
			image := images[i+1]
			r, killed := e.deployUntil(p.at, p.new, "--image", image)
			require.True(t, killed, "the deploy reached %s", p.at)
			if p.at == "deploy_succeeded" && r.code == 0 {
				// The deploy had finished: its answer can reach the client before the kill does.
				t.Logf("the client had the deploy's result before the daemon died")
			} else {
				assert.Equal(t, 1, r.code)
				assert.Contains(t, r.stderr, "the daemon stopped", "the client says the daemon died")
				assert.Contains(t, r.stderr, "its proxy")
			}
			assert.NotContains(t, r.stderr, "previous version serves")
			t.Logf("load while the daemon was killed: %s", run.Stop())

			e.start(backend)
			st := e.waitRecovered()

			var rels []releaseLine
			r = e.run("releases", "--json")
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rels))
			current, serves := "", ""
			for _, rel := range rels {
				assert.NotEqual(t, "running", rel.Status, "v%d", rel.Version)
				if rel.Stable && current == "" {
					current, serves = fmt.Sprintf("v%d", rel.Version), tag(rel.Image)
				}
			}
			last := rels[0]
			assert.Equal(t, image, last.Image)
			if last.Status == "complete" {
				assert.Equal(t, fmt.Sprintf("v%d", last.Version), current)
			} else {
				assert.Equal(t, "rolled_back", last.Status)
				assert.Contains(t, last.Reason, "stopped before the deploy finished (killed or crashed)")
			}
			require.Len(t, st.Machines, 3, "the app runs its count")
			for _, m := range st.Machines {
				assert.Equal(t, current, m.Version)
				assert.Equal(t, "started", string(m.State))
				assert.Equal(t, 1, st.Targets[m.Addr], "routed")
			}

			run = deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
			require.NoError(t, run.WaitRequests(ctx, 400))
			lr := run.Stop()
			assert.Zero(t, lr.Failed, "%s: failed requests after the recovery: %v", p.at, lr.Errors)
			assert.Equal(t, []string{serves}, keys(lr.ByBody), "%s: only the current release serves", p.at)
		}()
	}
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
