package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
)

// A port forwarder in front of a machine (as Docker's published port) accepts
// connections before the app listens, then closes them. DefaultCheck, the
// check used when none is set, waits for the app itself.
func ExampleDefaultCheck() {
	ctx := context.Background()
	b := mem.New()
	b.PortForwarder = true
	defer b.Close()
	b.Register("web", deploytest.App("v1"))
	b.Inject(mem.Fault{Image: "web", ListenAfter: 2 * time.Second}) // the app boots for 2s
	m, _ := b.Create(ctx, deploy.MachineSpec{App: "web", Image: "web"})
	_ = m.Start(ctx)

	c, err := net.Dial("tcp", m.Addr())
	fmt.Println("a bare dial succeeds:", err == nil)
	if err == nil {
		c.Close()
	}
	err = deploy.DialCheck{}.Check(ctx, m)
	fmt.Println("DialCheck sees it closed:", errors.Is(err, deploy.ErrClosedAtOnce))
	err = deploy.WaitHealthy(ctx, m, deploy.DefaultCheck{})
	fmt.Println("ready once the app answers:", err == nil)
	// Output:
	// a bare dial succeeds: true
	// DialCheck sees it closed: true
	// ready once the app answers: true
}
