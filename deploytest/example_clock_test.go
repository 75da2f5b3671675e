package deploytest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

// Testing a canary with 1-minute steps and a 5-minute wait timeout takes
// milliseconds: the Deployer runs on a fake clock, which Drive moves to the
// next deadline whenever the deploy waits for time. The machines, the proxy
// and the health checks are real.
func ExampleClock_Drive() {
	ctx := context.Background()
	b := mem.New()
	defer b.Close()
	for _, v := range []string{"v1", "v2", "v3"} {
		b.Register(v, deploytest.App(v))
	}
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	clock := deploytest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	d := &deploy.Deployer{Backend: b, Router: px, Clock: clock, Strategy: rolling.Strategy{}, WaitTimeout: 5 * time.Minute,
		OnEvent: func(e deploy.Event) {
			if e.Type == deploy.CanaryStep {
				fmt.Println(e.Time.Format("15:04:05"), e.Message)
			}
		}}
	deployOnClock := func(req deploy.Request) error {
		req.Spec.App, req.Count = "web", 2
		return clock.Drive(ctx, func(ctx context.Context) error {
			_, err := d.Deploy(ctx, req)
			return err
		})
	}
	if err := deployOnClock(deploy.Request{Spec: deploy.MachineSpec{Image: "v1"}}); err != nil {
		fmt.Println(err)
		return
	}

	start := clock.Now()
	err := deployOnClock(deploy.Request{Spec: deploy.MachineSpec{Image: "v2"}, Strategy: canary.Strategy{
		Steps: []canary.Step{{Percent: 10, Machines: 1}, {Percent: 50}}, Bake: time.Minute,
		Analysis: canary.Analysis{Interval: 10 * time.Second}, // a round of real checks every 10s of the clock
	}})
	fmt.Printf("v2: error %v, after %s on the clock\n", err, clock.Now().Sub(start))

	start = clock.Now()
	err = deployOnClock(deploy.Request{Spec: deploy.MachineSpec{Image: "v3"},
		Health: health.HTTP{Path: "/fail", Interval: 10 * time.Second}}) // never passes
	fmt.Printf("v3: unhealthy %v, after %s on the clock\n", errors.Is(err, deploy.ErrUnhealthy), clock.Now().Sub(start))
	// Output:
	// 00:00:00 step 1/2: 1 canary machines at 10% for 1m0s
	// 00:01:00 step 2/2: 1 canary machines at 50% for 1m0s
	// v2: error <nil>, after 2m0s on the clock
	// v3: unhealthy true, after 5m0s on the clock
}
