package swarme2e

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

const machines = 4 // two per node

// A 4-machine app spread over both nodes moves from v1 to v2 while 8
// clients send requests through the proxy: not one fails, v2's machines run
// on both nodes, and once the deploy returns only v2 answers.
// The FIGURES lines are the end-to-end figures.
func TestSwarmZeroDowntime(t *testing.T) {
	strategies := []deploy.Strategy{
		rolling.Strategy{},
		bluegreen.Strategy{},
		canary.Strategy{Bake: 2 * time.Second},
	}
	for _, s := range strategies {
		t.Run(s.Name(), func(t *testing.T) {
			e := newEnv(t)
			if _, _, err := e.Deploy(t, rolling.Strategy{}, "v1", machines); err != nil {
				t.Fatalf("deploy v1: %v", err)
			}
			if n := e.Nodes(t)["v1"]; len(n) != 2 {
				t.Fatalf("v1 machines by node: %v; want both nodes", n)
			}
			run := e.Load(t)
			before := run.Mark()
			res, took, err := e.Deploy(t, s, "v2", machines)
			if err != nil {
				run.Stop()
				t.Fatalf("deploy v2: %v", err)
			}
			during := run.Epoch(before)
			deploytest.OnlyVersion(t, run, "v2", 100)
			lr := run.Stop()
			deploytest.AssertNoFailures(t, lr)
			nodes := e.Nodes(t)
			if res.Status != deploy.StatusSucceeded || res.Version != "v2" || len(res.Machines) != machines {
				t.Errorf("result: status %s, %s -> %s, machines %v", res.Status, res.FromVersion, res.Version, res.Machines)
			}
			if len(nodes) != 1 || len(nodes["v2"]) != 2 {
				t.Errorf("machines by version and node after the deploy: %v; want v2 only, on both nodes", nodes)
			}
			line := fmt.Sprintf("FIGURES strategy=%s requests=%d failed=%d deploy_ms=%d machines_per_node=%s served_during=%v",
				s.Name(), lr.Requests, lr.Failed, took.Milliseconds(), nodesString(nodes["v2"]), during)
			t.Log(line)
			fmt.Fprintln(os.Stderr, line)
		})
	}
}

// The worker goes away (its dockerd stopped) while a rolling deploy of v2
// runs: the deploy fails or finishes on the manager, v1 (or, if it
// finished, v2) keeps answering through the proxy (only the requests in
// flight on the lost machines fail), and no
// machine of v2 is left behind when it failed.
// It stops the worker for good, so it runs last.
func TestSwarmWorkerLost(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.Deploy(t, rolling.Strategy{}, "v1", machines); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	run := e.Load(t)
	var once sync.Once
	var killAt time.Time // written before stopped is sent on
	stopped := make(chan error, 1)
	e.Deployer.OnEvent = func(ev deploy.Event) {
		if testing.Verbose() {
			t.Log(ev)
		}
		if ev.Type == deploy.MachineHealthy {
			once.Do(func() {
				workerGone.Store(true)
				go func() {
					start := time.Now()
					killAt = start
					err := cluster.StopWorker(testenv.CtxFor(t, time.Minute))
					t.Logf("worker dockerd stopped in %v (%v)", time.Since(start).Round(time.Millisecond), err)
					stopped <- err
				}()
			})
		}
	}
	res, took, err := e.Deploy(t, rolling.Strategy{}, "v2", machines)
	returned := time.Now()
	if serr := <-stopped; serr != nil {
		t.Fatalf("stopping the worker: %v", serr)
	}
	t.Logf("deploy with the worker gone: %v after %v", err, took.Round(time.Millisecond))
	want := "v2"
	if err != nil {
		want = "v1"
		if res.Status == deploy.StatusSucceeded {
			t.Errorf("deploy returned %v with status %s", err, res.Status)
		}
	}
	deploytest.OnlyVersion(t, run, want, 100)
	lr := run.Stop()
	// The worker's machines die with its engine, as with SIGKILL: the
	// requests in flight on them fail (at most one per client), nothing
	// sent before it fails, and nothing after the deploy returned.
	t.Logf("load: %s; failed: %v", lr, lr.Errors)
	if lr.Failed > 0 {
		if lr.Failed > int64(loadClients) {
			t.Errorf("%d requests failed, more than the %d that can be in flight", lr.Failed, loadClients)
		}
		if lr.FirstFailed.Before(killAt) {
			t.Errorf("a request sent %v before the worker went away failed", killAt.Sub(lr.FirstFailed))
		}
		if lr.LastFailed.After(returned) {
			t.Errorf("a request failed %v after the deploy returned", lr.LastFailed.Sub(returned))
		}
	}
	nodes := e.Nodes(t)
	if err != nil && len(nodes["v2"]) != 0 {
		t.Errorf("the failed deploy left v2 machines: %v", nodes)
	}
	line := fmt.Sprintf("FIGURES strategy=rolling-worker-lost requests=%d failed=%d deploy_ms=%d status=%s machines_after=%v",
		lr.Requests, lr.Failed, took.Milliseconds(), res.Status, nodes)
	t.Log(line)
	fmt.Fprintln(os.Stderr, line)
}
