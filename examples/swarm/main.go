// Swarm deploys the sample app of examples/app across a two-node Docker
// swarm that it builds on this machine (internal/swarmtest: this engine as
// manager, a second dockerd in a network namespace as worker), the way
// examples/docker does on one engine: it builds v1 and v2 images (no
// registry: they are loaded into the worker with save | load), deploys v1
// to 4 machines spread over both nodes, then deploys v2 while clients send
// requests through the proxy, prints what happened, and removes every
// service and image it made and the swarm itself, also when it fails or is
// interrupted.
//
//	sudo go run ./examples/swarm -json          # rolling
//	sudo go run ./examples/swarm -strategy canary
//
// It needs root, ip (iproute2), nsenter and dockerd, and an engine not in
// swarm mode. It prints the same summary, and with -json the same last line,
// as examples/docker, plus "nodes": how many nodes ran the machines that
// served after the deploy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/swarmtest"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/canary"
)

const (
	appPkg    = "github.com/cutover/deploy/examples/app"
	imageRepo = "cutover-example-swarm-app"
	app       = "demo"
)

func main() {
	strat := flag.String("strategy", "rolling", "deploy strategy: "+fmt.Sprint(strategy.Names))
	machines := flag.Int("machines", 4, "machines in the app, spread over the two nodes")
	asJSON := flag.Bool("json", false, "end with one JSON line summarising the deploy")
	workers := flag.Int("clients", 8, "concurrent clients sending requests through the proxy")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *strat, *machines, *workers, *asJSON)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples/swarm:", err)
		if errors.Is(err, deploy.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, strategyName string, machines, workers int, asJSON bool) (err error) {
	s, err := strategy.ByName(strategyName, 0)
	if err != nil {
		return err
	}
	if s.Name() == "canary" { // bake each step for 2s instead of the default minute
		s = canary.Strategy{Bake: 2 * time.Second}
	}
	if machines < 1 {
		return fmt.Errorf("%w: -machines %d: want at least 1", deploy.ErrInvalid, machines)
	}

	// The swarm: torn down last, whatever happens.
	uctx, ucancel := context.WithTimeout(ctx, 5*time.Minute)
	cluster, err := swarmtest.Up(uctx, swarmtest.Options{Log: os.Stdout})
	ucancel()
	if err != nil {
		return fmt.Errorf("building the two-node swarm: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err = errors.Join(err, cluster.Down(dctx))
	}()

	pid := os.Getpid()
	ns := fmt.Sprintf("cutover-example-%d", pid)
	builder, err := docker.New(ctx, docker.Options{Namespace: ns})
	if err != nil {
		return err
	}
	defer builder.Close()
	backend, err := swarm.New(ctx, swarm.Options{Namespace: ns, LocalImages: true, NodeEngines: cluster.NodeEngines()})
	if err != nil {
		return err
	}
	defer backend.Close()
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		images[v] = fmt.Sprintf("%s:%s-%d", imageRepo, v, pid)
	}
	cleaned := false
	cleanup := func() error {
		if cleaned {
			return nil
		}
		cleaned = true
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := backend.DestroyAll(cctx, "")
		errs := []error{err}
		for _, img := range images {
			errs = append(errs, builder.RemoveImage(cctx, img))
		}
		fmt.Printf("cleaned up: removed %d services and the images %s, %s\n", n, images["v1"], images["v2"])
		return errors.Join(errs...)
	}
	defer func() { err = errors.Join(err, cleanup()) }()

	// The images: built on the manager's engine, loaded into the worker's.
	dir, err := appDir(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	for v, img := range images {
		if err := builder.BuildGoImage(ctx, img, dir, docker.ImageOptions{Env: map[string]string{"VERSION": v}}); err != nil {
			return err
		}
		if err := cluster.LoadImage(ctx, img); err != nil {
			return err
		}
	}
	fmt.Printf("built %s and %s, loaded into both nodes, in %v\n", images["v1"], images["v2"], time.Since(start).Round(time.Millisecond))

	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
	defer px.CloseIdleConnections()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := proxy.NewServer("", px, proxy.ServerOptions{})
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	d := &deploy.Deployer{
		Backend:     backend,
		Router:      px,
		Health:      health.HTTP{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second},
		Strategy:    s,
		WaitTimeout: 60 * time.Second,
		OnEvent:     func(e deploy.Event) { fmt.Println(" ", e) },
	}
	spec := func(v string) deploy.MachineSpec {
		return deploy.MachineSpec{App: app, Image: images[v], Version: v, Port: 8080, StopTimeout: 5 * time.Second}
	}

	fmt.Printf("deploying v1 to %d machines behind %s\n", machines, url)
	if _, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: machines}); err != nil {
		return fmt.Errorf("first deploy: %w", err)
	}

	fmt.Printf("deploying v2 (%s) with %d clients sending requests through the proxy\n", s.Name(), workers)
	traffic := deploytest.StartLoad(ctx, url, deploytest.LoadOptions{Workers: workers, Duration: 5 * time.Minute})
	if err := traffic.WaitRequests(ctx, 100); err != nil {
		traffic.Stop()
		return err
	}
	res, derr := d.Deploy(ctx, deploy.Request{Spec: spec("v2"), Count: machines})
	after := traffic.Mark()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = traffic.WaitEpoch(wctx, after, 100)
	cancel()
	lr := traffic.Stop()
	nodes := map[string]int{}
	for _, id := range res.Machines {
		if m, err := backend.Get(ctx, id); err == nil {
			nodes[m.(*swarm.Machine).NodeID()]++
		}
	}
	fmt.Printf("machines by node after the deploy: %v\n", nodes)
	cerr := cleanup()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	derr2 := cluster.Down(dctx) // before the summary, so that the JSON line is the last
	dcancel()
	deploytest.PrintNodesReport(os.Stdout, res, machines, len(nodes), lr, traffic.Epoch(after), derr, asJSON)
	return errors.Join(derr, cerr, derr2)
}

// appDir finds the directory of examples/app with the go command.
func appDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", appPkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("locating %s (run this inside the module, as go run ./examples/swarm): %w", appPkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}
