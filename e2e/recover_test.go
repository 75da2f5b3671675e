package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/internal/crash"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/rolling"
)

// A deploy on the engine dies mid-way (its context cancelled, its Deployer and
// its Docker client thrown away). A new Deployer, with a new client that
// adopts the containers from their labels, recovers from the release store:
// v1 serves at full count again, no container of v2 remains, the release is
// "rolled_back", and no request through the proxy failed meanwhile.
func TestDockerRecoverInterruptedDeploy(t *testing.T) {
	cases := []struct {
		name     string
		strategy deploy.Strategy
		at       func(deploy.Event) bool
	}{
		{"rolling, after the first new container took traffic", rolling.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineDestroyed }},
		{"bluegreen, before the switch", bluegreen.Strategy{},
			func(ev deploy.Event) bool { return ev.Type == deploy.MachineHealthy }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			store := release.NewMemory()
			e.Deployer.Store = store
			run := e.Start(t)

			// The process that recovers: a new client and a new Deployer on the same
			// store and proxy. Its client is made before the crash so that nothing
			// slow runs between the crash and the first Recover, which must still
			// find the dead deployer's lock.
			fresh, err := docker.New(testenv.CtxFor(t, 10*time.Second), docker.Options{Namespace: namespace})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			d := &deploy.Deployer{
				Backend: fresh, Router: e.Proxy, Store: store, Health: e.Deployer.Health,
				WaitTimeout: e.Deployer.WaitTimeout, LockTTL: time.Second, OnEvent: e.Deployer.OnEvent,
			}

			crashDuring(t, e, store, c.strategy, c.at)
			rel, err := store.Get(testenv.CtxFor(t, 10*time.Second), e.App, 2)
			if err != nil || rel.Status != deploy.ReleaseRunning {
				t.Fatalf("release v2 after the crash: %v, %v; want running", rel.Status, err)
			}
			start := time.Now()
			res, locked, err := crash.Recover(testenv.CtxFor(t, 2*time.Minute), d, e.App)
			if !locked {
				t.Errorf("the dead deployer's lock did not hold until its ttl (%v)", dyingLockTTL)
			}
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if res == nil {
				t.Fatal("Recover found nothing to recover")
			}
			t.Logf("recovered in %v: %s, machines %v", time.Since(start).Round(time.Millisecond), res.Status, res.Machines)
			after := settle(t, run)

			if res.Status != deploy.StatusRolledBack {
				t.Errorf("Recover status %s, want rolled_back", res.Status)
			}
			e.wantOnly(t, run, after, "v1") // no orphan container of v2
			rel, err = store.Get(testenv.CtxFor(t, 10*time.Second), e.App, 2)
			if err != nil || rel.Status != deploy.ReleaseRolledBack {
				t.Errorf("release v2: %v, %v; want rolled_back", rel.Status, err)
			}
			t.Logf("release v2: %s: %s", rel.Status, rel.Reason)
			if again, err := d.Recover(testenv.CtxFor(t, time.Minute), e.App); err != nil || again != nil {
				t.Errorf("Recover again = %v, %v; want nothing to recover", again, err)
			}
		})
	}
}

// dyingLockTTL is the deploy lock's ttl in the process that dies: it lasts at
// least two thirds of it after the death (it is renewed every third), long
// enough for the test to reach Recover on a loaded machine, and Recover waits
// out the rest.
const dyingLockTTL = 3 * time.Second

// crashDuring deploys v2 with s through a Deployer and a Docker client of
// their own, which die at the first event for which at returns true: every
// later call they make fails and the deploy's context is cancelled. Both are
// then thrown away.
func crashDuring(t *testing.T, e *env, store deploy.Store, s deploy.Strategy, at func(deploy.Event) bool) {
	t.Helper()
	b, err := docker.New(testenv.CtxFor(t, 10*time.Second), docker.Options{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	proc := &crash.Process{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &deploy.Deployer{
		Backend: proc.Backend(b), Router: proc.Router(e.Proxy), Store: proc.Store(store),
		Health: e.Deployer.Health, Strategy: s, WaitTimeout: e.Deployer.WaitTimeout, LockTTL: dyingLockTTL,
		OnEvent: func(ev deploy.Event) {
			e.Deployer.OnEvent(ev)
			if !proc.Dead() && at(ev) {
				t.Logf("the deploying process dies at: %s", ev)
				proc.Die()
				cancel()
			}
		},
	}
	_, err = d.Deploy(ctx, deploy.Request{Spec: e.Spec("v2"), Count: 3})
	t.Logf("the dying deploy returned: %v", err)
	if !proc.Dead() {
		t.Fatal("the deploying process did not die")
	}
}
