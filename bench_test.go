//go:build unix

package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/rolling"
)

// alwaysHealthy is a health checker for listener-less machines.
type alwaysHealthy struct{}

func (alwaysHealthy) Check(context.Context, deploy.Machine) error { return nil }

// BenchmarkDeployScale measures the orchestration alone: one deploy (v1 to
// v2) of n machines on the in-memory backend without listeners, through the
// real proxy as router. It reports the library's CPU time (process CPU, user
// plus system, during the deploy) and allocated bytes per machine, which
// should stay flat as n grows.
func BenchmarkDeployScale(b *testing.B) {
	for _, strat := range []deploy.Strategy{bluegreen.Strategy{}, rolling.Strategy{MaxUnavailable: 0.1}} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", strat.Name(), n), func(b *testing.B) {
				benchDeploy(b, strat, n)
			})
		}
	}
}

func benchDeploy(b *testing.B, strat deploy.Strategy, n int) {
	ctx := context.Background()
	var cpu, bytes, allocs float64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		backend := mem.New()
		backend.NoListen = true
		backend.Register("web:v1", http.NotFoundHandler())
		backend.Register("web:v2", http.NotFoundHandler())
		px := proxy.New(proxy.Options{})
		d := &deploy.Deployer{Backend: backend, Router: px, Health: alwaysHealthy{}, Strategy: strat}
		if _, err := d.Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "web:v1", Version: "v1"}, Count: n}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		c0 := cpuTime()
		b.StartTimer()
		res, err := d.Deploy(ctx, deploy.Request{Spec: deploy.MachineSpec{App: "web", Image: "web:v2", Version: "v2"}, Count: n})
		b.StopTimer()
		cpu += float64(cpuTime() - c0)
		runtime.ReadMemStats(&m1)
		bytes += float64(m1.TotalAlloc - m0.TotalAlloc)
		allocs += float64(m1.Mallocs - m0.Mallocs)
		if err != nil || len(res.Machines) != n {
			b.Fatalf("deploy: %v (%d machines)", err, len(res.Machines))
		}
		if got := len(px.Targets()); got != n {
			b.Fatalf("%d targets after the deploy, want %d", got, n)
		}
		px.CloseIdleConnections()
		_ = backend.Close()
		b.StartTimer()
	}
	per := float64(b.N) * float64(n)
	b.ReportMetric(cpu/per, "cpu-ns/machine")
	b.ReportMetric(bytes/per, "B/machine")
	b.ReportMetric(allocs/per, "allocs/machine")
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
