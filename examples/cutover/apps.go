package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/release"
	"github.com/hashicorp/go-hclog"
)

// appSpec is one --app flag: another app the daemon serves, from its
// fly.toml, on its host names.
type appSpec struct {
	path  string
	hosts []string
}

// parseApp parses --app PATH=HOST[,HOST...].
func parseApp(v string) (appSpec, error) {
	path, hosts, ok := strings.Cut(v, "=")
	if !ok || path == "" || hosts == "" {
		return appSpec{}, fmt.Errorf("want PATH=HOST[,HOST...], such as api/fly.toml=api.example.com")
	}
	s := appSpec{path: path}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			s.hosts = append(s.hosts, h)
		}
	}
	return s, nil
}

// extraApp is one more app in the daemon: its own proxy (routed by host
// through the Mux), monitor, deployer and control Server, sharing the
// backend and the release store (which keeps each app apart).
type extraApp struct {
	d       *daemon
	stopMon context.CancelFunc
	monDone chan struct{}
}

// startApps starts the apps of --app: each is adopted and recovered like
// the daemon's first app, its health monitor runs, its host names go to mux
// and its control Server to ctl.Apps. stop ends their monitors and proxies.
func startApps(ctx context.Context, specs []appSpec, kit *backendKit, store *release.File, logs *logRing, deployLog hclog.Logger,
	popts proxy.Options, mux *proxy.Mux, ctl *control.Server, info control.Info, measure func(*daemon) control.App) (stop func(), err error) {
	var apps []*extraApp
	stop = func() {
		for _, a := range apps {
			a.stopMon()
			<-a.monDone
			a.d.px.CloseIdleConnections()
		}
	}
	for _, s := range specs {
		cm := &common{cfgPath: s.path}
		plan, err := cm.load()
		if err != nil {
			stop()
			return nil, fmt.Errorf("--app %s: %w", s.path, err)
		}
		// Its own limits: fly.toml's concurrency and max_body_bytes (else the flag's).
		aopts := popts
		if aopts.Logger != nil {
			aopts.Logger = aopts.Logger.Named(plan.Spec.App)
		}
		aopts.Concurrency = proxyConcurrency(plan.Concurrency)
		if aopts.MaxBodyBytes, err = appMaxBody(cm.cfg, popts.MaxBodyBytes); err == nil {
			err = aopts.Concurrency.Validate()
		}
		if err != nil {
			stop()
			return nil, usagef("--app %s: %v", s.path, err)
		}
		app := plan.Spec.App
		if err := release.ValidApp(app); err != nil {
			stop()
			return nil, usagef("--app %s: app name %q cannot be used", s.path, app)
		}
		if _, dup := ctl.Apps[app]; dup || app == ctl.Info.App {
			stop()
			return nil, usagef("--app %s: app %q is served already", s.path, app)
		}
		px := proxy.New(aopts)
		d := newDaemon(app, plan, kit, px, store, logs, deployLog)
		d.info = info
		d.info.App, d.info.PID, d.info.Started = app, os.Getpid(), time.Now()
		for _, h := range s.hosts {
			if err := mux.Handle(h, "", px); err != nil {
				px.CloseIdleConnections()
				stop()
				return nil, usagef("--app %s: host %s: %v", s.path, h, err)
			}
		}
		if err := d.adopt(ctx); err != nil {
			logs.printf("adopt %s: %v", app, err)
		}
		if res, err := d.dep.Recover(ctx, app); err != nil {
			logs.printf("recover %s: %v", app, err)
		} else if res != nil {
			logs.printf("recovered an interrupted deploy of %s %s: %s", app, res.Version, res.Status)
		}
		a := &extraApp{d: d, monDone: make(chan struct{})}
		var monCtx context.Context
		monCtx, a.stopMon = context.WithCancel(context.Background())
		go func() { defer close(a.monDone); d.watch(monCtx) }()
		apps = append(apps, a)
		if ctl.Apps == nil {
			ctl.Apps = map[string]*control.Server{}
		}
		ctl.Apps[app] = &control.Server{Router: d.mon, Pauser: px, App: measure(d), Stats: d.stats, Info: d.info, ErrorLog: ctl.ErrorLog}
		logs.printf("serving app %s for %s", app, strings.Join(s.hosts, ", "))
	}
	return stop, nil
}
