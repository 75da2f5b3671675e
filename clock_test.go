package deploy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
)

// A context from WithTimeout on a fake clock ends as context.WithTimeout's
// does, when the clock passes its deadline, and so do contexts derived from it.
func TestWithTimeoutOnClock(t *testing.T) {
	clock := deploytest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ctx, cancel := deploy.WithTimeout(context.Background(), clock, time.Minute)
	defer cancel()
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	_, hasDeadline := ctx.Deadline()
	assert.False(t, hasDeadline, "a fake deadline is not shown to real I/O")

	clock.Advance(59 * time.Second)
	assert.NoError(t, ctx.Err())
	clock.Advance(time.Second)
	<-child.Done()
	for _, c := range []context.Context{ctx, child} {
		assert.Equal(t, context.DeadlineExceeded, c.Err())
		assert.Equal(t, context.DeadlineExceeded, context.Cause(c))
	}
}

func TestWithTimeoutOnClockCancelled(t *testing.T) {
	clock := deploytest.NewClock(time.Now())
	why := errors.New("stopped by the user")
	parent, stop := context.WithCancelCause(context.Background())
	ctx, cancel := deploy.WithTimeout(parent, clock, time.Minute)
	defer cancel()
	stop(why)
	<-ctx.Done()
	assert.Equal(t, context.Canceled, ctx.Err())
	assert.Equal(t, why, context.Cause(ctx))
	cancel()
	assert.Zero(t, clock.Pending(), "cancel disarms the deadline")

	ctx, cancel = deploy.WithTimeout(context.Background(), clock, time.Minute)
	cancel()
	assert.Equal(t, context.Canceled, ctx.Err())
	assert.Zero(t, clock.Pending())
}

// With no clock (or RealClock) it is context.WithTimeout.
func TestWithTimeoutRealClock(t *testing.T) {
	for _, c := range []deploy.Clock{nil, deploy.RealClock{}} {
		ctx, cancel := deploy.WithTimeout(context.Background(), c, time.Hour)
		dl, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
		cancel()
	}
}
