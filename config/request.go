package config

import (
	"encoding/json"
	"fmt"
	"net/http"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/rolling"
)

// Request turns the plan into a ready deploy: its strategy, health checks,
// release command and timeouts, with the plan itself recorded as the release's
// configuration (FromRelease reads it back for a rollback). Count is 0: the
// app keeps its number of machines (at least one).
func (p Plan) Request() (deploy.Request, error) {
	s, err := strategy.ByName(p.StrategyName, strategy.Options{Rolling: rolling.Strategy{MaxUnavailable: p.MaxUnavailable}})
	if err != nil {
		return deploy.Request{}, fmt.Errorf("config: deploy.strategy: %w", err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return deploy.Request{}, fmt.Errorf("config: encode plan: %w", err)
	}
	req := deploy.Request{
		Spec:                  p.Spec,
		Strategy:              s,
		Health:                p.Health(),
		WaitTimeout:           p.WaitTimeout,
		ReleaseCommand:        p.ReleaseCommand,
		ReleaseCommandTimeout: p.ReleaseCommandTimeout,
		Config:                raw,
	}
	if len(p.Groups) > 1 {
		for _, g := range p.Groups {
			req.Groups = append(req.Groups, deploy.Group{Name: g.Name, Spec: g.Spec, Count: g.Count, Health: checkers(g.Checks)})
		}
		req.Spec, req.Health = req.Groups[0].Spec, nil
	}
	return req, nil
}

// Health returns the plan's checks as one checker that passes when all pass,
// or nil when the plan has none (the Deployer then uses deploy.DefaultCheck:
// the app must answer an HTTP request, or for a tcp service keep a connection
// open; or, with Spec.NoService, for the machine to stay
// running). Each check dials its own port: Spec.Port through the machine's
// address, another port through deploy.AddrOf (Spec.Ports publishes it).
func (p Plan) Health() deploy.HealthChecker { return checkers(p.Checks) }

// checkers turns checks into one checker, nil when there are none.
func checkers(checks []Check) deploy.HealthChecker {
	var all health.All
	for _, c := range checks {
		switch c.Type {
		case CheckHTTP:
			h := health.HTTP{
				Method: c.Method, Path: c.Path, Scheme: c.Protocol, TLSSkipVerify: c.TLSSkipVerify, Port: c.Port,
				Timeout: c.Timeout, Interval: c.Interval, GracePeriod: c.GracePeriod,
			}
			if len(c.Headers) > 0 {
				h.Headers = http.Header{}
				for k, v := range c.Headers {
					h.Headers.Set(k, v)
				}
			}
			all = append(all, h)
		case CheckTCP:
			all = append(all, health.TCP{Port: c.Port, Timeout: c.Timeout, Interval: c.Interval, GracePeriod: c.GracePeriod})
		}
	}
	if len(all) == 0 {
		return nil
	}
	return all
}

// FromRelease rebuilds the request of a release deployed from a Plan (its
// Config), for deploy.Deployer.FromRelease: the release's own spec and count,
// with the strategy, checks and timeouts it was deployed with.
func FromRelease(rel deploy.Release) (deploy.Request, error) {
	var p Plan
	if len(rel.Config) == 0 {
		return deploy.Request{}, fmt.Errorf("config: release v%d has no stored configuration: %w", rel.Version, deploy.ErrInvalid)
	}
	if err := json.Unmarshal(rel.Config, &p); err != nil {
		return deploy.Request{}, fmt.Errorf("config: release v%d: stored configuration: %w", rel.Version, err)
	}
	p.Spec = rel.Spec
	for _, rg := range rel.Groups { // the release's own specs and counts
		for i := range p.Groups {
			if p.Groups[i].Name == rg.Name {
				p.Groups[i].Spec, p.Groups[i].Count = rg.Spec, rg.Count
			}
		}
	}
	req, err := p.Request()
	if err != nil {
		return deploy.Request{}, err
	}
	req.Count = rel.Count
	return req, nil
}
