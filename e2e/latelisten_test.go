package e2e

import (
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/immediate"
	"github.com/cutover/deploy/strategy/rolling"
)

// The new version listens 2s after its container starts, and no health check
// is configured, while 16 clients send a mix of requests through the proxy
// (GETs, 200ms requests, 64 KiB uploads, streamed answers). Docker's
// published port accepts connections from the start, so only a readiness that
// waits for the app itself keeps traffic away from the new containers until
// they listen: rolling, bluegreen and canary fail no request; immediate fails
// requests only within the downtime it reports, and none after Deploy returns.
func TestDockerLateListener(t *testing.T) {
	const late = 2 * time.Second
	for _, s := range []deploy.Strategy{
		rolling.Strategy{},
		bluegreen.Strategy{},
		canary.Strategy{Bake: time.Second},
		immediate.Strategy{},
	} {
		t.Run(s.Name(), func(t *testing.T) {
			e := newEnv(t)
			e.Deployer.Health = nil // the default check
			e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
			run := testenv.StartLoadWith(t, e.URL, deploytest.LoadOptions{Workers: 16, Duration: 3 * time.Minute, Mixed: true})
			spec := e.Spec("v2")
			spec.Env = map[string]string{"LISTEN_AFTER": late.String()}
			start := time.Now()
			res, err := e.Deployer.Deploy(testenv.CtxFor(t, 2*time.Minute), deploy.Request{Spec: spec, Count: 3, Strategy: s})
			if err != nil {
				t.Fatalf("deploy: %v", err)
			}
			t.Logf("%s: %s in %v, downtime %v", s.Name(), res.Status, time.Since(start).Round(time.Millisecond), res.Downtime.Round(time.Millisecond))
			if s.Name() != "immediate" {
				after := settle(t, run)
				e.wantOnly(t, run, after, "v2")
				return
			}
			after := run.Mark()
			if err := run.WaitEpoch(testenv.CtxFor(t, 20*time.Second), after, 100); err != nil {
				t.Fatal(err)
			}
			lr := run.Stop()
			if got := run.Epoch(after); got["(failed)"] > 0 {
				t.Errorf("after the deploy returned: %v; want no failure", got)
			}
			t.Logf("immediate: %s; failures from %v to %v after the deploy began", lr,
				lr.FirstFailed.Sub(start).Round(time.Millisecond), lr.LastFailed.Sub(start).Round(time.Millisecond))
			if res.Downtime < late {
				t.Errorf("downtime %v, but the new containers listen only %v after they start", res.Downtime, late)
			}
			const slack = time.Second // the clients' and the engine's scheduling on a busy host
			if lr.Failed > 0 && lr.LastFailed.Sub(lr.FirstFailed) > res.Downtime+slack {
				t.Errorf("failures span %v, more than the reported downtime %v", lr.LastFailed.Sub(lr.FirstFailed), res.Downtime)
			}
			e.wantOnly(t, run, after, "v2")
		})
	}
}
