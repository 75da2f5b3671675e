package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/examples/cutover/internal/edge"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
	"github.com/hashicorp/go-hclog"
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
in the daemon and stop with it; with docker they keep running. With --backend
swarm the local engine must be a swarm manager: machines run as services across
its nodes, and the proxy reaches them on their nodes' addresses.

To restart without dropping a request (a new binary, new flags), run
'cutover serve --upgrade' with the same state directory, or send SIGHUP or
SIGUSR2 to the daemon (it starts its own binary so): the new daemon takes the
listening sockets over the control socket (SCM_RIGHTS), starts the app here
(mem: new machines of the current release, at its count; docker: adopts the
containers), serves, and the old one stops accepting, asks each client to
reconnect (its next response closes the connection: "Connection: close",
a GOAWAY over HTTP/2), waits up to 10s for them to go, drains its requests
and exits. Every
listening socket is handed over: the control socket, the HTTP port, the
HTTPS port and the metrics address; one the new flags move to another port
is listened on anew (and the old one closes with the old daemon). A
handover waits for no deploy: it is refused while one runs.`

// backendKit is a backend and what the daemon needs around it.
type backendKit struct {
	name    string
	backend deploy.Backend
	// prepare makes sure image can run, or says what to do (an error wrapping deploy.ErrInvalid).
	prepare func(ctx context.Context, image string, releaseCmd []string) error
	// adapt, when set, adapts a request's specs to the backend (the mem
	// backend runs its demo app whatever a serving machine's command, and a
	// worker's command as a demo worker).
	adapt func(req *deploy.Request)
	// register, when set, makes an image runnable again after a restart
	// (mem: the machines run in the daemon).
	register func(image string)
	// close releases the backend when the daemon stops.
	close func() error
	// note is said on shutdown about the machines.
	note string
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("serve", "[-c fly.toml] [--backend docker|swarm|mem] [--port N] [--state-dir DIR]", serveAbout, stdout)
	backendName := c.fs.String("backend", "docker", "where machines run: docker (containers on the local engine), swarm (services across the swarm the local engine manages) or mem (a demo app in this process, no engine needed)")
	localImages := c.fs.Bool("local-images", false, "swarm: run images loaded into every node (docker save | docker load) instead of pulling them from a registry")
	port := c.fs.Int("port", 8080, "public port of the proxy, on 127.0.0.1")
	drain := c.durationFlag("drain-timeout", 30*time.Second, "how long a machine leaving traffic may take to finish its requests")
	quiet := c.fs.Bool("quiet", false, "do not copy the log to stderr")
	upgrade := c.fs.Bool("upgrade", false, "take over from the daemon running on the state directory: its listening sockets (no connection refused), then it drains and exits; for a new binary or new flags. SIGHUP or SIGUSR2 to a daemon does the same with its own binary")
	ff := addFrontFlags(c.fs)
	metricsAddr := c.fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, such as 127.0.0.1:9091 (default: off)")
	level := logLevel{hclog.Warn} // the event lines already tell what info would
	c.fs.Var(&level, "log-level", "what the deployer and the proxy write to the log besides the events: "+strings.Join(logLevels, ", ")+" (warn: trouble only; info: starts, outcomes, targets; debug: every step)")
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
	var ln, pub net.Listener
	var tk *control.Takeover
	var handed handedSockets // an upgrade's sockets not yet used
	defer handed.closeUnused(nil)
	if *upgrade {
		if tk, handed, err = takeOver(ctx, c.socket()); err != nil {
			return err
		}
		logs.printf("upgrade: took over the sockets of pid %d (%s); it serves until this daemon is ready", tk.PID, handed)
		defer tk.Abandon() // until Ready: the old daemon goes on serving
		ln = handed.take(sockControl, 0)
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(true)
		}
		pub = handed.take(sockHTTP, *port)
	} else {
		ln, err = control.Listen(c.socket())
		if errors.Is(err, control.ErrInUse) {
			return fmt.Errorf("a cutover daemon already runs for the state directory %s (socket %s): stop it, pass another --state-dir, or replace it with `cutover serve --upgrade`", c.state(), c.socket())
		}
		if err != nil {
			return fmt.Errorf("cannot listen on the control socket: %w", err)
		}
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
	case "swarm":
		if kit, err = newSwarmKit(ctx, app, *localImages); err != nil {
			return err
		}
	default:
		return usagef("unknown backend %q: pass --backend docker, --backend swarm or --backend mem", *backendName)
	}
	defer func() {
		if err := kit.close(); err != nil {
			logs.printf("backend close: %v", err)
		}
	}()

	if pub == nil {
		pub, err = net.Listen("tcp", net.JoinHostPort(ff.bind, strconv.Itoa(*port)))
		if err != nil {
			return fmt.Errorf("cannot listen on %s:%d (%v): pass another --port", ff.bind, *port, err)
		}
	}
	// The proxy's listeners close on any return: srv's Shutdown closed them
	// already when it served them.
	defer pub.Close()
	var tlsLn net.Listener
	defer func() {
		if tlsLn != nil {
			tlsLn.Close()
		}
	}()
	limits := proxyConcurrency(plan.Concurrency)
	if err := limits.Validate(); err != nil {
		return usagef("invalid concurrency in %s: %v", c.cfgPath, err)
	}
	maxBody, err := appMaxBody(c.cfg, ff.maxBody)
	if err != nil {
		return usagef("invalid %s: %v", c.cfgPath, err)
	}
	px := proxy.New(proxy.Options{DrainTimeout: *drain, MaxBodyBytes: maxBody, Logger: logs.hclogger("proxy", level.level), Concurrency: limits})
	defer px.CloseIdleConnections()
	frontOpts.Server.ErrorLog = logs.logger("http: ")
	h, mux, err := ff.handler(px)
	if err != nil {
		return err
	}
	srv, err := edge.New(h, frontOpts) // safe timeouts and header limits; TLS when asked
	if err != nil {
		return err
	}
	var tlsHanded net.Listener
	if ff.httpsPort != 0 {
		tlsHanded = handed.take(sockHTTPS, ff.httpsPort)
	}
	tlsLn, err = ff.listenTLS(tlsHanded)
	if err != nil {
		return err
	}

	deployLog := logs.hclogger("deployer", level.level)
	d := newDaemon(app, plan, kit, px, store, logs, deployLog)
	d.info = control.Info{App: app, Backend: kit.name, Addr: pub.Addr().String(), PID: os.Getpid(), Started: time.Now()}
	var metricsLn net.Listener
	if *metricsAddr != "" {
		metricsLn = handed.take(sockMetrics, addrPort(*metricsAddr))
	}
	measure, metricsLn, stopMetrics, err := startMetrics(*metricsAddr, metricsLn, logs)
	if err != nil {
		return err
	}
	defer stopMetrics()
	handed.closeUnused(logs) // what the old daemon served and this one does not closes with it
	listeners := map[string]net.Listener{sockControl: ln, sockHTTP: pub}
	if tlsLn != nil {
		listeners[sockHTTPS] = tlsLn
	}
	if metricsLn != nil {
		listeners[sockMetrics] = metricsLn
	}
	owner, err := lockOwner(c.state())
	if err != nil {
		return err
	}
	d.dep.Owner = owner
	handedOver := make(chan struct{})
	ctl := &control.Server{Router: d.mon, Pauser: px, App: measure(d), Stats: d.stats, Info: d.info, ErrorLog: logs.logger("control: ")}
	// More apps (--app), each with its own proxy behind the host Mux.
	apps, stopApps, err := startApps(ctx, ff.apps, kit, store, logs, deployLog, owner, proxy.Options{DrainTimeout: *drain, MaxBodyBytes: ff.maxBody, Logger: logs.hclogger("proxy", level.level)}, mux, ctl, d.info, measure)
	if err != nil {
		return err
	}
	defer stopApps()
	apps = append([]*daemon{d}, apps...)
	ctl.Handover = handover(apps, listeners, handedOver)

	// Adopt what runs; recovery finishes or undoes a deploy the last daemon
	// left half done.
	if err := d.adopt(ctx); err != nil {
		logs.printf("adopt: %v", err)
	}
	defer d.startRecovery(ctx)()
	if tk != nil {
		// Taking over: serve only once every app runs here at its count (mem
		// machines start in this process; Docker containers are adopted).
		for _, ad := range apps {
			select {
			case <-ad.recovered:
			case <-ctx.Done():
				return fmt.Errorf("upgrade: interrupted before this daemon was ready; pid %d goes on serving", tk.PID)
			}
		}
	}

	stopWatch := d.startWatch()

	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(pub, tlsLn) }()

	ctlErr := make(chan error, 1)
	go func() { ctlErr <- ctl.Serve(ln) }()

	logs.printf("serving app %s on http://%s (backend %s); control socket %s", app, pub.Addr(), kit.name, c.socket())
	if tk != nil {
		if err := tk.Ready(); err != nil {
			logs.printf("upgrade: %v", err)
		} else {
			logs.printf("upgrade: pid %d drains its requests and exits; this daemon serves", tk.PID)
		}
	}
	sigs := make(chan os.Signal, 1)
	if len(upgradeSignals) > 0 {
		signal.Notify(sigs, upgradeSignals...)
	}
	defer signal.Stop(sigs)
	if tlsLn != nil {
		logs.printf("serving HTTPS for %s on %s; HTTP redirects to it", strings.Join(ff.hosts, ", "), tlsLn.Addr())
	}
	var runErr error
wait:
	select {
	case <-sigs:
		if err := startUpgrade(args); err != nil {
			logs.printf("upgrade: %v", err)
		} else {
			logs.printf("upgrade: started a new daemon (serve --upgrade); it takes over once ready")
		}
		goto wait
	case <-handedOver:
		logs.printf("upgrade: a new daemon took over the sockets: stopping here, draining requests")
	case <-ctx.Done():
		if op := d.running(); op != "" {
			logs.printf("stopping: cancelling the running %s, draining requests", op)
		} else {
			logs.printf("stopping: draining requests")
		}
	case err := <-srvErr:
		runErr = fmt.Errorf("proxy server: %w", err)
	case err := <-ctlErr:
		runErr = fmt.Errorf("control server: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if handed := isClosed(handedOver); handed {
		// The new daemon accepts from now on: this one stops accepting and
		// asks its clients to reconnect (there) before it closes what stays idle.
		dctx, cancel := context.WithTimeout(sctx, handoverDrain)
		if err := srv.Drain(dctx); err != nil {
			logs.printf("upgrade: %v; closing them", err)
		}
		cancel()
	}
	if err := ctl.Shutdown(sctx); err != nil {
		logs.printf("control shutdown: %v", err)
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logs.printf("proxy shutdown: %v", err)
	}
	stopWatch()
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
		hc = deploy.DefaultCheck{}
	}
	// Machines of a deploy the last daemon left running are not routed:
	// recovery decides about them.
	interrupted := map[string]bool{}
	if rels, err := d.store.List(ctx, d.app); err == nil {
		for _, r := range rels {
			if r.Status == deploy.ReleaseRunning {
				interrupted["v"+strconv.Itoa(r.Version)] = true
			}
		}
	}
	targets, held := map[string]int{}, map[string]int{}
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
		if interrupted[m.Spec().Version] {
			held[m.Addr()] = 1
			d.logs.printf("adopt: machine %s (%s) belongs to an interrupted deploy: routed only if nothing else serves; recovery decides", m.ID(), m.Spec().Version)
			continue
		}
		targets[m.Addr()] = 1
		d.logs.printf("adopt: machine %s (%s) at %s routed", m.ID(), m.Spec().Version, m.Addr())
	}
	if len(targets) == 0 {
		targets = held // the interrupted deploy had moved all traffic
	}
	if len(targets) == 0 {
		return nil
	}
	return d.mon.SetTargets(ctx, targets)
}

// lockOwner returns the daemon's name in the deploy lock, kept in the state
// directory so that a daemon restarted after a crash takes over the lock its
// predecessor left (only one daemon runs per state directory: the control
// socket says so).
func lockOwner(state string) (string, error) {
	path := filepath.Join(state, "owner")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	owner := fmt.Sprintf("cutover serve %s %s/%s", hex.EncodeToString(b[:]), host, state)
	if err := os.WriteFile(path, []byte(owner+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the daemon's lock name: %w", err)
	}
	return owner, nil
}

// startRecovery recovers the app in the background as its first operation
// (the operations asked for meanwhile wait for it; d.recovered is closed
// once it ended). stop cancels it and waits for it.
func (d *daemon) startRecovery(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	d.recovered = done
	ctx, cancel := context.WithCancel(ctx)
	end, _ := d.begin("recover", "", nil, nil) // the slot is free: nothing runs yet
	go func() {
		defer close(done)
		defer end()
		d.recoverUntilDone(ctx)
	}()
	return func() { cancel(); <-done }
}

// startWatch runs the app's health monitor and follows its machines'
// output (watch) until stop.
func (d *daemon) startWatch() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.watch(ctx) }()
	return func() { cancel(); <-done }
}

// recoverUntilDone recovers an interrupted deploy (and machines that stopped
// with the last daemon), trying again until it is done or ctx ends: a lock
// another process holds is waited out.
func (d *daemon) recoverUntilDone(ctx context.Context) {
	if d.kit.register != nil { // mem: the images to restore run in this process
		rels, err := d.store.List(ctx, d.app)
		if err != nil {
			d.logs.printf("recover %s: %v", d.app, err)
		}
		stable := false
		for _, r := range rels {
			if r.Status == deploy.ReleaseRunning || r.Stable && !stable {
				stable = stable || r.Stable
				d.kit.register(r.Image)
			}
		}
	}
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := d.dep.Recover(ctx, d.app)
		switch {
		case err == nil && res == nil:
			return
		case err == nil:
			d.logs.printf("recover %s: %s: %s (machines %s)", d.app, orDash(res.Version), recoverWords(res), strings.Join(res.Machines, " "))
			return
		case ctx.Err() != nil:
			return
		}
		d.logs.printf("recover %s: attempt %d: %v; trying again in %s", d.app, attempt, oneLine(err), delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func recoverWords(res *deploy.Result) string {
	switch {
	case res.Status == deploy.StatusSucceeded && res.FromVersion == res.Version:
		return "machines that stopped with the last daemon restarted"
	case res.Status == deploy.StatusSucceeded:
		return "an interrupted deploy had moved all traffic: kept"
	case res.FromVersion != "":
		return "an interrupted deploy was rolled back to " + res.FromVersion
	}
	return "an interrupted first deploy was removed"
}

// handoverDrain bounds how long a daemon that handed its sockets over waits
// for its clients to leave their connections (each response asks them to)
// before it closes those left idle.
const handoverDrain = 10 * time.Second

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The names of the sockets a daemon hands over to its successor.
const (
	sockControl = "control" // the control socket
	sockHTTP    = "public"  // the proxy's HTTP port (--port)
	sockHTTPS   = "https"   // the proxy's HTTPS port (--https-port)
	sockMetrics = "metrics" // the Prometheus metrics (--metrics-addr)
)

// handedSockets are the listening sockets an upgrade took over, by name,
// until this daemon uses them.
type handedSockets map[string]net.Listener

// take returns the socket name listening on port (0: any port) for this
// daemon to serve on, or nil when none was handed over or it listens on
// another port (new flags: this daemon listens anew).
func (h handedSockets) take(name string, port int) net.Listener {
	l := h[name]
	if l == nil || port != 0 && addrPort(l.Addr().String()) != port {
		return nil
	}
	delete(h, name)
	return l
}

// closeUnused closes the sockets not taken, saying so in logs (when not
// nil): this daemon does not serve them, and they close with the old one.
func (h handedSockets) closeUnused(logs *logRing) {
	for name, l := range h {
		if logs != nil {
			logs.printf("upgrade: the old daemon's %s socket on %s is not served here (other flags): it closes with the old daemon", name, l.Addr())
		}
		l.Close()
		delete(h, name)
	}
}

// String lists the sockets, such as "control, https on 127.0.0.1:8443".
func (h handedSockets) String() string {
	var parts []string
	for name, l := range h {
		parts = append(parts, name+" on "+l.Addr().String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// addrPort is the port of a host:port address, 0 when it has none.
func addrPort(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// takeOver takes every listening socket of the daemon on the control socket
// at path (the control socket and the HTTP port at least).
func takeOver(ctx context.Context, path string) (*control.Takeover, handedSockets, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tk, err := control.TakeOver(tctx, path)
	if errors.Is(err, control.ErrUnreachable) {
		return nil, nil, fmt.Errorf("--upgrade: no daemon answers at %s to take over from: run cutover serve without --upgrade", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--upgrade: the daemon at %s does not hand over: %s", path, oneLine(err))
	}
	h := handedSockets{}
	var errs []error
	for name, f := range tk.Files {
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s socket: %w", name, err))
			continue
		}
		h[name] = l
	}
	for _, name := range []string{sockControl, sockHTTP} {
		if h[name] == nil && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("the daemon handed over no %s socket", name))
		}
	}
	if len(errs) > 0 {
		h.closeUnused(nil)
		tk.Abandon()
		return nil, nil, fmt.Errorf("--upgrade: %w", errors.Join(errs...))
	}
	return tk, h, nil
}

// handover gives a new daemon (serve --upgrade) this one's listening
// sockets, by name, when no operation runs for any of its apps (none starts
// then); handedOver is closed once it serves.
func handover(apps []*daemon, listeners map[string]net.Listener, handedOver chan struct{}) *control.Handover {
	thaw := func(apps []*daemon) {
		for _, d := range apps {
			d.thaw()
		}
	}
	return &control.Handover{
		Files: func() (map[string]*os.File, error) {
			for i, d := range apps {
				if err := d.freeze(); err != nil {
					thaw(apps[:i])
					return nil, err
				}
			}
			files := map[string]*os.File{}
			for name, l := range listeners {
				f, err := l.(interface{ File() (*os.File, error) }).File()
				if err != nil {
					for _, f := range files {
						f.Close()
					}
					thaw(apps)
					return nil, fmt.Errorf("%s socket: %w", name, err)
				}
				files[name] = f
			}
			return files, nil
		},
		Done: func(ready bool) {
			if !ready {
				apps[0].logs.printf("upgrade: the new daemon gave up; this one goes on")
				thaw(apps)
				return
			}
			if ul, ok := listeners[sockControl].(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false) // the socket file is the new daemon's now
			}
			close(handedOver)
		},
	}
}

// freeze refuses new operations for a handover, or says what runs.
func (d *daemon) freeze() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.op != nil {
		return fmt.Errorf("a %s of %s runs: upgrade once it ends (cutover status)", d.op.Kind, d.app)
	}
	d.op = &control.Operation{Kind: "handover", Started: time.Now()}
	return nil
}

func (d *daemon) thaw() {
	d.mu.Lock()
	d.op = nil
	d.mu.Unlock()
}

// proxyConcurrency turns fly.toml's concurrency (of the http_service, else
// the first service) into the proxy's limits; nil means none. Fly's own
// defaults (a hard limit of 25) are not assumed: without the section the
// proxy sets no limit.
func proxyConcurrency(c *config.Concurrency) proxy.Concurrency {
	if c == nil {
		return proxy.Concurrency{}
	}
	return proxy.Concurrency{Type: c.Type, SoftLimit: c.SoftLimit, HardLimit: c.HardLimit}
}

// appMaxBody is the largest request body an app's proxy accepts: its
// fly.toml's http_service.max_body_bytes (this project's extension), else
// the --max-body-bytes flag's value.
func appMaxBody(cfg *config.Config, flag int64) (int64, error) {
	if cfg == nil {
		return flag, nil
	}
	n, set, err := cfg.MaxBodyBytes()
	if err != nil || !set {
		return flag, err
	}
	return n, nil
}
