package deploy_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

// A rolling deploy on the in-memory backend behind the proxy.
func Example() {
	ctx := context.Background()

	backend := mem.New() // machines serve real HTTP on 127.0.0.1
	defer backend.Close()
	backend.Register("web:v1", deploytest.App("v1"))
	backend.Register("web:v2", deploytest.App("v2"))

	px := proxy.New(proxy.Options{}) // the app's entry point; a deploy.Router
	defer px.CloseIdleConnections()
	srv := httptest.NewServer(px)
	defer srv.Close()

	d := &deploy.Deployer{
		Backend:  backend,
		Router:   px,
		Health:   health.HTTP{Path: "/health", Interval: 50 * time.Millisecond},
		Strategy: rolling.Strategy{},
		OnEvent: func(e deploy.Event) {
			// A first deploy starts its machines at once, in no set
			// order: print the steps of the second one only.
			if e.Type == deploy.MachineDestroyed || e.Type == deploy.MachineHealthy && e.Version != "v1" {
				fmt.Println(e.Type, e.Machine, e.Version)
			}
		},
	}
	for _, v := range []string{"v1", "v2"} {
		res, err := d.Deploy(ctx, deploy.Request{
			Spec:  deploy.MachineSpec{App: "web", Image: "web:" + v, Version: v},
			Count: 2,
		})
		if err != nil {
			fmt.Println("deploy failed:", err)
			return
		}
		fmt.Println(res.Status, res.FromVersion, "->", res.Version, res.Machines)
	}
	// Output:
	// succeeded  -> v1 [m0001 m0002]
	// machine_healthy m0003 v2
	// machine_destroyed m0001 v1
	// machine_healthy m0004 v2
	// machine_destroyed m0002 v1
	// succeeded v1 -> v2 [m0003 m0004]
}
