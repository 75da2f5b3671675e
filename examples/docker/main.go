// Docker deploys the sample app of examples/app on the local Docker engine:
// it builds the app into two images (v1 and v2, no registry needed), deploys
// v1 to 3 containers behind the proxy, then deploys v2 while clients send
// requests through the proxy, prints what happened, and removes every
// container and image it made, also when it fails or is interrupted.
//
//	go run ./examples/docker                       # rolling
//	go run ./examples/docker -strategy bluegreen -json
//	go run ./examples/docker -listen-after 2s -no-health   # v2 listens 2s after start; the default check
//
// It prints the same summary, and with -json the same last line, as
// examples/quickstart. Containers publish their port on 127.0.0.1 only.
package main

import (
	"context"
	"encoding/json"
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
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/canary"
)

const (
	appPkg    = "github.com/cutover/deploy/examples/app"
	imageRepo = "cutover-example-app"
	app       = "demo"
)

func main() {
	strat := flag.String("strategy", "rolling", "deploy strategy: "+fmt.Sprint(strategy.Names))
	machines := flag.Int("machines", 3, "containers in the app")
	asJSON := flag.Bool("json", false, "end with one JSON line summarising the deploy")
	workers := flag.Int("clients", 8, "concurrent clients sending requests through the proxy")
	listenAfter := flag.Duration("listen-after", 0, "v2 listens only this long after its container starts, as a slow-booting app")
	noHealth := flag.Bool("no-health", false, "configure no health check: the default check (the app answers HTTP) decides")
	flag.Parse()
	// Ctrl-C cancels the deploy (which then undoes itself) and the clean-up still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *strat, *machines, *workers, *asJSON, *listenAfter, *noHealth)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples/docker:", err)
		if errors.Is(err, deploy.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, strategyName string, machines, workers int, asJSON bool, listenAfter time.Duration, noHealth bool) (err error) {
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

	// The backend. Its namespace and the image tags hold the process ID, so
	// that two runs on one engine keep apart, and clean-up removes only ours.
	pid := os.Getpid()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	backend, err := docker.New(pctx, docker.Options{Namespace: fmt.Sprintf("cutover-example-%d", pid)})
	pcancel()
	if err != nil {
		return fmt.Errorf("cannot reach the Docker engine (is it running? DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}
	defer backend.Close()
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		images[v] = fmt.Sprintf("%s:%s-%d", imageRepo, v, pid)
	}
	defer func() { err = errors.Join(err, cleanup(backend, images)) }()

	// The images: one static binary of examples/app each, imported with no registry.
	dir, err := appDir(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	for v, img := range images {
		if err := backend.BuildGoImage(ctx, img, dir, docker.ImageOptions{Env: map[string]string{"VERSION": v}}); err != nil {
			return err
		}
	}
	fmt.Printf("built %s and %s from %s in %v (engine API %s)\n", images["v1"], images["v2"], dir, time.Since(start).Round(time.Millisecond), backend.APIVersion())

	// The proxy: the app's single entry point, switching traffic between containers.
	px := proxy.New(proxy.Options{DrainTimeout: 10 * time.Second})
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
		Health:      health.HTTP{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second},
		Strategy:    s,
		WaitTimeout: 30 * time.Second,
		OnEvent:     func(e deploy.Event) { fmt.Println(" ", e) },
	}
	if noHealth {
		d.Health = nil // deploy.DefaultCheck
	}
	spec := func(v string) deploy.MachineSpec {
		s := deploy.MachineSpec{App: app, Image: images[v], Version: v, Port: 8080, StopTimeout: 5 * time.Second}
		if v == "v2" && listenAfter > 0 {
			s.Env = map[string]string{"LISTEN_AFTER": listenAfter.String()}
		}
		return s
	}

	fmt.Printf("deploying v1 to %d containers behind %s\n", machines, url)
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

// cleanup removes the containers of the backend's namespace and the images.
// It writes to stderr, so that the JSON line stays the last of stdout.
func cleanup(backend *docker.Backend, images map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := backend.DestroyAll(ctx, "")
	errs := []error{err}
	for _, img := range images {
		errs = append(errs, backend.RemoveImage(ctx, img))
	}
	fmt.Fprintf(os.Stderr, "cleaned up: removed %d containers and the images %s, %s\n", n, images["v1"], images["v2"])
	return errors.Join(errs...)
}

// appDir finds the directory of examples/app with the go command, so that the
// example runs from anywhere in the module.
func appDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", appPkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("locating %s (run this inside the module, as go run ./examples/docker): %w", appPkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}
