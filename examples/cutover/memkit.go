package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
)

// memWorkerJob is how often a demo worker logs a job done.
const memWorkerJob = 500 * time.Millisecond

// memBootDelay is how long a demo machine takes to boot, so that deploys take
// long enough to watch.
const memBootDelay = 300 * time.Millisecond

// newMemKit returns the in-memory backend with a demo app: any image runs,
// serving its tag as its version ("demo:v2" answers "v2"); a tag starting
// with "crash" crashes after boot and one starting with "unhealthy" fails
// its /health checks, to show failed deploys. Any release command succeeds;
// a machine that serves runs the demo app whatever its command, and a worker
// (a process group with no service) runs a demo worker until stopped, which
// logs a job done twice a second.
func newMemKit(logs *logRing) *backendKit {
	b := mem.New()
	b.Inject(mem.Fault{ListenAfter: memBootDelay})
	var mu sync.Mutex
	registered := map[string]bool{}
	register := func(image string) {
		mu.Lock()
		defer mu.Unlock()
		if registered[image] {
			return
		}
		registered[image] = true
		tag := imageTag(image)
		b.Register(image, deploytest.App(tag))
		switch {
		case strings.HasPrefix(tag, "crash"):
			b.Inject(mem.Fault{Image: image, CrashAfter: memBootDelay + 100*time.Millisecond})
		case strings.HasPrefix(tag, "unhealthy"):
			b.Inject(mem.Fault{Image: image, Unhealthy: true})
		}
		logs.printf("mem: image %s registered (a demo app answering %q)", image, tag)
	}
	return &backendKit{
		name:     "mem",
		backend:  b,
		register: register,
		prepare: func(_ context.Context, image string, releaseCmd []string) error {
			if len(releaseCmd) > 0 {
				b.RegisterCommand(releaseCmd[0], func(ctx context.Context, args []string, env map[string]string, out *mem.Output) int {
					fmt.Fprintf(out, "demo release command %q: nothing to do\n", strings.Join(args, " "))
					return 0
				})
			}
			register(image)
			return nil
		},
		adapt: func(req *deploy.Request) {
			specs := []*deploy.MachineSpec{&req.Spec}
			for i := range req.Groups {
				specs = append(specs, &req.Groups[i].Spec)
			}
			for _, s := range specs {
				if !s.NoService {
					s.Cmd, s.Entrypoint = nil, nil // the demo app serves, whatever the command
					continue
				}
				s.Cmd, s.Entrypoint = append(s.Entrypoint, s.Cmd...), nil
				if len(s.Cmd) == 0 {
					s.Cmd = []string{"demo-worker"}
				}
				b.RegisterCommand(s.Cmd[0], func(ctx context.Context, args []string, env map[string]string, out *mem.Output) int {
					fmt.Fprintf(out, "demo worker %q (group %s): working until stopped\n", strings.Join(args, " "), env["FLY_PROCESS_GROUP"])
					t := time.NewTicker(memWorkerJob)
					defer t.Stop()
					for job := 1; ; job++ {
						select {
						case <-ctx.Done():
							return 0
						case <-t.C:
							fmt.Fprintf(out, "demo worker: job %d done\n", job)
						}
					}
				})
			}
		},
		close: b.Close,
		note:  "the mem machines stopped with the daemon",
	}
}

// imageTag returns the tag of an image reference, "latest" when it has none.
func imageTag(image string) string {
	if i := strings.LastIndexByte(image, ':'); i >= 0 && !strings.Contains(image[i:], "/") {
		return image[i+1:]
	}
	return "latest"
}
