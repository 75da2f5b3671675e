// Swarm deploys the sample app of examples/app across the nodes of a Docker
// swarm, the way examples/docker does on one engine: it builds v1 and v2
// images, deploys v1 to 4 machines (one service each) spread over the nodes,
// then deploys v2 while clients send requests through the proxy, prints what
// happened, and removes every service and image it made, also when it fails
// or is interrupted.
//
//	go run ./examples/swarm -json               # rolling
//	go run ./examples/swarm -strategy canary
//
// The engine the Docker client environment names (DOCKER_HOST, or the default
// socket) must be a swarm manager; the machines run on its nodes. With no
// registry, the images are built on that engine and copied into every other
// node's engine (docker save | docker load): -engines names those engines, and
// a node not named there names its own in the node label cutover.engine
// (docker node update --label-add cutover.engine=tcp://10.0.0.2:2376 NODE).
// With no swarm at hand, build a two-node one on this machine (root):
//
//	sudo .ci/swarm.sh up && sudo go run ./examples/swarm -json; sudo .ci/swarm.sh down
//
// It prints the same summary, and with -json the same last line, as
// examples/docker, plus "nodes": how many nodes ran the machines that served
// after the deploy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	swarmapi "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/canary"
)

const (
	appPkg      = "github.com/cutover/deploy/examples/app"
	imageRepo   = "cutover-example-swarm-app"
	app         = "demo"
	engineLabel = "cutover.engine" // a node's engine address, for loading images into it
)

func main() {
	strat := flag.String("strategy", "rolling", "deploy strategy: "+fmt.Sprint(strategy.Names))
	machines := flag.Int("machines", 4, "machines in the app, spread over the nodes")
	asJSON := flag.Bool("json", false, "end with one JSON line summarising the deploy")
	workers := flag.Int("clients", 8, "concurrent clients sending requests through the proxy")
	engines := flag.String("engines", "", "engine addresses of other nodes, comma-separated, to load the images into; a node not listed names its own in its node label "+engineLabel)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *strat, *machines, *workers, *asJSON, *engines)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples/swarm:", err)
		if errors.Is(err, deploy.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, strategyName string, machines, workers int, asJSON bool, engineList string) (err error) {
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

	// The swarm's manager, the engines of its other nodes, and the backend.
	// The namespace and the image tags hold the process ID, so that clean-up
	// removes only ours.
	mgr, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer mgr.Close()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	nodes, err := nodeEngines(sctx, mgr, engineList)
	if err != nil {
		return err
	}
	defer nodes.close()
	pid := os.Getpid()
	ns := fmt.Sprintf("cutover-example-%d", pid)
	backend, err := swarm.New(sctx, swarm.Options{Namespace: ns, LocalImages: true, NodeEngines: nodes.hosts()})
	if err != nil {
		return err
	}
	defer backend.Close()
	builder, err := docker.New(sctx, docker.Options{Namespace: ns}) // the manager's engine builds the images
	if err != nil {
		return err
	}
	defer builder.Close()
	scancel()
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		images[v] = fmt.Sprintf("%s:%s-%d", imageRepo, v, pid)
	}
	defer func() { err = errors.Join(err, cleanup(backend, builder, nodes, images)) }()

	// The images: built on the manager's engine, loaded into every other node's.
	dir, err := appDir(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	for v, img := range images {
		if err := builder.BuildGoImage(ctx, img, dir, docker.ImageOptions{Env: map[string]string{"VERSION": v}}); err != nil {
			return err
		}
		if err := nodes.load(ctx, mgr, img); err != nil {
			return err
		}
	}
	fmt.Printf("built %s and %s, copied into the engines of %d other nodes, in %v\n", images["v1"], images["v2"], len(nodes), time.Since(start).Round(time.Millisecond))

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
	trial, err := deploytest.DeployUnderLoad(ctx, d, deploy.Request{Spec: spec("v2"), Count: machines}, url, deploytest.LoadOptions{Workers: workers})
	if trial == nil {
		return err
	}
	byNode := map[string]int{}
	for _, id := range trial.Result.Machines {
		if m, err := backend.Get(ctx, id); err == nil {
			byNode[m.(*swarm.Machine).NodeID()]++
		}
	}
	trial.Nodes = len(byNode)
	fmt.Printf("machines by node after the deploy: %v\n", byNode)
	trial.Print(os.Stdout)
	if asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(trial.Summary())
	}
	return err
}

// node is another node of the swarm, whose engine gets the images.
type node struct {
	id, host string
	cli      *client.Client
}

