package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/backend/retry"
	"github.com/cutover/deploy/deploytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRetryTransient(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	for _, op := range []mem.Op{mem.OpCreate, mem.OpStart, mem.OpStop, mem.OpDestroy} {
		b.Inject(mem.Fault{Op: op, Transient: true, Times: 2})
	}
	var retried []string
	rb := retry.Wrap(b, retry.Options{InitialInterval: time.Millisecond, OnRetry: func(op string, err error, _ time.Duration) {
		retried = append(retried, op)
		assert.ErrorIs(t, err, deploy.ErrTransient)
	}})
	ctx := context.Background()
	m, err := rb.Create(ctx, deploy.MachineSpec{App: "a", Image: "v1"})
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Destroy(ctx))
	assert.Equal(t, []string{"create", "create", "start", "start", "stop", "stop", "destroy", "destroy"}, retried)
	_, isLogReader := m.(deploy.LogReader)
	assert.True(t, isLogReader, "optional abilities stay visible")
}

func TestRetryBounded(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Inject(mem.Fault{Op: mem.OpCreate, Transient: true}) // forever
	calls := 0
	rb := retry.Wrap(b, retry.Options{MaxAttempts: 4, InitialInterval: time.Millisecond, OnRetry: func(string, error, time.Duration) { calls++ }})
	_, err := rb.Create(context.Background(), deploy.MachineSpec{App: "a", Image: "v1"})
	assert.ErrorIs(t, err, deploy.ErrTransient)
	assert.Equal(t, 3, calls, "4 attempts: 3 retries")

	calls = 0
	rb = retry.Wrap(b, retry.Options{MaxAttempts: 1000, MaxElapsed: 100 * time.Millisecond, InitialInterval: time.Millisecond, OnRetry: func(string, error, time.Duration) { calls++ }})
	_, err = rb.Create(context.Background(), deploy.MachineSpec{App: "a", Image: "v1"})
	assert.ErrorIs(t, err, deploy.ErrTransient)
	assert.Less(t, calls, 999, "MaxElapsed, not MaxAttempts, ended the retries")
}

func TestRetryPermanentAtOnce(t *testing.T) {
	b := mem.New()
	defer b.Close()
	boom := errors.New("quota exceeded")
	b.Inject(mem.Fault{Op: mem.OpCreate, Err: boom})
	calls := 0
	rb := retry.Wrap(b, retry.Options{OnRetry: func(string, error, time.Duration) { calls++ }})
	_, err := rb.Create(context.Background(), deploy.MachineSpec{App: "a", Image: "v1"})
	assert.ErrorIs(t, err, boom)
	assert.Zero(t, calls)
}

// The waits between attempts are on Options.Clock: minutes of backoff pass at
// once on a fake clock, by exactly the waits reported.
func TestRetryOnClock(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	b.Inject(mem.Fault{Op: mem.OpCreate, Transient: true, Times: 3})
	clock := deploytest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	var waited time.Duration
	rb := retry.Wrap(b, retry.Options{Clock: clock, InitialInterval: time.Minute, MaxElapsed: time.Hour,
		OnRetry: func(_ string, _ error, d time.Duration) { waited += d }})
	start := clock.Now()
	err := clock.Drive(context.Background(), func(ctx context.Context) error {
		m, err := rb.Create(ctx, deploy.MachineSpec{App: "a", Image: "v1"})
		if err == nil {
			err = m.Destroy(ctx)
		}
		return err
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, waited, 3*time.Minute/2, "three waits from a minute, with jitter")
	assert.Equal(t, waited, clock.Now().Sub(start))
}
