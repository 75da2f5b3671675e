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
	"github.com/cutover/deploy/strategy/bluegreen"
)

// Machines that leave traffic together are stopped together: three old
// machines whose shutdown takes a second each stop in about one second, not
// three, and each machine_stopped event says how the machine exited.
func TestRetireStopsTogether(t *testing.T) {
	e := testenv.New(t)
	const slow = time.Second
	e.Backend.Inject(mem.Fault{Image: "v1", IgnoreStopFor: slow}) // read when the machines start
	e.MustDeploy(t, bluegreen.Strategy{}, "v1", 3)
	res := e.MustDeploy(t, bluegreen.Strategy{}, "v2", 3)
	require.Equal(t, deploy.StatusSucceeded, res.Status)
	var stopped []deploy.Event
	for _, ev := range e.Events() {
		if ev.Type == deploy.MachineStopped && ev.Version == "v1" {
			stopped = append(stopped, ev)
		}
	}
	require.Len(t, stopped, 3)
	span := stopped[2].Time.Sub(stopped[0].Time)
	assert.Less(t, span, slow, "the stops overlapped: one after the other they would be %s apart", slow)
	for _, ev := range stopped {
		assert.Equal(t, "exit code 0 (stopped)", ev.Message, ev.String())
	}
}

// machine_stopped says when a machine was killed after its stop timeout.
func TestStoppedEventSaysKilled(t *testing.T) {
	e := testenv.New(t)
	e.StopTimeout = 200 * time.Millisecond
	e.Backend.Inject(mem.Fault{Image: "v1", IgnoreStopFor: time.Hour})
	e.MustDeploy(t, bluegreen.Strategy{}, "v1", 1)
	e.MustDeploy(t, bluegreen.Strategy{}, "v2", 1)
	var msgs []string
	for _, ev := range e.Events() {
		if ev.Type == deploy.MachineStopped && ev.Version == "v1" {
			msgs = append(msgs, ev.Message)
		}
	}
	assert.Equal(t, []string{"exit code 137 (killed after stop timeout)"}, msgs)
}

// A health wait that runs out says which timeout, and what the last check saw.
func TestHealthWaitNamesItsTimeout(t *testing.T) {
	e := testenv.New(t)
	e.Backend.Inject(mem.Fault{Image: "v1", Unhealthy: true})
	_, err := e.Deployer.Deploy(context.Background(), deploy.Request{Spec: e.Spec("v1"), Count: 1, Strategy: bluegreen.Strategy{}, WaitTimeout: 300 * time.Millisecond})
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrUnhealthy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "not healthy within the 300ms wait timeout; last check: http check GET /health: status 503, want 200")
	var pe *deploy.PhaseError
	assert.True(t, errors.As(err, &pe))
}
