package deploy_test

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

// countingStore is a release store and cross-process lock that counts the
// releases created and the locks taken.
type countingStore struct {
	*release.Memory
	creates, locks atomic.Int32
}

func (s *countingStore) Create(ctx context.Context, rel deploy.Release) (deploy.Release, error) {
	s.creates.Add(1)
	return s.Memory.Create(ctx, rel)
}

func (s *countingStore) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	s.locks.Add(1)
	return s.Memory.Lock(ctx, app, owner, ttl)
}

// badCheck is a health checker whose settings are wrong.
type badCheck struct{ deploy.DefaultCheck }

func (badCheck) Validate() error { return assert.AnError }

// TestValidateBeforeLock checks that bad settings of the strategy, the
// Deployer or the request fail with ErrInvalid, naming the setting, before
// the lock is taken or a release recorded: while a deploy of the app runs
// they say what is wrong rather than "deploy in progress", and they take no
// lock that could block the running deploy or the next.
func TestValidateBeforeLock(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	store := &countingStore{Memory: release.NewMemory()}
	e.Deployer.Store = store
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)

	held := blocking{entered: make(chan struct{}), release: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	var heldErr error
	go func() {
		defer wg.Done()
		_, heldErr = e.Deploy(ctx, held, "v2", 2)
	}()
	<-held.entered
	creates, locks := store.creates.Load(), store.locks.Load()

	other := &deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, Owner: "another process", Strategy: rolling.Strategy{}}
	spec := e.Spec("v3")
	for want, c := range map[string]struct {
		d   *deploy.Deployer
		req deploy.Request
	}{
		"canary: invalid: Steps[0].Percent 100: want 1..99": {e.Deployer, deploy.Request{Strategy: canary.Strategy{Steps: []canary.Step{{Percent: 100}}}}},
		"rolling: invalid: max_unavailable NaN":             {other, deploy.Request{Strategy: rolling.Strategy{MaxUnavailable: math.NaN()}}},
		"request: invalid: Count -1":                        {other, deploy.Request{Count: -1}},
		"request: invalid: WaitTimeout -1s":                 {other, deploy.Request{WaitTimeout: -time.Second}},
		"request: invalid: ReleaseCommandTimeout -1s":       {other, deploy.Request{ReleaseCommandTimeout: -time.Second}},
		"request: Health: invalid: assert.AnError":          {other, deploy.Request{Health: badCheck{}}},
		"deployer: invalid: WaitTimeout -1s":                {&deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, Strategy: rolling.Strategy{}, WaitTimeout: -time.Second}, deploy.Request{}},
		"deployer: invalid: LockTTL -1s":                    {&deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, Strategy: rolling.Strategy{}, LockTTL: -time.Second}, deploy.Request{}},
		"deployer: Health: invalid: assert.AnError":         {&deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, Strategy: rolling.Strategy{}, Health: badCheck{}}, deploy.Request{}},
		`group "web": invalid: Count -1`:                    {other, deploy.Request{Groups: []deploy.Group{{Name: "web", Spec: spec, Count: -1}}}},
		`group "web": invalid: two groups have this name`:   {other, deploy.Request{Groups: []deploy.Group{{Name: "web", Spec: spec}, {Name: "web", Spec: spec}}}},
		`group web: health check: invalid: assert.AnError`:  {other, deploy.Request{Groups: []deploy.Group{{Name: "web", Spec: spec, Health: badCheck{}}}}},
	} {
		if c.req.Spec.App == "" && c.req.Groups == nil {
			c.req.Spec = spec
		}
		res, err := c.d.Deploy(ctx, c.req)
		assert.ErrorIs(t, err, deploy.ErrInvalid, want)
		assert.NotErrorIs(t, err, deploy.ErrDeployInProgress, want)
		assert.ErrorContains(t, err, want)
		require.NotNil(t, res, want)
		assert.Equal(t, deploy.StatusFailed, res.Status, want)
		assert.Zero(t, res.Release, "%s: no release recorded", want)
	}
	assert.Equal(t, creates, store.creates.Load(), "no release was recorded")
	assert.Equal(t, locks, store.locks.Load(), "no lock was asked for")

	close(held.release)
	wg.Wait()
	require.NoError(t, heldErr, "the running deploy went on undisturbed")
	res, err := other.Deploy(ctx, deploy.Request{Spec: spec, Strategy: rolling.Strategy{}, Health: health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}})
	require.NoError(t, err, "nothing was left locked")
	assert.Equal(t, 3, res.Release, "v1, v2 and v3 recorded; none of the refused deploys")
	rels, err := store.List(ctx, testenv.App)
	require.NoError(t, err)
	assert.Len(t, rels, 3)
}

// Scale and Recover refuse the Deployer settings Deploy refuses, before they
// take the app's lock.
func TestScaleAndRecoverValidateTheDeployer(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	store := &countingStore{Memory: release.NewMemory()}
	e.Deployer.Store = store
	e.MustDeploy(t, rolling.Strategy{}, "v1", 1)
	locks := store.locks.Load()

	bad := &deploy.Deployer{Backend: e.Backend, Router: e.Proxy, Store: store, LockTTL: -time.Second}
	_, err := bad.Scale(ctx, testenv.App, 2)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, "scale: deployer: invalid: LockTTL -1s")
	_, err = bad.Recover(ctx, testenv.App)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, "recover: deployer: invalid: LockTTL -1s")
	assert.Equal(t, locks, store.locks.Load(), "no lock was asked for")
	assert.Equal(t, map[string]int{"v1": 1}, e.Versions(t))
}
