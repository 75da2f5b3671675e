package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/rolling"
)

// A 3-container app moves from v1 to v2 while 8 clients send requests through
// the proxy: not one fails, and once the deploy returns only v2 answers.
func TestDockerZeroDowntime(t *testing.T) {
	for _, s := range []deploy.Strategy{rolling.Strategy{}, bluegreen.Strategy{}} {
		t.Run(s.Name(), func(t *testing.T) {
			e := newEnv(t)
			run := e.Start(t)
			before := run.Mark()
			res := e.MustDeploy(t, s, "v2", 3)
			after := settle(t, run)
			t.Logf("during the deploy: %v; after it: %v", run.Epoch(before), run.Epoch(after))
			if res.Status != deploy.StatusSucceeded || res.FromVersion != "v1" || res.Version != "v2" || len(res.Machines) != 3 {
				t.Errorf("result: status %s, %s -> %s, machines %v", res.Status, res.FromVersion, res.Version, res.Machines)
			}
			e.wantOnly(t, run, after, "v2")
		})
	}
}

// A release command that exits 1 aborts the deploy before anything changes:
// v1 serves on, and the release command's container is gone.
func TestDockerReleaseCommandFails(t *testing.T) {
	e := newEnv(t)
	run := e.Start(t)
	_, err := e.Deployer.Deploy(testenv.CtxFor(t, 2*time.Minute), deploy.Request{
		Spec: e.Spec("v2"), Count: 3, Strategy: rolling.Strategy{},
		ReleaseCommand: []string{"/app", "migrate", "1"}, ReleaseCommandTimeout: time.Minute,
	})
	after := settle(t, run)
	var rce *deploy.ReleaseCommandError
	if !errors.Is(err, deploy.ErrAborted) || !errors.As(err, &rce) {
		t.Fatalf("deploy: %v; want a ReleaseCommandError wrapping ErrAborted", err)
	}
	t.Logf("deploy: %v", err)
	if rce.Code != 1 || !strings.Contains(strings.Join(rce.Tail, "\n"), "migrate: failed, exiting with code 1") {
		t.Errorf("release command error: code %d, tail %q", rce.Code, rce.Tail)
	}
	e.wantOnly(t, run, after, "v1")
}

// A new image whose health check never passes: the old containers serve on,
// the new ones are removed, and no request fails.
func TestDockerUnhealthyNewImage(t *testing.T) {
	e := newEnv(t)
	run := e.Start(t)
	spec := e.Spec("v2")
	spec.Env = map[string]string{"UNHEALTHY": "1"}
	res, err := e.Deployer.Deploy(testenv.CtxFor(t, 2*time.Minute), deploy.Request{
		Spec: spec, Count: 3, Strategy: rolling.Strategy{}, WaitTimeout: 3 * time.Second,
	})
	after := settle(t, run)
	if !errors.Is(err, deploy.ErrUnhealthy) {
		t.Fatalf("deploy: %v; want ErrUnhealthy", err)
	}
	t.Logf("deploy: %s: %v", res.Status, err)
	if res.Status != deploy.StatusFailed {
		t.Errorf("status %s, want failed (no traffic had moved)", res.Status)
	}
	e.wantOnly(t, run, after, "v1")
}
