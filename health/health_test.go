package health_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, b *mem.Backend, image string) deploy.Machine {
	t.Helper()
	ctx := context.Background()
	m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: image})
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	return m
}

func newBackend(t *testing.T) *mem.Backend {
	b := mem.New()
	b.Register("v1", deploytest.App("v1"))
	b.Register("hdr", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || r.Header.Get("X-Check") != "yes" || r.Host != "app.internal" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { b.Close() })
	return b
}

func TestHTTPCheck(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	m := start(t, b, "v1")
	assert.NoError(t, health.HTTP{Path: "/health"}.Check(ctx, m))
	assert.NoError(t, health.HTTP{}.Check(ctx, m), "zero value checks GET /")
	err := health.HTTP{Path: "/fail"}.Check(ctx, m)
	assert.ErrorContains(t, err, "status 500, want 200")

	h := start(t, b, "hdr")
	hdr := http.Header{"X-Check": {"yes"}, "Host": {"app.internal"}}
	assert.NoError(t, health.HTTP{Method: http.MethodHead, Headers: hdr, Status: http.StatusNoContent}.Check(ctx, h))
	assert.Error(t, health.HTTP{Method: http.MethodHead, Status: http.StatusNoContent}.Check(ctx, h))
}

func TestHTTPCheckTimeout(t *testing.T) {
	b := newBackend(t)
	m := start(t, b, "v1")
	// The app answers 200 after 5s: only the check's timeout makes it fail.
	err := health.HTTP{Path: "/slow?ms=5000", Timeout: 100 * time.Millisecond}.Check(context.Background(), m)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestTCPCheck(t *testing.T) {
	b := newBackend(t)
	m := start(t, b, "v1")
	assert.NoError(t, health.TCP{}.Check(context.Background(), m))
	require.NoError(t, m.Stop(context.Background()))
	assert.Error(t, health.TCP{}.Check(context.Background(), m))
}

func TestWaitHealthyThresholdAndGrace(t *testing.T) {
	b := newBackend(t)
	b.Inject(mem.Fault{Image: "v1", ListenAfter: 150 * time.Millisecond})
	m := start(t, b, "v1")
	counting := &countingCheck{HTTP: health.HTTP{Path: "/health", Interval: 20 * time.Millisecond, GracePeriod: 50 * time.Millisecond, Threshold: 3}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, deploy.WaitHealthy(ctx, m, counting))
	assert.GreaterOrEqual(t, counting.first.Sub(began), 50*time.Millisecond, "no check within the grace period")
	fails := slices.Index(counting.passed, true)
	assert.Positive(t, fails, "failed during boot")
	assert.Equal(t, []bool{true, true, true}, counting.passed[max(fails, 0):], "then exactly 3 consecutive passes")
}

// countingCheck records an HTTP check's results and notes when it first ran.
type countingCheck struct {
	health.HTTP
	first  time.Time
	passed []bool // each check's result, in order
}

func (c *countingCheck) Check(ctx context.Context, m deploy.Machine) error {
	if c.first.IsZero() {
		c.first = time.Now()
	}
	err := c.HTTP.Check(ctx, m)
	c.passed = append(c.passed, err == nil)
	return err
}

func TestWaitHealthyFailsFastOnCrash(t *testing.T) {
	b := newBackend(t)
	b.Inject(mem.Fault{Image: "v1", CrashAfter: 200 * time.Millisecond, Unhealthy: true})
	m := start(t, b, "v1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := deploy.WaitHealthy(ctx, m, health.HTTP{Path: "/health", Interval: 50 * time.Millisecond})
	assert.ErrorIs(t, err, deploy.ErrExited)
	assert.ErrorContains(t, err, "crashed")
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the crash ended the wait, not the 30s timeout")
}

func TestWaitHealthyTimeout(t *testing.T) {
	b := newBackend(t)
	b.Inject(mem.Fault{Image: "v1", Unhealthy: true})
	m := start(t, b, "v1")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := deploy.WaitHealthy(ctx, m, health.HTTP{Path: "/health", Interval: 20 * time.Millisecond})
	assert.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "status 503")
}

func TestAllPolicy(t *testing.T) {
	a := health.All{
		health.HTTP{Interval: 3 * time.Second, GracePeriod: time.Second},
		health.TCP{Interval: time.Second, GracePeriod: 5 * time.Second, Threshold: 2},
	}
	p := a.Policy()
	assert.Equal(t, deploy.HealthPolicy{GracePeriod: 5 * time.Second, Interval: time.Second, Threshold: 2}, p)
}

// A TCP check fails on a connection that the peer closes at once (a port
// forwarder with no app behind it) and passes on one it keeps open.
func TestTCPCheckClosedAtOnce(t *testing.T) {
	b := mem.New()
	b.PortForwarder = true
	defer b.Close()
	b.Register("late", deploytest.App("late"))
	b.Inject(mem.Fault{Image: "late", NeverListen: true})
	b.Register("v1", deploytest.App("v1"))
	ctx := context.Background()
	err := health.TCP{}.Check(ctx, start(t, b, "late"))
	assert.ErrorIs(t, err, deploy.ErrClosedAtOnce)
	assert.NoError(t, health.TCP{}.Check(ctx, start(t, b, "v1")))
}

func TestValidate(t *testing.T) {
	for want, v := range map[string]deploy.Validator{
		`http check: invalid: Scheme ftp: want "http" or "https"`: health.HTTP{Scheme: "ftp"},
		"http check: invalid: Status 42":                          health.HTTP{Status: 42},
		"http check: invalid: Port 70000":                         health.HTTP{Port: 70000},
		"http check: invalid: Timeout -1s":                        health.HTTP{Timeout: -time.Second},
		"http check: invalid: Interval -1s":                       health.HTTP{Interval: -time.Second},
		"http check: invalid: GracePeriod -1s":                    health.HTTP{GracePeriod: -time.Second},
		"http check: invalid: Threshold -1":                       health.HTTP{Threshold: -1},
		"tcp check: invalid: Hold -1s":                            health.TCP{Hold: -time.Second},
		"tcp check: invalid: Port -1":                             health.TCP{Port: -1},
		"check 2: tcp check: invalid: Interval -1s":               health.All{health.HTTP{}, health.TCP{Interval: -time.Second}},
	} {
		err := v.Validate()
		assert.ErrorIs(t, err, deploy.ErrInvalid, want)
		assert.ErrorContains(t, err, want)
	}
	for _, v := range []deploy.Validator{health.HTTP{}, health.HTTP{Scheme: "https", Status: 204, Port: 9090}, health.TCP{}, health.All{health.HTTP{}, health.TCP{}, deploy.DefaultCheck{}}} {
		assert.NoError(t, v.Validate(), "%#v", v)
	}
}
