package main_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/examples/cutover/internal/testlog"
)

// served is one `cutover serve` a test runs.
type served struct {
	log  *testlog.Buffer
	pid  int
	done chan struct{} // closed when it exited; then err is set
	err  error
	stop func() // SIGTERM, then a kill after a minute; checks it exited cleanly (once, or kill)
	kill func() // SIGKILL (once, or stop)
}

// startServe starts `cutover serve args...` in dir, stopped when the test
// ends. Its output goes to log, which stop and kill show the end of.
func startServe(t *testing.T, dir string, args ...string) *served {
	t.Helper()
	p := &served{log: &testlog.Buffer{}, done: make(chan struct{})}
	cmd := exec.Command(serveBin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = p.log, p.log
	require.NoError(t, cmd.Start())
	p.pid = cmd.Process.Pid
	go func() { p.err = cmd.Wait(); close(p.done) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
				assert.NoError(t, p.err, "the daemon exits cleanly on SIGTERM")
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-p.done
				t.Error("the daemon did not stop within a minute of SIGTERM")
			}
			assert.NotContains(t, p.log.String(), "DATA RACE")
			t.Logf("daemon log:\n%s", testlog.Tail(p.log.String(), 40))
		})
	}
	p.kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-p.done
			assert.NotContains(t, p.log.String(), "DATA RACE")
			t.Logf("daemon log (killed):\n%s", testlog.Tail(p.log.String(), 40))
		})
	}
	t.Cleanup(p.stop)
	return p
}

// daemon runs `cutover serve` with args in dir until the test ends (as
// startServe does), and waits until url answers (any status) and its
// recovery after the start ended.
func daemon(t *testing.T, dir, url string, args ...string) (stop func()) {
	t.Helper()
	p := startServe(t, dir, args...)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := c.Get(url)
		if err == nil {
			res.Body.Close()
			err = recovered(dir) // deploys are refused until the start's recovery ends
		}
		if err == nil {
			return p.stop
		}
		select {
		case <-p.done:
			t.Fatalf("the daemon exited: %v\n%s", p.err, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not answer at %s within a minute: %v\n%s", url, err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum GETs a Prometheus text page and sums the samples whose line
// starts with prefix (a name, perhaps with some labels).
func metricSum(t *testing.T, url, prefix string) float64 {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			require.NoError(t, err)
			sum += v
		}
	}
	return sum
}

// `serve --metrics-addr`: a scrape during a deploy under load shows the
// deploy running and the request counters moving; after it, the deploy
// counted by strategy and outcome, its duration and the health checks.
func TestMetricsDuringDeploy(t *testing.T) {
	e := newEnv(t, "mx", "demo:v1")
	maddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	murl := "http://" + maddr + "/metrics"
	daemon(t, e.dir, murl, "--backend", "mem", "--port", strconv.Itoa(e.port), "--metrics-addr", maddr)
	require.Equal(t, 0, e.run("deploy", "--count", "2").code)
	ctx := context.Background()
	run := deploytest.StartLoad(ctx, e.url(), deploytest.LoadOptions{Workers: 4, Duration: 5 * time.Minute})
	defer run.Stop()
	require.NoError(t, run.WaitRequests(ctx, 50))
	before := metricSum(t, murl, `cutover_proxy_requests_total{app="mx"`)
	require.Positive(t, before)

	done := make(chan result, 1)
	go func() { done <- e.run("deploy", "--image", "demo:v2") }()
	require.Eventually(t, func() bool {
		return metricSum(t, murl, `cutover_deploys_running{app="mx"}`) == 1 &&
			metricSum(t, murl, `cutover_proxy_requests_total{app="mx"`) > before
	}, time.Minute, 20*time.Millisecond, "a scrape during the deploy shows it running and requests counted")
	require.Equal(t, 0, (<-done).code)
	lr := run.Stop()
	require.Zero(t, lr.Failed, "%v", lr.Errors)

	assert.Equal(t, 2.0, metricSum(t, murl, `cutover_deploys_total{app="mx",outcome="succeeded",strategy="rolling"}`))
	assert.Equal(t, 2.0, metricSum(t, murl, `cutover_deploy_duration_seconds_count{app="mx",outcome="succeeded",strategy="rolling"}`))
	assert.GreaterOrEqual(t, metricSum(t, murl, `cutover_health_checks_total{app="mx",result="healthy"}`), 4.0)
	assert.Positive(t, metricSum(t, murl, `cutover_proxy_request_duration_seconds_count{app="mx"`))
}

// recovered returns nil once the daemon of the app in dir answers on its
// control socket and its recovery after the start ended.
func recovered(dir string) error {
	c := control.Dial(filepath.Join(dir, ".cutover", "cutover.sock"))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err == nil && st.Operation != nil && st.Operation.Kind == "recover" {
		err = errors.New("recovering")
	}
	return err
}