// engines are the swarm's nodes but the manager's.
type engines []node

// nodeEngines checks that mgr is a swarm manager and connects to the engine
// of every other ready node: an address in list (comma-separated) whose
// engine is that node's, or else the one the node names in its label
// engineLabel. A missing swarm or engine is an error that says what to do.
func nodeEngines(ctx context.Context, mgr *client.Client, list string) (out engines, err error) {
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	info, err := mgr.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Docker engine (is it running? DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}
	if !info.Info.Swarm.ControlAvailable {
		return nil, fmt.Errorf("the engine is no swarm manager (swarm %s): point DOCKER_HOST at a manager, or build a two-node test swarm on this machine with sudo .ci/swarm.sh up",
			info.Info.Swarm.LocalNodeState)
	}
	given := map[string]node{} // by node ID
	for _, h := range strings.Split(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			n, err := connect(ctx, h)
			if err != nil {
				return out, err
			}
			given[n.id] = n
		}
	}
	nl, err := mgr.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return out, err
	}
	for _, sn := range nl.Items {
		n, ok := given[sn.ID]
		delete(given, sn.ID)
		switch {
		case sn.ID == info.Info.Swarm.NodeID || sn.Status.State != swarmapi.NodeStateReady:
			if ok {
				_ = n.cli.Close()
			}
			continue
		case !ok && sn.Spec.Labels[engineLabel] != "":
			if n, err = connect(ctx, sn.Spec.Labels[engineLabel]); err != nil {
				return out, err
			}
			if n.id != sn.ID {
				out = append(out, n)
				return out, fmt.Errorf("node %s names the engine %s, which is node %s's", sn.ID, n.host, n.id)
			}
		case !ok:
			return out, fmt.Errorf("node %s (%s) names no engine to load the images into: label it (docker node update --label-add %s=ADDRESS %s) or pass -engines",
				sn.ID, sn.Description.Hostname, engineLabel, sn.ID)
		}
		out = append(out, n)
	}
	for _, n := range given {
		out = append(out, n) // closed on the error below
		err = errors.Join(err, fmt.Errorf("-engines: %s is the engine of node %s, which is no node of this swarm", n.host, n.id))
	}
	return out, err
}

// connect connects to the engine at host and learns its node ID.
func connect(ctx context.Context, host string) (node, error) {
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return node{}, fmt.Errorf("engine %s: %w", host, err)
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		_ = cli.Close()
		return node{}, fmt.Errorf("engine %s: %w", host, err)
	}
	return node{id: info.Info.Swarm.NodeID, host: host, cli: cli}, nil
}

// hosts maps each node's ID to its engine address, for swarm.Options.NodeEngines.
func (e engines) hosts() map[string]string {
	m := map[string]string{}
	for _, n := range e {
		m[n.id] = n.host
	}
	return m
}

// load copies image from the manager's engine into every node's engine, as
// a registry would deliver it.
func (e engines) load(ctx context.Context, mgr *client.Client, image string) error {
	for _, n := range e {
		rc, err := mgr.ImageSave(ctx, []string{image})
		if err != nil {
			return fmt.Errorf("save %s: %w", image, err)
		}
		res, err := n.cli.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
		if err == nil {
			var body []byte
			body, err = io.ReadAll(res) // a failed load says so in its stream
			res.Close()
			if err == nil && strings.Contains(string(body), `"error"`) {
				err = errors.New(strings.TrimSpace(string(body)))
			}
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("load %s into %s: %w", image, n.host, err)
		}
	}
	return nil
}

func (e engines) close() {
	for _, n := range e {
		_ = n.cli.Close()
	}
}

// cleanup removes the services of the backend's namespace, and the images
// from the manager's engine and every node's. It writes to stderr, so that
// the JSON line stays the last of stdout.
func cleanup(backend *swarm.Backend, builder *docker.Backend, nodes engines, images map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := backend.DestroyAll(ctx, "")
	errs := []error{err}
	for _, img := range images {
		errs = append(errs, builder.RemoveImage(ctx, img))
		for _, n := range nodes {
			if _, err := n.cli.ImageRemove(ctx, img, client.ImageRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "cleaned up: removed %d services and the images %s, %s\n", n, images["v1"], images["v2"])
	return errors.Join(errs...)
}

// appDir finds the directory of examples/app with the go command.
func appDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", appPkg).Output()
	if err != nil {
		return "", fmt.Errorf("locating %s (run this inside the module, as go run ./examples/swarm): %w", appPkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}
