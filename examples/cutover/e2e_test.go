package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/examples/cutover/internal/testlog"
)

var (
	bin      string // the commands
	serveBin string // the daemon: built with -race when the tests are
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cutover-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, serveBin = filepath.Join(dir, "cutover"), filepath.Join(dir, "cutover")
	builds := [][]string{{"build", "-o", bin, "."}}
	if raceEnabled {
		// The daemon runs under the race detector too. The commands do not:
		// a race-enabled binary takes about a second to start here.
		serveBin = filepath.Join(dir, "cutover-race")
		builds = append(builds, []string{"build", "-race", "-o", serveBin, "."})
	}
	start := time.Now()
	for _, args := range builds {
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %v: %v\n%s", args, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "built cutover (daemon race=%v) in %v\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is one app directory with a fly.toml, and the daemon serving it.
type env struct {
	t    *testing.T
	dir  string
	port int
	log  *testlog.Buffer
	pid  int
	stop func()        // stops the daemon (once)
	kill func()        // kills the daemon with SIGKILL instead (once)
	done chan struct{} // closed when the daemon exited
}

// restart stops the daemon gracefully and starts a new one.
func (e *env) restart(backend string) {
	e.t.Helper()
	e.stop()
	e.start(backend)
}

// get returns the body of a GET of url, or "" on any failure.
func get(url string) string {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

const flyTOML = `app = %q
kill_timeout = 5

[build]
  image = %q

[deploy]
  strategy = "rolling"
  wait_timeout = "60s"

[http_service]
  internal_port = 8080

  [[http_service.checks]]
    path = "/health"
    interval = "200ms"
    timeout = "2s"
`

func newEnv(t *testing.T, app, image string) *env {
	// A short directory: the control socket's path must fit in sun_path.
	dir, err := os.MkdirTemp("", "ce")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fly.toml"), fmt.Appendf(nil, flyTOML, app, image), 0o644))
	return &env{t: t, dir: dir, port: freePort(t)}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the cutover binary in the app directory, bounded to 3 minutes.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else {
		require.NoError(e.t, err, "cutover %v", args)
	}
	e.t.Logf("cutover %s: exit %d\n%s%s", strings.Join(args, " "), r.code, testlog.Tail(r.stdout, 15), r.stderr)
	return r
}

// start runs `cutover serve` and waits until its socket answers and its
// recovery after the start ended (deploys are refused until then). Cleanup
// stops it with SIGTERM (killing it if it does not stop within a minute).
func (e *env) start(backend string, more ...string) {
	e.t.Helper()
	p := startServe(e.t, e.dir, append([]string{"--backend", backend, "--port", strconv.Itoa(e.port)}, more...)...)
	e.log, e.pid, e.done, e.stop, e.kill = p.log, p.pid, p.done, p.stop, p.kill
	c := control.Dial(filepath.Join(e.dir, ".cutover", "cutover.sock"))
	defer c.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.Status(ctx)
		cancel()
		if err == nil && st.PID == p.pid && (st.Operation == nil || st.Operation.Kind != "recover") {
			return
		}
		if err == nil {
			err = fmt.Errorf("pid %d answers, running %v", st.PID, st.Operation) // the daemon this one takes over from, or recovering
		}
		select {
		case <-p.done:
			e.t.Fatalf("the daemon exited: %v\n%s", p.err, e.log.String())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the daemon did not answer within a minute: %v\n%s", err, e.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) url() string { return "http://127.0.0.1:" + strconv.Itoa(e.port) }

// lastJSON decodes the last line of out.
func lastJSON(t *testing.T, out string, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), v), "last line of %q", out)
}

type releaseLine struct {
	Version     int    `json:"version"`
	Stable      bool   `json:"stable"`
	Status      string `json:"status"`
	Description string `json:"description"`
	User        string `json:"user"`
	Image       string `json:"image"`
	Reason      string `json:"reason"`
	Date        time.Time
}

// scenario serves the app, deploys images[0], then images[1] and images[2]
// under continuous load, lists the releases, rolls back, and checks the
// status and that no request failed. versions[i] is what images[i] answers.
func scenario(t *testing.T, e *env, backend string, images, versions [3]string) {
	e.start(backend)
	r := e.run("deploy", "--image", images[0], "--count", "2")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "deployed with rolling")

	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 10 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))

	r = e.run("deploy", "--image", images[1])
	require.Equal(t, 0, r.code, r.stderr)
	r = e.run("deploy", "--image", images[2], "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var res control.Result
	lastJSON(t, r.stdout, &res)
	assert.Equal(t, "succeeded", string(res.Status))
	assert.Equal(t, "v3", res.Version)
	assert.Equal(t, "v2", res.FromVersion)
	assert.Len(t, res.Machines, 2)
	assert.Contains(t, r.stdout, `"type":"machine_draining"`, "events come as JSON lines before the result")

	r = e.run("releases", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var rels []releaseLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rels))
	require.Len(t, rels, 3)
	for i, rel := range rels {
		assert.Equal(t, 3-i, rel.Version)
		assert.True(t, rel.Stable)
		assert.Equal(t, "complete", rel.Status)
		assert.Equal(t, images[2-i], rel.Image)
		assert.Equal(t, "deploy image "+images[2-i], rel.Description)
		assert.NotEmpty(t, rel.User)
		assert.WithinDuration(t, time.Now(), rel.Date, 10*time.Minute)
	}

	r = e.run("rollback", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"type":"rollback_started"`)
	assert.Contains(t, r.stdout, "to v2 (image "+images[1]+", 2 machines) with the strategy it was deployed with, rolling")
	lastJSON(t, r.stdout, &res)
	assert.Equal(t, "succeeded", string(res.Status))
	assert.Equal(t, "v4", res.Version)

	// After the rollback only images[1] serves.
	deploytest.OnlyVersion(t, run, versions[1], 50)

	r = e.run("releases")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "rollback to v2")
	assert.Regexp(t, `VERSION\s+STABLE\s+TYPE\s+STATUS\s+DESCRIPTION\s+USER\s+DATE\n`, r.stdout)
	assert.Regexp(t, `\nv4 \*\s+true\s+rollback\s+complete\s+rollback to v2\s+\S+\s+\d+s ago\n`, r.stdout, "the current release marked, its type, the date as fly writes it")
	assert.Regexp(t, `\nv3\s+true\s+release\s+complete\s`, r.stdout)

	r = e.run("status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var st control.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.Equal(t, backend, st.Backend)
	require.Len(t, st.Machines, 2)
	for _, m := range st.Machines {
		assert.Equal(t, "v4", m.Version)
		assert.Equal(t, images[1], m.Image)
		assert.Equal(t, "started", string(m.State))
		assert.Equal(t, "passing", m.Health)
		assert.Equal(t, 1, m.Weight)
		assert.Equal(t, 1, st.Targets[m.Addr])
	}
	assert.Len(t, st.Targets, 2)
	r = e.run("status")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "versions v4×2")

	r = e.run("logs")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "deploy_succeeded")

	lr := run.Stop()
	t.Logf("load: %s", lr)
	assert.Zero(t, lr.Failed, "failed requests: %v", lr.Errors)
	assert.NotZero(t, lr.ByBody[versions[0]])
	assert.NotZero(t, lr.ByBody[versions[2]])
}

func TestEndToEndMem(t *testing.T) {
	e := newEnv(t, "e2e", "demo:v1")
	scenario(t, e, "mem", [3]string{"demo:v1", "demo:v2", "demo:v3"}, [3]string{"v1", "v2", "v3"})

	// A deploy that fails under load: exit 1, the previous version serves, no request fails.
	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	r := e.run("deploy", "--image", "demo:unhealthy", "--wait-timeout", "1s")
	assert.Equal(t, 1, r.code)
	assert.Regexp(t, `^cutover deploy: deploy of e2e v5 failed: machine \S+: health: .*; v4 serves\n$`, r.stderr)
	r = e.run("deploy", "--image", "demo:crash", "--count", "3", "--json")
	assert.Equal(t, 1, r.code)
	var res control.Result
	lastJSON(t, r.stdout, &res)
	assert.Contains(t, []string{"failed", "rolled_back"}, string(res.Status))
	assert.Contains(t, res.Error, "exited")
	lr := run.Stop()
	assert.Zero(t, lr.Failed, "failed requests: %v", lr.Errors)
	assert.Equal(t, map[string]int64{"v2": lr.ByBody["v2"]}, lr.ByBody)

	r = e.run("releases", "--json")
	var rels []releaseLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rels))
	require.Len(t, rels, 6)
	assert.Equal(t, "failed", rels[1].Status)
	assert.False(t, rels[0].Stable)
	r = e.run("releases")
	assert.Contains(t, r.stdout, "Why releases did not complete:\n")
	assert.Regexp(t, `\n  v5 failed: machine \S+: health: `, r.stdout, "the reason a release failed")

	// A held bluegreen deploy, promoted from another command.
	r = e.run("deploy", "--strategy", "bluegreen", "--hold", "--image", "demo:v7", "--detach")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "goes on in the daemon")
	e.waitOperation(func(op *control.Operation) bool { return op.Held })
	r = e.run("promote")
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool {
		var st control.Status
		r := e.run("status", "--json")
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st.Operation == nil && len(st.Machines) == 2 && st.Machines[0].Version == "v7"
	}, time.Minute, 100*time.Millisecond)
	r = e.run("abort")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "no deploy is running")

	// Bluegreen held then aborted: exit 1, "was aborted".
	done := make(chan result, 1)
	go func() { done <- e.run("deploy", "--strategy", "bluegreen", "--hold", "--image", "demo:v8") }()
	e.waitOperation(func(op *control.Operation) bool { return op.Held })
	require.Equal(t, 0, e.run("abort").code)
	r = <-done
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "was aborted")
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, "bad", "demo:v1")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "deploy"},
		{[]string{"frob"}, 2, `unknown command "frob"`},
		{[]string{"deploy", "-c", "missing.toml"}, 2, "missing.toml not found: pass -c PATH or create one"},
		{[]string{"deploy", "--strategy", "fast"}, 2, `unknown strategy "fast": pass --strategy rolling, bluegreen, canary or immediate`},
		{[]string{"deploy", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"deploy", "--hold"}, 2, "--hold needs the bluegreen strategy"},
		{[]string{"rollback", "vX"}, 2, `bad version "vX"`},
		{[]string{"deploy"}, 1, "cannot reach the cutover daemon at .cutover/cutover.sock: start it with `cutover serve -c fly.toml`"},
		{[]string{"status"}, 1, "cannot reach the cutover daemon"},
		{[]string{"serve", "--backend", "vm"}, 2, `unknown backend "vm": pass --backend docker, --backend swarm or --backend mem`},
		{[]string{"releases"}, 0, "bad has no releases yet"},
		{[]string{"help", "deploy"}, 0, "Usage: cutover deploy "},
		{[]string{"version"}, 0, "cutover "},
		{[]string{"deploy", "--count", "0"}, 2, "--count 0: want a number of machines, at least 1"},
		{[]string{"deploy", "--wait-timeout", "soon"}, 2, "want seconds (120) or a duration (2m, 90s, 1m30s)"},
	}
	for _, c := range cases {
		r := e.run(c.args...)
		assert.Equal(t, c.code, r.code, "cutover %v", c.args)
		out := r.stderr
		if c.code == 0 {
			out = r.stdout
		}
		assert.Contains(t, out, c.want, "cutover %v", c.args)
		if c.code != 0 {
			assert.Equal(t, 1, strings.Count(out, "\n"), "one line: %q", out)
			assert.Empty(t, r.stdout, "cutover %v: nothing on stdout", c.args)
		}
	}
	r := e.run("--help")
	for _, cmd := range []string{"serve", "deploy", "releases", "rollback", "status", "logs", "promote", "abort", "scale", "destroy"} {
		assert.Contains(t, r.stdout, "\n  "+cmd+" ")
	}
	for _, cmd := range []string{"serve", "deploy", "releases", "rollback", "status", "logs", "promote", "abort", "scale", "destroy"} {
		r := e.run(cmd, "--help")
		assert.Equal(t, 0, r.code)
		assert.Equal(t, 1, strings.Count(r.stdout, "Usage: cutover "+cmd+" "), "the usage once: %q", r.stdout)
	}

	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "broken.toml"), []byte("app = \"x\"\n[deploy]\nstrategy = \"blue-green\"\nwait_timeout = -1\n"), 0o644))
	r = e.run("deploy", "-c", "broken.toml")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `invalid broken.toml: line 3, column 1: deploy.strategy: unknown strategy "blue-green"`)
	assert.Contains(t, r.stderr, "(and 1 more)")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))

	// A key nothing reads is warned about, with the closest known key.
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "typo.toml"), []byte("app = \"bad\"\n[deploy]\nstratgy = \"canary\"\n"), 0o644))
	r = e.run("releases", "-c", "typo.toml")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, `warning: typo.toml: unknown key "deploy.stratgy": did you mean "deploy.strategy"?`)

	// A second daemon on the same state directory is refused.
	e.start("mem")
	r = e.run("serve", "--backend", "mem", "--port", "0")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "a cutover daemon already runs for the state directory .cutover")
	r = e.run("deploy", "--backend", "docker")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "runs the mem backend, not docker")
}
