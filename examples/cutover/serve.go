package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/examples/cutover/internal/edge"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
)

const serveAbout = `
Run the daemon for the app in fly.toml: the reverse proxy on 127.0.0.1:PORT
(to the app's internal port on each machine), continuous health checks that
take failing machines out of traffic, the deployer and the release history in
the state directory, and the control socket <state-dir>/cutover.sock (0600)
that the other commands talk to. On start it adopts the app's machines that
still run (Docker containers outlive the daemon) and recovers an interrupted
deploy. SIGINT or SIGTERM stop it gracefully: a running deploy is cancelled and
rolled back, requests in flight complete. With --backend mem the machines live
in the daemon and stop with it; with docker they keep running.`

// backendKit is a backend and what the daemon needs around it.
type backendKit struct {
	name    string
	backend deploy.Backend
	// prepare makes sure image can run, or says what to do (an error wrapping deploy.ErrInvalid).
	prepare func(ctx context.Context, image string, releaseCmd []string) error
	// close releases the backend when the daemon stops.
	close func() error
	// note is said on shutdown about the machines.
	note string
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("serve", "[-c fly.toml] [--backend docker|mem] [--port N] [--state-dir DIR]", serveAbout, stdout)
	backendName := c.fs.String("backend", "docker", "where machines run: docker (containers on the local engine) or mem (a demo app in this process, no engine needed)")
	port := c.fs.Int("port", 8080, "public port of the proxy, on 127.0.0.1")
	drain := c.fs.Duration("drain-timeout", 30*time.Second, "how long a machine leaving traffic may take to finish its requests")
	quiet := c.fs.Bool("quiet", false, "do not copy the log to stderr")
	ff := addFrontFlags(c.fs)
	metricsAddr := c.fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, such as 127.0.0.1:9091 (default: off)")
	plan, err := c.planNoArgs(args)
	if err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return usagef("--port %d out of range (want 1 to 65535, or 0 for any free port)", *port)
	}
	frontOpts, err := ff.options(c.state())
	if err != nil {
		return err
	}
	app := plan.Spec.App
	if err := release.ValidApp(app); err != nil {
		return usagef("app name %q in %s cannot be used: use letters, digits, '-', '_' or '.'", app, c.cfgPath)
	}

	logw := io.Writer(stderr)
	if *quiet {
		logw = io.Discard
	}
	logs := newLogRing(2000, logw)

	if err := os.MkdirAll(c.state(), 0o700); err != nil {
		return fmt.Errorf("cannot create the state directory: %w", err)
	}
	store, err := release.OpenFile(c.releasesDir())
	if err != nil {
		return fmt.Errorf("cannot open the release history: %w", err)
	}
	ln, err := control.Listen(c.socket())
	if errors.Is(err, control.ErrInUse) {
		return fmt.Errorf("a cutover daemon already runs for the state directory %s (socket %s): stop it, or pass another --state-dir", c.state(), c.socket())
	}
	if err != nil {
		return fmt.Errorf("cannot listen on the control socket: %w", err)
	}
	defer ln.Close()

	var kit *backendKit
	switch *backendName {
	case "mem":
		kit = newMemKit(logs)
	case "docker":
		if kit, err = newDockerKit(ctx, app); err != nil {
			return err
		}
	default:
		return usagef("unknown backend %q: pass --backend docker or --backend mem", *backendName)
	}
	defer func() {
		if err := kit.close(); err != nil {
			logs.printf("backend close: %v", err)
		}
	}()

	pub, err := net.Listen("tcp", net.JoinHostPort(ff.bind, strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("cannot listen on %s:%d (%v): pass another --port", ff.bind, *port, err)
	}
	px := proxy.New(proxy.Options{DrainTimeout: *drain, MaxBodyBytes: ff.maxBody, ErrorLog: logs.logger("proxy: ")})
	defer px.Close()
	frontOpts.Server.ErrorLog = logs.logger("http: ")
	h, mux, err := ff.handler(px)
	if err != nil {
		pub.Close()
		return err
	}
	srv, err := edge.New(h, frontOpts) // safe timeouts and header limits; TLS when asked
	if err != nil {
		pub.Close()
		return err
	}
	tlsLn, err := ff.listenTLS()
	if err != nil {
		pub.Close()
		return err
	}

	d := newDaemon(app, plan, kit, px, store, logs)
	d.info = control.Info{App: app, Backend: kit.name, Addr: pub.Addr().String(), PID: os.Getpid(), Started: time.Now()}
	measure, stopMetrics, err := startMetrics(*metricsAddr, logs)
	if err != nil {
		pub.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
		return err
	}
	defer stopMetrics()
	ctl := &control.Server{Router: d.mon, Pauser: px, App: measure(d), Stats: d.stats, Info: d.info, ErrorLog: logs.logger("control: ")}
	// More apps (--app), each with its own proxy behind the host Mux.
	stopApps, err := startApps(ctx, ff.apps, kit, store, logs, proxy.Options{DrainTimeout: *drain, MaxBodyBytes: ff.maxBody, ErrorLog: logs.logger("proxy: ")}, mux, ctl, d.info, measure)
	if err != nil {
		pub.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
		return err
	}
	defer stopApps()

	// Adopt what runs, and finish or undo a deploy the last daemon left half done.
	if err := d.adopt(ctx); err != nil {
		logs.printf("adopt: %v", err)
	}
	if res, err := d.dep.Recover(ctx, app); err != nil {
		logs.printf("recover: %v", err)
	} else if res != nil {
		logs.printf("recovered an interrupted deploy of %s: %s (machines %v)", res.Version, res.Status, res.Machines)
	}

	monCtx, stopMon := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() { defer close(monDone); _ = d.mon.Run(monCtx) }()

	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(pub, tlsLn) }()

	ctlErr := make(chan error, 1)
	go func() { ctlErr <- ctl.Serve(ln) }()

	logs.printf("serving app %s on http://%s (backend %s); control socket %s", app, pub.Addr(), kit.name, c.socket())
	if tlsLn != nil {
		logs.printf("serving HTTPS for %s on %s; HTTP redirects to it", strings.Join(ff.hosts, ", "), tlsLn.Addr())
	}
	var runErr error
	select {
	case <-ctx.Done():
		logs.printf("stopping: cancelling a running deploy, draining requests")
	case err := <-srvErr:
		runErr = fmt.Errorf("proxy server: %w", err)
	case err := <-ctlErr:
		runErr = fmt.Errorf("control server: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ctl.Shutdown(sctx); err != nil {
		logs.printf("control shutdown: %v", err)
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logs.printf("proxy shutdown: %v", err)
	}
	stopMon()
	<-monDone
	logs.printf("stopped; %s", kit.note)
	return runErr
}

// adopt routes the app's machines that run and pass their checks: a daemon
// restarted over Docker containers serves them again at once.
func (d *daemon) adopt(ctx context.Context) error {
	ms, err := d.kit.backend.List(ctx, d.app)
	if err != nil {
		return err
	}
	hc := d.health
	if hc == nil {
		hc = deploy.DialCheck{}
	}
	targets := map[string]int{}
	for _, m := range ms {
		if role := m.Spec().Labels[deploy.LabelRole]; role != "" && role != "app" || m.State() != deploy.StateStarted {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := hc.Check(cctx, m)
		cancel()
		if err != nil {
			d.logs.printf("adopt: machine %s (%s) does not pass its checks, not routed: %v", m.ID(), m.Spec().Version, err)
			continue
		}
		targets[m.Addr()] = 1
		d.logs.printf("adopt: machine %s (%s) at %s routed", m.ID(), m.Spec().Version, m.Addr())
	}
	if len(targets) == 0 {
		return nil
	}
	return d.mon.SetTargets(ctx, targets)
}
