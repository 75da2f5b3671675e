package docker

import (
	"strconv"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/backendtest"
)

func TestConformance(t *testing.T) {
	b := engine(t)
	// The suite names apps after its tests; remove them whatever happens.
	t.Cleanup(func() {
		ctx := ctxFor(t, 30*time.Second)
		if _, err := b.DestroyAll(ctx, ""); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Serve:   func(app, version string) deploy.MachineSpec { return spec(app, version) },
		Stubborn: func(app string, stopTimeout time.Duration) deploy.MachineSpec {
			s := spec(app, "v1")
			s.Env["IGNORE_SIGTERM"] = "1"
			s.StopTimeout = stopTimeout
			return s
		},
		Exit: func(app, line string, code int) deploy.MachineSpec {
			s := spec(app, "v1")
			s.Cmd = []string{BinaryPath, "exit", strconv.Itoa(code), line}
			s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever} // it exits once
			return s
		},
		Boot: func(app string, bt backendtest.Boot) deploy.MachineSpec {
			s := spec(app, "v1")
			switch {
			case bt.ListenAfter > 0:
				s.Env["LISTEN_AFTER"] = bt.ListenAfter.String()
			case bt.NeverListen:
				s.Env["NEVER_LISTEN"] = "1"
			case bt.CloseConns:
				s.Env["CLOSE_CONNS"] = "1"
			}
			if bt.ExitAfter > 0 {
				s.Env["EXIT_AFTER"] = bt.ExitAfter.String()
				s.Env["EXIT_CODE"] = strconv.Itoa(bt.ExitCode)
			}
			return s
		},
		Timeout: 30 * time.Second,
	})
}
