package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/examples/cutover/internal/testlog"
)

// startCmd starts the cutover binary in the app directory; wait returns its result.
func (e *env) startCmd(args ...string) (*exec.Cmd, func() result) {
	e.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.dir
	var out, errb testlog.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(e.t, cmd.Start())
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		r := result{stdout: out.String(), stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		done <- r
	}()
	e.t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, func() result {
		select {
		case r := <-done:
			e.t.Logf("cutover %s: exit %d\n%s%s", strings.Join(args, " "), r.code, testlog.Tail(r.stdout, 15), r.stderr)
			return r
		case <-time.After(3 * time.Minute):
			e.t.Fatalf("cutover %v did not end within 3 minutes", args)
			return result{}
		}
	}
}

// waitOperation waits until the daemon runs an operation for which ok is
// true; more are flags of cutover status (such as -c).
func (e *env) waitOperation(ok func(*control.Operation) bool, more ...string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		var st control.Status
		r := e.run(append([]string{"status", "--json"}, more...)...)
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st.Operation != nil && ok(st.Operation)
	}, time.Minute, 100*time.Millisecond)
}

func lastRelease(t *testing.T, e *env) releaseLine {
	t.Helper()
	var rels []releaseLine
	r := e.run("releases", "--json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rels), r.stdout)
	require.NotEmpty(t, rels)
	return rels[0]
}

// Ctrl-C on `cutover deploy` aborts the deploy (it rolls back) and exits 1;
// `cutover abort` stops a canary; with nothing running abort says so.
func TestInterruptAndAbort(t *testing.T) {
	e := newEnv(t, "abort", "demo:v1")
	e.start("mem")
	require.Equal(t, 0, e.run("deploy", "--image", "demo:v1", "--count", "2").code)

	// Ctrl-C while a machine waits for its checks (demo:unhealthy never passes).
	cmd, wait := e.startCmd("deploy", "--image", "demo:unhealthy", "--wait-timeout", "120")
	e.waitOperation(func(op *control.Operation) bool { return op.Kind == "deploy" && op.Version != "" }) // its release exists
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	r := wait()
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "interrupted: aborting the deploy")
	assert.Contains(t, r.stderr, "was aborted")
	assert.Contains(t, r.stderr, "deploy cancelled: aborted by the user")
	assert.NotContains(t, r.stderr, "unhealthy")
	rel := lastRelease(t, e)
	assert.Equal(t, "demo:unhealthy", rel.Image)
	assert.NotEqual(t, "running", rel.Status)
	assert.Contains(t, rel.Reason, "deploy cancelled: aborted by the user")

	// abort stops a canary.
	_, wait = e.startCmd("deploy", "--image", "demo:v3", "--strategy", "canary", "--canary-steps", "20,60", "--canary-step-duration", "90")
	require.Eventually(t, func() bool { return strings.Contains(e.log.String(), "canary_step") }, time.Minute, 50*time.Millisecond)
	r = e.run("abort")
	require.Equal(t, 0, r.code, r.stderr)
	r = wait()
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "==> canary step 1/2: 1 canary machines at 20% for 1m30s (v3)")
	assert.Contains(t, r.stderr, "was aborted")
	assert.Contains(t, r.stderr, "v1 serves")

	r = e.run("abort")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no deploy is running")

	// scale (no release made) and destroy.
	before := lastRelease(t, e)
	r = e.run("scale", "3")
	require.Equal(t, 0, r.code, r.stderr)
	st := statusOf(t, e)
	require.Len(t, st.Machines, 3)
	assert.Equal(t, "demo:v1", st.Machines[0].Image)
	assert.Equal(t, before.Version, lastRelease(t, e).Version, "a scale makes no release")
	assert.Equal(t, 2, e.run("scale", "0").code)
	r = e.run("destroy")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "pass --yes")
	r = e.run("destroy", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "destroyed 3 machines")
	st = statusOf(t, e)
	assert.Empty(t, st.Machines)
}

// The messages of issue 19: a deploy cancelled by the daemon's SIGTERM says
// so (and its release), a deploy refused by a lock says who holds it and not
// that nothing served, --count 0 is a usage error.
func TestMessagesTellTheTruth(t *testing.T) {
	e := newEnv(t, "truth", "demo:v1")
	r := e.run("deploy", "--count", "0")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "--count 0: want a number of machines, at least 1")

	e.start("mem")
	require.Equal(t, 0, e.run("deploy", "--image", "demo:v1", "--count", "2").code)

	// A lock another process holds (say a daemon on another state directory
	// sharing this history): refused, nothing changed, no "nothing was serving".
	lock := filepath.Join(e.dir, ".cutover", "releases", "truth", "deploy.lock")
	require.NoError(t, os.WriteFile(lock, fmt.Appendf(nil, `{"owner":"another daemon","expires":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339Nano)), 0o644))
	r = e.run("deploy", "--image", "demo:v2")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "locked by another daemon")
	assert.NotContains(t, r.stderr, "nothing was serving")
	require.NoError(t, os.Remove(lock))

	// SIGTERM to the daemon during a deploy.
	_, wait := e.startCmd("deploy", "--image", "demo:unhealthy", "--wait-timeout", "2m")
	e.waitOperation(func(op *control.Operation) bool { return op.Kind == "deploy" && op.Version != "" }) // its release exists
	e.stop()
	r = wait()
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "deploy cancelled: the cutover daemon is stopping")
	assert.NotContains(t, r.stderr, "unhealthy: ")
	assert.NotContains(t, e.log.String(), "machine_unhealthy")
	rel := lastRelease(t, e)
	assert.Equal(t, "deploy cancelled: the cutover daemon is stopping", rel.Reason)
}
