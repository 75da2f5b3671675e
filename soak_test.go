package deploy_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func usage() (goroutines int, heap uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

// TestSoak runs 50 consecutive deploys, alternating strategies, under
// continuous load: no request fails, and goroutines and heap stay flat.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	e := testenv.New(t)
	e.Deployer.Store = release.NewMemory()
	strategies := []deploy.Strategy{
		rolling.Strategy{},
		bluegreen.Strategy{},
		canary.Strategy{Steps: []canary.Step{{Percent: 10, Machines: 1}, {Percent: 50}}, Bake: 100 * time.Millisecond, Analysis: loadedAnalysis},
		rolling.Strategy{MaxUnavailable: 2},
	}
	e.MustDeploy(t, rolling.Strategy{}, "v1", 3)
	run := e.Load(t)
	var g0 int
	var h0 uint64
	start := time.Now()
	for i := 1; i <= 50; i++ {
		v := fmt.Sprintf("v%d", 1+i%9)
		if v == "v1" && i > 1 {
			v = "v9" // keep consecutive versions distinct
		}
		s := strategies[i%len(strategies)]
		res := e.MustDeploy(t, s, v, 3)
		assert.Equal(t, deploy.StatusSucceeded, res.Status)
		if i == 5 { // after warm-up: pools and caches are full
			g0, h0 = usage()
		}
	}
	g1, h1 := usage()
	lr := run.Stop()
	t.Logf("soak: 50 deploys in %s; goroutines %d -> %d; heap in use %.1f MiB -> %.1f MiB; %s",
		time.Since(start).Round(time.Millisecond), g0, g1, float64(h0)/(1<<20), float64(h1)/(1<<20), lr)
	deploytest.AssertNoFailures(t, lr)
	assert.LessOrEqual(t, g1, g0+20, "goroutines stable")
	assert.LessOrEqual(t, h1, h0*3/2+4<<20, "heap stable")
	assert.Equal(t, 3, e.Backend.Count())
}
