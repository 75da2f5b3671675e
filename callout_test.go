package deploy_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/rolling"
)

// slowDrain is a router whose drains (SetTargets calls that remove a target)
// last until release is closed, as a drain of long requests does; it gives up
// after a bound so that a deadlock fails the test instead of hanging it.
type slowDrain struct {
	deploy.Router
	wr      deploy.WeightReporter
	release chan struct{}
	timeout atomic.Bool
}

func (s *slowDrain) SetTargets(ctx context.Context, t map[string]int) error {
	for a := range s.wr.Targets() {
		if _, ok := t[a]; !ok {
			select {
			case <-s.release:
			case <-time.After(10 * time.Second):
				s.timeout.Store(true)
				return errors.New("drain never released: the callbacks were blocked")
			}
			break
		}
	}
	return s.Router.SetTargets(ctx, t)
}

// keep records the Rollout a strategy gets, so that the test can call into it.
type keep struct {
	deploy.Strategy
	r atomic.Pointer[deploy.Rollout]
}

func (k *keep) Deploy(ctx context.Context, r *deploy.Rollout) error {
	k.r.Store(r)
	return k.Strategy.Deploy(ctx, r)
}

// OnEvent, and code it starts, may call back into the Rollout, the Deployer
// and the Monitor while a drain is slow: no lock is held across the event nor
// across the router's SetTargets, so the drain (which here waits for those
// calls) ends and the deploy succeeds.
func TestCallBackDuringSlowDrain(t *testing.T) {
	e := testenv.New(t)
	e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	slow := &slowDrain{Router: e.Proxy, wr: e.Proxy, release: make(chan struct{})}
	mon := &deploy.Monitor{Router: slow, Backend: e.Backend, App: testenv.App,
		Health: health.HTTP{Path: "/health", Timeout: 500 * time.Millisecond}}
	require.NoError(t, mon.SetTargets(context.Background(), e.Proxy.Targets()))
	e.Deployer.Router = mon
	k := &keep{Strategy: rolling.Strategy{}}

	var once sync.Once
	var wg sync.WaitGroup
	calls := 0
	callBack := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := e.Deployer.Status(ctx, testenv.App)
		assert.NoError(t, err)
		assert.NotEmpty(t, st)
		assert.NotEmpty(t, mon.Targets())
		assert.Empty(t, mon.Down())
		k.r.Load().SetDowntime(0)
	}
	e.OnEvent(func(ev deploy.Event) {
		if ev.Type != deploy.MachineDraining {
			return
		}
		callBack() // in the event itself
		calls++
		once.Do(func() {
			wg.Add(1)
			go func() { // and during the drain, which waits for it
				defer wg.Done()
				mon.Round(context.Background(), nil, time.Second) // its bookkeeping too
				callBack()
				close(slow.release)
			}()
		})
	})
	res, err := e.Deploy(context.Background(), k, "v2", 2)
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, deploy.StatusSucceeded, res.Status)
	assert.False(t, slow.timeout.Load(), "a drain waited for a callback that was blocked")
	assert.Equal(t, 2, calls, "one drain per old machine")
	assert.Equal(t, map[string]int{"v2": 2}, e.RoutedVersions(t))
}

// Monitor.OnEvent may read the Monitor while its change reaches a router
// that drains slowly.
func TestMonitorEventCallsBack(t *testing.T) {
	e := testenv.New(t)
	res := e.MustDeploy(t, rolling.Strategy{}, "v1", 2)
	slow := &slowDrain{Router: e.Proxy, wr: e.Proxy, release: make(chan struct{})}
	var seen []string
	var mon *deploy.Monitor
	mon = &deploy.Monitor{Router: slow, Backend: e.Backend, App: testenv.App, Failures: 1,
		OnEvent: func(ev deploy.Event) {
			seen = append(seen, string(ev.Type))
			assert.Equal(t, 2, len(mon.Targets()))
			assert.Len(t, mon.Down(), 1)
		}}
	require.NoError(t, mon.SetTargets(context.Background(), e.Proxy.Targets()))
	m, err := e.Backend.Machine(res.Machines[0])
	require.NoError(t, err)
	m.SetFailing(true)
	done := make(chan struct{})
	go func() { // reads the Monitor while the drain runs, then ends it
		defer close(done)
		require.Eventually(t, func() bool { return len(mon.Down()) == 1 }, 10*time.Second, time.Millisecond)
		assert.Len(t, mon.Targets(), 2)
		close(slow.release)
	}()
	mon.Round(context.Background(), health.HTTP{Path: "/health", Timeout: 500 * time.Millisecond}, time.Second)
	<-done
	assert.False(t, slow.timeout.Load(), "the drain waited for a reader that was blocked")
	assert.Equal(t, []string{string(deploy.MachineUnhealthy)}, seen)
	assert.NotContains(t, e.Proxy.Targets(), m.Addr())
}
