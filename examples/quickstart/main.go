// Quickstart deploys an app of 3 machines on the in-memory backend behind the
// proxy, then deploys v2 while clients send requests through the proxy, and
// prints what happened.
//
//	go run ./examples/quickstart                       # rolling
//	go run ./examples/quickstart -strategy immediate -json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/canary"
)

func main() {
	strat := flag.String("strategy", "rolling", "deploy strategy: "+fmt.Sprint(strategy.Names))
	machines := flag.Int("machines", 3, "machines in the app")
	asJSON := flag.Bool("json", false, "end with one JSON line summarising the deploy")
	workers := flag.Int("clients", 8, "concurrent clients sending requests through the proxy")
	flag.Parse()
	if err := run(*strat, *machines, *workers, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		if errors.Is(err, deploy.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(strategyName string, machines, workers int, asJSON bool) error {
	s, err := strategy.ByName(strategyName, strategy.Options{})
	if err != nil {
		return err
	}
	if s.Name() == "canary" { // bake each step for 2s instead of the default minute
		s = canary.Strategy{Bake: 2 * time.Second}
	}
	if machines < 1 {
		return fmt.Errorf("%w: -machines %d: want at least 1", deploy.ErrInvalid, machines)
	}
	ctx := context.Background()

	// The backend: each image is a Go handler; each machine serves it on 127.0.0.1.
	backend := mem.New()
	defer backend.Close()
	backend.Register("demo:v1", deploytest.App("v1"))
	backend.Register("demo:v2", deploytest.App("v2"))
	// Real apps take a moment to boot; so do these, so that traffic flows during the deploy.
	backend.Inject(mem.Fault{ListenAfter: 200 * time.Millisecond})

	// The proxy: the app's single entry point, switching traffic between machines.
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := proxy.NewServer("", px, proxy.ServerOptions{}) // safe timeouts and header limits
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	d := &deploy.Deployer{
		Backend:     backend,
		Router:      px,
		Health:      health.HTTP{Path: "/health", Interval: 50 * time.Millisecond},
		Strategy:    s,
		WaitTimeout: 30 * time.Second,
		OnEvent:     func(e deploy.Event) { fmt.Println(" ", e) },
	}
	spec := func(v string) deploy.MachineSpec {
		return deploy.MachineSpec{App: "demo", Image: "demo:" + v, Version: v, StopTimeout: 5 * time.Second}
	}

	fmt.Printf("deploying v1 to %d machines behind %s\n", machines, url)
	if _, err := d.Deploy(ctx, deploy.Request{Spec: spec("v1"), Count: machines}); err != nil {
		return fmt.Errorf("first deploy: %w", err)
	}

	fmt.Printf("deploying v2 (%s) with %d clients sending requests through the proxy\n", s.Name(), workers)
	trial, err := deploytest.DeployUnderLoad(ctx, d, deploy.Request{Spec: spec("v2"), Count: machines}, url, deploytest.LoadOptions{Workers: workers})
	if trial != nil {
		trial.Print(os.Stdout)
		if asJSON {
			_ = json.NewEncoder(os.Stdout).Encode(trial.Summary())
		}
	}
	return err
}
