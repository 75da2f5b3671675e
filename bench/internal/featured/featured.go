// Package featured builds the proxy that bench/proxy.sh measures, with every
// feature on, so that bench/proxy and bench/ablation/ownloop measure the same one.
package featured

import (
	"context"
	"time"

	"github.com/cutover/deploy/proxy"
)

// New returns a Proxy with a weighted target set over targets (installed through
// SetTargets, so draining and claims are live), per-target statistics, dial
// retries, X-Forwarded-* headers, a response-header timeout, client-disconnect
// cancellation and a body size limit.
func New(targets []string) (*proxy.Proxy, error) {
	p := proxy.New(proxy.Options{
		DrainTimeout:          10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxBodyBytes:          10 << 20,
	})
	set := map[string]int{}
	for _, t := range targets {
		set[t] = 100
	}
	if err := p.SetTargets(context.Background(), set); err != nil {
		return nil, err
	}
	return p, nil
}
