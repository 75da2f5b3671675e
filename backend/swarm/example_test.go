package swarm_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

// A deploy across a swarm: the local engine is a manager, the image is in a
// registry every node can pull from, and the nodes are labelled by region.
// (No Output: it needs a swarm.)
func Example() {
	ctx := context.Background()
	b, err := swarm.New(ctx, swarm.Options{Namespace: "prod"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	px := proxy.New(proxy.Options{}) // serve it on the edge; node ports stay private
	defer px.CloseIdleConnections()
	d := &deploy.Deployer{
		Backend:     b,
		Router:      px,
		Health:      health.HTTP{Path: "/health"},
		Strategy:    rolling.Strategy{},
		WaitTimeout: time.Minute,
	}
	spec := deploy.MachineSpec{
		App:    "web",
		Image:  "registry.example.com/web:v2",
		Port:   8080,
		Labels: map[string]string{deploy.LabelRegion: "ams"}, // nodes labelled region=ams
	}
	res, err := d.Deploy(ctx, deploy.Request{Spec: spec, Count: 6})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, len(res.Machines))
}
