package deploy_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/rolling"
)

// Scale runs more or fewer machines of the current release, as fly scale
// count does: no new release; the release records the count.
func ExampleDeployer_Scale() {
	ctx := context.Background()
	backend := mem.New()
	defer backend.Close()
	backend.Register("web:v1", deploytest.App("v1"))
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	store := release.NewMemory()
	d := &deploy.Deployer{
		Backend: backend, Router: px, Store: store, Strategy: rolling.Strategy{},
		Health: health.HTTP{Path: "/health", Interval: 50 * time.Millisecond},
	}
	if _, err := d.Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "web:v1"}, Count: 2}); err != nil {
		fmt.Println("deploy failed:", err)
		return
	}
	for _, n := range []int{4, 1} {
		res, err := d.Scale(ctx, "web", n)
		if err != nil {
			fmt.Println("scale failed:", err)
			return
		}
		fmt.Println(res.Status, res.Version, len(res.Machines), "machines,", len(px.Targets()), "routed")
	}
	rels, _ := store.List(ctx, "web")
	fmt.Println(len(rels), "release, count", rels[0].Count)
	// Output:
	// succeeded v1 4 machines, 4 routed
	// succeeded v1 1 machines, 1 routed
	// 1 release, count 1
}
