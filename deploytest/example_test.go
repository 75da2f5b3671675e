package deploytest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Proving a rolling deploy loses no request: load through the proxy during
// the deploy, then check the failures and which versions serve. In a test,
// AssertNoFailures(t, trial.Load) says the same, and OnlyVersion checks who
// answers a Load the test runs itself.
func Example() {
	ctx := context.Background()
	b := mem.New()
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	b.Register("v2", deploytest.App("v2"))
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.CloseIdleConnections()
	front := httptest.NewServer(px)
	defer front.Close()
	d := &deploy.Deployer{Backend: b, Router: px, Strategy: rolling.Strategy{},
		Health: health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}}
	spec := func(v string) deploy.MachineSpec { return deploy.MachineSpec{App: "web", Image: v, Version: v} }
	if _, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: 2}); err != nil {
		fmt.Println(err)
		return
	}

	trial, err := deploytest.DeployUnderLoad(ctx, d, deploy.Request{Spec: spec("v2")}, front.URL, deploytest.LoadOptions{Workers: 4})
	if err != nil {
		fmt.Println(err)
		return
	}
	routed, _ := deploytest.RoutedVersions(ctx, b, "web", px)
	fmt.Println("failed:", trial.Load.Failed, trial.Load.FailedBy)
	fmt.Println("served after the deploy:", keys(trial.After))
	fmt.Println("routed:", routed)
	// Output:
	// failed: 0 map[]
	// served after the deploy: [v2]
	// routed: map[v2:2]
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
