package deploy_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/proxy"
	"github.com/cutover/deploy/router/fanout"
)

// plainWrapper wraps a router and has no ability of its own.
type plainWrapper struct{ deploy.Router }

func (w plainWrapper) Unwrap() deploy.Router { return w.Router }

func TestRouterChain(t *testing.T) {
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	fan := fanout.New(px)
	outer := plainWrapper{&deploy.Monitor{Router: fan}}

	var got []deploy.Router
	for rt := range deploy.RouterChain(outer) {
		got = append(got, rt)
	}
	assert.Equal(t, []deploy.Router{outer, outer.Router, fan, px}, got, "outermost first, down to the router that wraps none")

	for range deploy.RouterChain(outer) {
		break // a loop may stop early
	}
	assert.Empty(t, collect(deploy.RouterChain(nil)))
	assert.Equal(t, []deploy.Router{fanout.New()}, collect(deploy.RouterChain(fanout.New())), "a wrapper of nothing ends the chain")

	sr, ok := deploy.StatsReporterOf(outer)
	assert.True(t, ok, "found under three wrappers")
	assert.Same(t, px, sr)
	_, ok = deploy.StatsReporterOf(plainWrapper{fanout.New()})
	assert.False(t, ok)
}

func collect(seq func(func(deploy.Router) bool)) []deploy.Router {
	var out []deploy.Router
	for rt := range seq {
		out = append(out, rt)
	}
	return out
}

// The routers a Monitor wraps, outermost first: what looks for an optional
// ability (deploy.StatsReporterOf, Deployer.Status) walks them so.
func ExampleRouterChain() {
	px := proxy.New(proxy.Options{})
	defer px.CloseIdleConnections()
	mon := &deploy.Monitor{Router: fanout.New(px)}
	for rt := range deploy.RouterChain(mon) {
		fmt.Printf("%T\n", rt)
	}
	// Output:
	// *deploy.Monitor
	// *fanout.Router
	// *proxy.Proxy
}
