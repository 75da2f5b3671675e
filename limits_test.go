package deploy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/rolling"
)

// limitedApp is one machine's app: it takes 3 ms a request and counts the
// requests it is serving, and the most it served at once.
type limitedApp struct {
	version        string
	inFlight, peak atomic.Int64
}

func newLimitedApp(spec deploy.MachineSpec) http.Handler { return &limitedApp{version: spec.Version} }

func (a *limitedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		_, _ = w.Write([]byte("ok"))
		return
	}
	n := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	tm := time.NewTimer(3 * time.Millisecond) // the app's service time
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-r.Context().Done():
	}
	_, _ = w.Write([]byte(a.version))
}

// TestDeploysRespectConcurrencyLimits: with a hard limit of 2 requests per
// machine and 16 clients (four times what two machines take), a rolling
// deploy (a new machine surges in before an old one leaves) and a bluegreen
// switch (all the waiting load moves to the new machines at once) fail no
// request, and no machine ever serves more than 2 at once, as counted by the
// machines themselves; the new machines serve.
func TestDeploysRespectConcurrencyLimits(t *testing.T) {
	const hard = 2
	backend := mem.New()
	t.Cleanup(func() { _ = backend.Close() })
	for _, v := range []string{"v1", "v2", "v3"} {
		backend.RegisterPerMachine(v, newLimitedApp)
	}
	px := proxy.New(proxy.Options{
		DrainTimeout: 10 * time.Second,
		Concurrency:  proxy.Concurrency{Type: "requests", SoftLimit: 1, HardLimit: hard, QueueTimeout: 10 * time.Second},
	})
	srv := httptest.NewServer(px)
	t.Cleanup(func() { srv.Close(); px.CloseIdleConnections() })
	d := &deploy.Deployer{
		Backend:     backend,
		Router:      px,
		Health:      health.HTTP{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second},
		WaitTimeout: 10 * time.Second,
	}
	apps := map[string]*limitedApp{} // every machine's app, by its ID and version
	var newMachines []string         // the machines of v2 and v3
	deployOnce := func(s deploy.Strategy, v string) {
		t.Helper()
		res, err := d.Deploy(context.Background(), deploy.Request{
			Spec:  deploy.MachineSpec{App: "web", Image: v, Version: v, StopTimeout: 5 * time.Second},
			Count: 2, Strategy: s,
		})
		if err != nil {
			t.Fatalf("deploy %s: %v", v, err)
		}
		for _, id := range res.Machines {
			m, err := backend.Machine(id)
			if err != nil {
				t.Fatal(err)
			}
			key := id + " (" + v + ")"
			apps[key] = m.Handler().(*limitedApp)
			newMachines = append(newMachines, key)
		}
	}
	deployOnce(rolling.Strategy{}, "v1")

	run := deploytest.StartLoad(context.Background(), srv.URL, deploytest.LoadOptions{Workers: 16, Duration: time.Minute, Max: 200_000})
	t.Cleanup(func() { run.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := run.WaitRequests(ctx, 100); err != nil {
		t.Fatal(err)
	}
	waitQueued := func() {
		t.Helper()
		q0 := px.QueueStats().Queued
		for px.QueueStats().Queued < q0+20 {
			if ctx.Err() != nil {
				t.Fatal("no request queued: the limits were not reached")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitQueued()
	newMachines = nil // only v2's and v3's
	deployOnce(rolling.Strategy{}, "v2")
	waitQueued()
	deployOnce(bluegreen.Strategy{}, "v3")
	e := run.Mark()
	if err := run.WaitEpoch(ctx, e, 100); err != nil {
		t.Fatal(err)
	}
	res := run.Stop()
	t.Logf("%v; queue %+v", res, px.QueueStats())
	if res.Failed != 0 {
		t.Errorf("%d requests failed: %v", res.Failed, res.Errors)
	}
	if res.ByBody["v2"] == 0 || res.ByBody["v3"] == 0 {
		t.Errorf("the new versions served no request: %v", res.ByBody)
	}
	for m, a := range apps {
		if p := a.peak.Load(); p > hard {
			t.Errorf("machine %s served %d requests at once, over the hard limit %d", m, p, hard)
		}
	}
	if len(newMachines) != 4 {
		t.Fatalf("new machines %v, want 4", newMachines)
	}
	for _, m := range newMachines {
		if apps[m].peak.Load() != hard {
			t.Errorf("new machine %s never served %d at once", m, hard)
		}
	}
}
