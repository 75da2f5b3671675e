package mem_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/backendtest"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/internal/demo"
)

func TestConformance(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("serve:v1", demo.Handler("v1"))
	b.Register("stubborn", demo.Handler("stubborn"))
	b.Inject(mem.Fault{Image: "stubborn", SlowShutdown: time.Hour})
	b.RegisterCommand("exit", func(_ context.Context, args []string, _ map[string]string, out *mem.Output) int {
		io.WriteString(out, args[0]+"\n")
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return 2
		}
		return code
	})
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
	})
}
