package deploy_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/rolling"
)

func withStore(t *testing.T) (*testenv.Env, deploy.Store) {
	e := testenv.New(t)
	store := release.NewMemory()
	e.Deployer.Store = store
	e.Deployer.Strategy = rolling.Strategy{}
	e.Backend.RegisterCommand("migrate", func(ctx context.Context, args []string, env map[string]string, out *mem.Output) int {
		for i := range 15 {
			fmt.Fprintf(out, "migration %d RELEASE_COMMAND=%s\n", i, env["RELEASE_COMMAND"])
		}
		if len(args) > 0 && args[0] == "fail" {
			io.WriteString(out, "error: relation \"users\" already exists\n")
			return 3
		}
		if len(args) > 0 && args[0] == "hang" {
			<-ctx.Done()
			return 143
		}
		return 0
	})
	return e, store
}

func TestReleaseCommandRunsFirst(t *testing.T) {
	e, store := withStore(t)
	ctx := context.Background()
	var lines []string
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type == deploy.ReleaseOutput {
			lines = append(lines, ev.Message)
		}
		if ev.Type == deploy.MachineCreated && len(lines) == 0 {
			t.Errorf("an app machine was created before the release command's output")
		}
	})
	res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v1"), Count: 2, ReleaseCommand: []string{"migrate", "up"}})
	require.NoError(t, err)
	assert.Len(t, lines, 15)
	assert.Equal(t, "migration 0 RELEASE_COMMAND=1", lines[0])
	assert.Equal(t, 1, res.Counts[deploy.ReleaseCommand])
	assert.Equal(t, 1, res.Counts[deploy.ReleaseCommandEnd])
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t), "the temporary machine is gone")
	rel, err := store.Get(ctx, testenv.App, 1)
	require.NoError(t, err)
	assert.Equal(t, deploy.ReleaseComplete, rel.Status)
}

func TestReleaseCommandFailureAborts(t *testing.T) {
	e, store := withStore(t)
	ctx := context.Background()
	e.MustDeploy(t, nil, "v1", 2)
	run := e.Load(t)
	require.NoError(t, run.WaitRequests(ctx, 100))
	res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v2"), ReleaseCommand: []string{"migrate", "fail"}})
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrAborted)
	var rce *deploy.ReleaseCommandError
	require.ErrorAs(t, err, &rce)
	assert.Equal(t, 3, rce.Code)
	assert.Len(t, rce.Tail, 10)
	assert.Equal(t, `error: relation "users" already exists`, rce.Tail[9])
	assert.ErrorContains(t, err, "exited with code 3")
	assert.Zero(t, res.Counts[deploy.MachineCreated], "no app machine was created")
	assert.Equal(t, map[string]int{"v1": 2}, e.Versions(t), "nothing changed; the temporary machine is gone")
	assert.Equal(t, 2, e.Backend.Count())
	deploytest.AssertNoFailures(t, run.Stop())

	rel, err := store.Get(ctx, testenv.App, 2)
	require.NoError(t, err)
	assert.Equal(t, deploy.ReleaseFailed, rel.Status)
	assert.False(t, rel.Stable)
	assert.Contains(t, rel.Reason, "exited with code 3")
}

func TestReleaseCommandTimeout(t *testing.T) {
	e, store := withStore(t)
	ctx := context.Background()
	e.MustDeploy(t, nil, "v1", 1)
	// "migrate hang" never exits: only the timeout ends it.
	_, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v2"), ReleaseCommand: []string{"migrate", "hang"}, ReleaseCommandTimeout: 200 * time.Millisecond})
	var rce *deploy.ReleaseCommandError
	require.ErrorAs(t, err, &rce)
	assert.True(t, rce.TimedOut)
	assert.ErrorContains(t, err, "timed out after 200ms")
	assert.Equal(t, 1, e.Backend.Count(), "the release machine was stopped and destroyed")
	rel, err := store.Get(ctx, testenv.App, 2)
	require.NoError(t, err)
	assert.Equal(t, deploy.ReleaseFailed, rel.Status)
}

func TestReleaseHistoryAndRollback(t *testing.T) {
	e, store := withStore(t)
	ctx := context.Background()
	for i, v := range []string{"v1", "v2", "v3"} {
		spec := e.Spec(v)
		spec.Env = map[string]string{"CONFIG": "config-of-" + v}
		spec.Version = ""
		res, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: spec, Count: 2, Description: "deploy " + v, User: "ana"})
		require.NoError(t, err)
		assert.Equal(t, i+1, res.Release)
		assert.Equal(t, v, res.Version)
	}
	// After v1, v2 and v3, a rollback to v1 is release v4 with v1's image and config.
	run := e.Load(t)
	res, err := e.Deployer.Rollback(ctx, testenv.App, 1)
	require.NoError(t, err)
	assert.Equal(t, 4, res.Release)
	ms, err := e.Backend.List(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	for _, m := range ms {
		assert.Equal(t, "v1", m.Spec().Image, "v1's image")
		assert.Equal(t, "config-of-v1", m.Spec().Env["CONFIG"], "v1's config")
		assert.Equal(t, "v4", m.Spec().Version)
	}
	deploytest.AssertNoFailures(t, run.Stop())

	// A failed v5 is recorded and cannot be rolled back to.
	e.Backend.Inject(mem.Fault{Image: "v5", FailStart: true})
	spec := e.Spec("v5")
	spec.Version = ""
	_, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: spec})
	require.Error(t, err)
	_, err = e.Deployer.Rollback(ctx, testenv.App, 5)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, "not a stable release")

	rels, err := store.List(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, rels, 5)
	assert.Equal(t, 5, rels[0].Version, "newest first")
	assert.Equal(t, deploy.ReleaseFailed, rels[0].Status)
	assert.False(t, rels[0].Stable)
	assert.Equal(t, "rollback to v1", rels[1].Description)
	assert.Equal(t, deploy.ReleaseComplete, rels[1].Status)
	assert.True(t, rels[1].Stable)
	assert.Equal(t, "v1", rels[1].Image)
	assert.Equal(t, "ana", rels[2].User)
	assert.Equal(t, "deploy v3", rels[2].Description)
	assert.Equal(t, "rolling", rels[2].Strategy)
	assert.Equal(t, "v3", rels[2].Image)
	assert.False(t, rels[2].Finished.Before(rels[2].Started))

	// With no version: the stable release before the current one (v4), so v3.
	res, err = e.Deployer.Rollback(ctx, testenv.App, 0)
	require.NoError(t, err)
	assert.Equal(t, 6, res.Release)
	rel, _ := store.Get(ctx, testenv.App, 6)
	assert.Equal(t, "rollback to v3", rel.Description)
	assert.Equal(t, "v3", rel.Image)

	_, err = e.Deployer.Rollback(ctx, testenv.App, 99)
	assert.ErrorIs(t, err, deploy.ErrNotFound)
	assert.True(t, strings.Contains(err.Error(), "v99"))
}
