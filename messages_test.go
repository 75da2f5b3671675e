package deploy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
)

// A deploy cancelled by its caller says so, with the caller's cause, and its
// release says the same; no machine is reported unhealthy.
func TestCancelledDeploySaysCancelled(t *testing.T) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.MustDeploy(t, bluegreen.Strategy{}, "v1", 2)
	e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: time.Hour}) // never healthy
	ctx, cancel := context.WithCancelCause(context.Background())
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.MachineStarted && ev.Version == "v2" {
			cancel(errors.New("the daemon is stopping"))
		}
	})
	_, err := e.Deploy(ctx, bluegreen.Strategy{}, "v2", 2)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "deploy cancelled: the daemon is stopping", err.Error())
	for _, ev := range e.Events() {
		assert.NotEqual(t, deploy.MachineUnhealthy, ev.Type, "no machine is unhealthy: %v", ev)
	}
	rel, err := store.Get(context.Background(), testenv.App, 2)
	require.NoError(t, err)
	assert.Equal(t, "deploy cancelled: the daemon is stopping", rel.Reason)
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t))
}

// When one new machine crashes, the ones started with it are stopped, not
// reported unhealthy, and the deploy's error names the crashed one.
func TestSiblingsOfACrashAreNotUnhealthy(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, bluegreen.Strategy{}, "v1", 1)
	e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: time.Hour})
	e.Backend.Inject(mem.Fault{Image: "v2", Nth: 2, CrashAfter: 50 * time.Millisecond})
	_, err := e.Deploy(context.Background(), bluegreen.Strategy{}, "v2", 3)
	require.ErrorIs(t, err, deploy.ErrExited)
	unhealthy := 0
	for _, ev := range e.Events() {
		if ev.Type == deploy.MachineUnhealthy {
			unhealthy++
			assert.ErrorIs(t, ev.Err, deploy.ErrExited, "only the crashed machine is reported: %v", ev)
		}
	}
	assert.Equal(t, 1, unhealthy, "the crashed machine is the only failure")
	assert.NotContains(t, err.Error(), "canceled")
	assert.Equal(t, map[string]int{"v1": 1}, e.Versions(t))
}
