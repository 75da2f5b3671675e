package mem_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/backendtest"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
)

func TestConformance(t *testing.T) {
	for _, fwd := range []bool{false, true} {
		name := "Direct"
		if fwd {
			name = "PortForwarder" // as Docker fronts containers
		}
		t.Run(name, func(t *testing.T) { conformance(t, fwd) })
	}
}

func conformance(t *testing.T, fwd bool) {
	b := mem.New()
	b.PortForwarder = fwd
	defer b.Close()
	b.Register("serve:v1", deploytest.App("v1"))
	b.Register("stubborn", deploytest.App("stubborn"))
	b.Inject(mem.Fault{Image: "stubborn", IgnoreStopFor: time.Hour})
	b.RegisterCommand("exit", func(_ context.Context, args []string, _ map[string]string, out *mem.Output) int {
		io.WriteString(out, args[0]+"\n")
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return 2
		}
		return code
	})
	var mu sync.Mutex
	boots := 0
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Serve: func(app, version string) deploy.MachineSpec {
			return deploy.MachineSpec{App: app, Image: "serve:" + version}
		},
		Stubborn: func(app string, stop time.Duration) deploy.MachineSpec {
			return deploy.MachineSpec{App: app, Image: "stubborn", StopTimeout: stop}
		},
		Exit: func(app, line string, code int) deploy.MachineSpec {
			return deploy.MachineSpec{App: app, Image: "serve:v1", Cmd: []string{"exit", line, strconv.Itoa(code)}}
		},
		Boot: func(app string, bt backendtest.Boot) deploy.MachineSpec {
			mu.Lock()
			boots++
			image := fmt.Sprintf("boot-%d", boots)
			mu.Unlock()
			b.Register(image, deploytest.App("v1"))
			b.Inject(mem.Fault{
				Image: image, ListenAfter: bt.ListenAfter, CloseConns: bt.CloseConns,
				NeverListen: bt.NeverListen || bt.ExitAfter > 0, ExitAfter: bt.ExitAfter, ExitCode: bt.ExitCode,
			})
			return deploy.MachineSpec{App: app, Image: image}
		},
	})
}
