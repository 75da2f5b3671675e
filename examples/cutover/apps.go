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
	return appSpec{path: path, hosts: hostList(hosts)}, nil
}

// hostList returns the host names of a comma-separated list.
func hostList(v string) []string {
	var hosts []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// startApps starts the apps of --app, each with its own proxy (routed by
// host through mux), monitor, deployer and control Server (in ctl.Apps),
// sharing the backend, the release store (which keeps each app apart) and
// the daemon's lock owner: each is adopted and recovered in the background
// like the daemon's first app, and its health monitor runs. stop ends their
// recoveries, monitors and proxies.
func startApps(ctx context.Context, specs []appSpec, kit *backendKit, store *release.File, logs *logRing, deployLog hclog.Logger, owner string,
	popts proxy.Options, mux *proxy.Mux, ctl *control.Server, info control.Info, measure func(*daemon) control.App) (apps []*daemon, stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for _, s := range specs {
		cm := &common{cfgPath: s.path}
		plan, err := cm.load()
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("--app %s: %w", s.path, err)
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
			return nil, nil, usagef("--app %s: %v", s.path, err)
		}
		app := plan.Spec.App
		if err := release.ValidApp(app); err != nil {
			stop()
			return nil, nil, usagef("--app %s: app name %q cannot be used", s.path, app)
		}
		if _, dup := ctl.Apps[app]; dup || app == ctl.Info.App {
			stop()
			return nil, nil, usagef("--app %s: app %q is served already", s.path, app)
		}
		px := proxy.New(aopts)
		d := newDaemon(app, plan, kit, px, store, logs, deployLog)
		d.info = info
		d.info.App, d.info.PID, d.info.Started = app, os.Getpid(), time.Now()
		for _, h := range s.hosts {
			if err := mux.Handle(h, "", px); err != nil {
				px.CloseIdleConnections()
				stop()
				return nil, nil, usagef("--app %s: host %s: %v", s.path, h, err)
			}
		}
		d.dep.Owner = owner
		if err := d.adopt(ctx); err != nil {
			logs.printf("adopt %s: %v", app, err)
		}
		stopRecovery, stopWatch := d.startRecovery(ctx), d.startWatch()
		stops = append(stops, func() {
			stopRecovery()
			stopWatch()
			px.CloseIdleConnections()
		})
		apps = append(apps, d)
		if ctl.Apps == nil {
			ctl.Apps = map[string]*control.Server{}
		}
		ctl.Apps[app] = &control.Server{Router: d.mon, Pauser: px, App: measure(d), Stats: d.stats, Info: d.info, ErrorLog: ctl.ErrorLog}
		logs.printf("serving app %s for %s", app, strings.Join(s.hosts, ", "))
	}
	return apps, stop, nil
}
