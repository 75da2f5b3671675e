package strategy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/immediate"
	"github.com/cutover/deploy/strategy/rolling"
)

// Machines fronted by a port forwarder, as Docker's published ports are (it
// accepts before the app listens, then closes), run a new version that listens
// a second after it starts, with no health check configured: every strategy
// but immediate fails no request under load; immediate fails requests only
// within the downtime it reports, and none after Deploy returns. A readiness
// that trusted a bare dial would route the new machines before they listen.
func TestLateListenerBehindPortForwarder(t *testing.T) {
	const late = time.Second
	for _, s := range []deploy.Strategy{
		rolling.Strategy{},
		bluegreen.Strategy{},
		canary.Strategy{Bake: 200 * time.Millisecond},
		immediate.Strategy{},
	} {
		t.Run(s.Name(), func(t *testing.T) {
			e := testenv.New(t)
			e.Backend.PortForwarder = true
			e.Deployer.Health = nil // the default check
			e.MustDeploy(t, s, "v1", 3)
			e.Backend.Inject(mem.Fault{Image: "v2", ListenAfter: late})
			run := e.Load(t)
			require.NoError(t, run.WaitRequests(context.Background(), 100))
			start := time.Now()
			res := e.MustDeploy(t, s, "v2", 3)
			assert.Equal(t, deploy.StatusSucceeded, res.Status)
			deploytest.OnlyVersion(t, run, "v2", 100) // sent after Deploy returned: all answered by v2
			lr := run.Stop()
			if s.Name() != "immediate" {
				deploytest.AssertNoFailures(t, lr)
				return
			}
			t.Logf("immediate: downtime %s; %s; failures from %s to %s after the deploy began", res.Downtime.Round(time.Millisecond), lr,
				lr.FirstFailed.Sub(start).Round(time.Millisecond), lr.LastFailed.Sub(start).Round(time.Millisecond))
			assert.GreaterOrEqual(t, res.Downtime, late, "the new machines answer only once they listen")
			if lr.Failed > 0 {
				// Failures lie within the downtime window: from when the old
				// machines left traffic (after the deploy began) to when the
				// first new one was routed (within the downtime after it),
				// give or take the clients' own scheduling.
				const slack = 500 * time.Millisecond
				assert.True(t, lr.FirstFailed.After(start.Add(-slack)), "a request failed before the deploy began")
				assert.LessOrEqual(t, lr.LastFailed.Sub(lr.FirstFailed), res.Downtime+slack, "failures span more than the reported downtime")
			}
		})
	}
}
