package swarm_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/backendtest"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/internal/swarmtest"
)

func spec(app, version string) deploy.MachineSpec {
	return deploy.MachineSpec{App: app, Image: testImage, Version: version, Env: map[string]string{"VERSION": version}}
}

func TestConformance(t *testing.T) {
	b := backend(t)
	t.Cleanup(func() {
		if _, err := b.DestroyAll(ctxFor(t, time.Minute), ""); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Serve:   spec,
		Stubborn: func(app string, stopTimeout time.Duration) deploy.MachineSpec {
			s := spec(app, "v1")
			s.Env["IGNORE_SIGTERM"] = "1"
			s.StopTimeout = stopTimeout
			return s
		},
		Exit: func(app, line string, code int) deploy.MachineSpec {
			s := spec(app, "v1")
			s.Cmd = []string{docker.BinaryPath, "exit", strconv.Itoa(code), line}
			s.Restart = deploy.RestartPolicy{Policy: deploy.RestartNever} // it exits once
			return s
		},
		Timeout: 60 * time.Second,
		CheckAddr: func(addr string) error {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return err
			}
			if host != swarmtest.ManagerAddr && host != swarmtest.WorkerAddr {
				return fmt.Errorf("host %s is neither node (%s, %s)", host, swarmtest.ManagerAddr, swarmtest.WorkerAddr)
			}
			return nil
		},
	})
}
