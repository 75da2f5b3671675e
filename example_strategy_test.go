package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/proxy"
)

// oneByOne is a strategy of one's own: it replaces the old machines one at a
// time with a pause between, acting only through the Rollout's methods, so
// that a failure anywhere is undone by the Deployer (the machines it launched
// are destroyed, the old ones serve again).
type oneByOne struct{ Pause time.Duration }

func (oneByOne) Name() string { return "one-by-one" }

func (s oneByOne) Deploy(ctx context.Context, r *deploy.Rollout) error {
	for i := range r.Count {
		if i > 0 {
			t := r.Clock().NewTimer(s.Pause) // the deploy's clock: a test's fake clock controls the pause
			select {
			case <-t.C():
				t.Stop()
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		news, err := r.LaunchNew(ctx, deploy.LaunchOptions{Count: 1}) // started and healthy
		if err != nil {
			return err
		}
		if err := r.AddRoutes(ctx, 1, news...); err != nil {
			return err
		}
		if i < len(r.Old) {
			if err := r.Retire(ctx, r.Old[i]); err != nil { // leaves traffic, drains, stops
				return err
			}
		}
	}
	if len(r.Old) > r.Count { // the app shrinks
		return r.Retire(ctx, r.Old[r.Count:]...)
	}
	return nil
}

// A custom strategy, written with the public API only: one machine at a time,
// with a pause between.
func ExampleStrategy_custom() {
	ctx := context.Background()
	backend := mem.New()
	defer backend.Close()
	for _, v := range []string{"v1", "v2"} {
		backend.Register("web:"+v, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, v)
		}))
	}
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()

	d := &deploy.Deployer{Backend: backend, Router: px, Strategy: oneByOne{Pause: 10 * time.Millisecond}}
	var steps []string
	d.OnEvent = func(e deploy.Event) {
		if e.Type == deploy.MachineRouted || e.Type == deploy.MachineDestroyed {
			steps = append(steps, fmt.Sprint(e.Type, " ", e.Version))
		}
	}
	if _, err := d.Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "web:v1", Version: "v1"}, Count: 2}); err != nil {
		fmt.Println(err)
		return
	}
	steps = nil
	res, err := d.Deploy(ctx, deploy.Request{
		Spec:  deploy.MachineSpec{App: "web", Image: "web:v2", Version: "v2"},
		Count: 2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range steps {
		fmt.Println(s)
	}
	fmt.Println(res.Status, res.FromVersion, "->", res.Version)
	// Output:
	// machine_routed v2
	// machine_destroyed v1
	// machine_routed v2
	// machine_destroyed v1
	// succeeded v1 -> v2
}
