package main_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/deploy/examples/cutover/internal/testlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	daemonLine  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)
	machineLine = regexp.MustCompile(`^\[m\S+ v\d+\] `)
)

// lineKinds counts the daemon's lines and the machines' lines of out.
func lineKinds(t *testing.T, out string) (daemon, machines int) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case l == "":
		case daemonLine.MatchString(l):
			daemon++
		case machineLine.MatchString(l):
			machines++
		default:
			t.Errorf("a line of neither the daemon nor a machine: %q", l)
		}
	}
	return daemon, machines
}

// `cutover logs -n N` and `--since D` select the daemon's lines and each
// machine's output alike, with -f and without: -n keeps the last N of each,
// --since what was written since; with -f new lines follow.
func TestLogsSelect(t *testing.T) {
	e := newEnv(t, "shop", "demo:v1")
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "fly.toml"), []byte(groupsTOML), 0o644))
	e.start("mem")
	r := e.run("deploy", "--count", "2") // 2 workers, logging a job done twice a second
	require.Equal(t, 0, r.code, r.stderr)
	jobs := map[string]int64{}
	e.follow([]string{"logs", "-f"}, func(line string) bool { // until each worker logged 4 lines
		if machineLine.MatchString(line) {
			jobs[strings.Fields(line)[0]]++
		}
		ks := keys(jobs)
		return len(ks) == 2 && min(jobs[ks[0]], jobs[ks[1]]) >= 4
	})

	r = e.run("logs")
	require.Equal(t, 0, r.code, r.stderr)
	all, machines := lineKinds(t, r.stdout)
	assert.Greater(t, all, 10)
	assert.GreaterOrEqual(t, machines, 8)
	assert.Contains(t, r.stdout, `demo worker "--queue orders" (group worker): working until stopped`)

	r = e.run("logs", "-n", "3")
	assert.Equal(t, [2]int{3, 6}, kinds(t, r.stdout), "the last 3 daemon lines, the last 3 of each worker")
	assert.NotContains(t, r.stdout, "working until stopped", "a worker's first line is not among its last 3")
	n := 0
	out := e.follow([]string{"logs", "-f", "-n", "3"}, func(line string) bool {
		n++
		return n == 9 // what is kept comes first, then new lines
	})
	assert.Equal(t, [2]int{3, 6}, kinds(t, out), "-f: the same, then new lines")
	assert.NotContains(t, out, "working until stopped")
	r = e.run("logs", "-n", "1", "--since", "10m")
	assert.Equal(t, [2]int{1, 2}, kinds(t, r.stdout))

	// --since 1ms: nothing kept is that recent. With -f, new lines come: the
	// workers' next jobs, a scale's lines and the new worker's.
	r = e.run("logs", "--since", "1ms")
	assert.Empty(t, r.stdout)
	scaled := make(chan result, 1)
	out = e.follow([]string{"logs", "-f", "--since", "1ms"}, func(line string) bool {
		if line == "" { // following: scale now
			go func() { scaled <- e.run("scale", "worker=3") }()
		}
		return strings.Contains(line, "working until stopped") // the new worker started
	})
	require.Equal(t, 0, (<-scaled).code)
	assert.Equal(t, 1, strings.Count(out, "working until stopped"), "the new worker's first line only:\n%s", out)
	assert.Contains(t, out, "scale_started")
	assert.NotContains(t, out, "deploy_succeeded", "nothing from before")
}

func kinds(t *testing.T, out string) [2]int {
	d, m := lineKinds(t, out)
	return [2]int{d, m}
}

// follow runs `cutover ARGS` (such as logs -f) and returns its output once
// done reports true for a line, or the command ends by itself; done is
// first called with "" once the command runs, and always from one goroutine.
func (e *env) follow(args []string, done func(line string) bool) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.dir
	stdout, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	require.NoError(e.t, cmd.Start())
	var mu sync.Mutex
	var b strings.Builder
	finished := make(chan struct{})
	go func() { // done is called here only
		defer close(finished)
		if done("") {
			_ = cmd.Process.Signal(syscall.SIGINT)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			b.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if done(sc.Text()) {
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
		}
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		e.t.Errorf("cutover %v did not end", args)
	}
	_ = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	e.t.Logf("cutover %s:\n%s", strings.Join(args, " "), testlog.Tail(b.String(), 15))
	return b.String()
}
