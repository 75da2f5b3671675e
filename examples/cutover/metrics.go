package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/examples/cutover/internal/metrics"
)

// startMetrics serves the daemon's Prometheus metrics at http://addr/metrics
// when addr is set, on ln when it is not nil (a socket taken over from the
// daemon an upgrade replaces). It returns measure, which taps an app's deploy
// and health events and returns the App to serve for it (its deploys
// counted), the listener it serves on, and a function that stops the metrics
// server. With addr empty, measure returns its daemon as is and ln is nil.
func startMetrics(addr string, ln net.Listener, logs *logRing) (measure func(*daemon) control.App, _ net.Listener, stop func(), err error) {
	if addr == "" {
		return func(d *daemon) control.App { return d }, nil, func() {}, nil
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, nil, fmt.Errorf("cannot listen on --metrics-addr %s: %w", addr, err)
		}
	}
	coll := metrics.New()
	measure = func(d *daemon) control.App {
		coll.AddApp(d.app, d.px)
		for _, on := range []*func(deploy.Event){&d.dep.OnEvent, &d.mon.OnEvent} {
			prev := *on
			*on = func(e deploy.Event) {
				coll.Event(e)
				if prev != nil {
					prev(e)
				}
			}
		}
		return measured{d, coll}
	}
	srv := coll.Server("")
	srv.ErrorLog = logs.logger("metrics: ")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logs.printf("metrics server: %v", err)
		}
	}()
	logs.printf("metrics on http://%s/metrics", ln.Addr())
	return measure, ln, func() { _ = srv.Close(); <-done }, nil
}

// measured is an App whose deploys and rollbacks are counted.
type measured struct {
	control.App
	coll *metrics.Collector
}

func (m measured) Deploy(ctx context.Context, args control.DeployArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	res, err := m.App.Deploy(ctx, args, emit)
	m.coll.Result(res)
	return res, err
}

func (m measured) Rollback(ctx context.Context, args control.RollbackArgs, emit func(deploy.Event)) (*deploy.Result, error) {
	res, err := m.App.Rollback(ctx, args, emit)
	m.coll.Result(res)
	return res, err
}
