package config

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	deploy "github.com/cutover/deploy"
)

// Defaults Plan fills in, as fly uses them.
const (
	DefaultPort                  = 8080
	DefaultReleaseCommandTimeout = 5 * time.Minute
	DefaultWaitTimeout           = deploy.DefaultWaitTimeout
	DefaultMaxUnavailable        = 0.33
)

// Plan is what one deploy of a config needs. Turning Checks into health
// checkers and StrategyName into a deploy.Strategy is left to the caller.
type Plan struct {
	// Spec is the machine to run: App, Image (from build.image; empty when the
	// config builds from source, so set it before deploying), Env, Port,
	// StopSignal (kill_signal) and StopTimeout (kill_timeout).
	Spec deploy.MachineSpec
	// StrategyName is rolling, bluegreen, canary or immediate (rolling when unset).
	StrategyName string
	// MaxUnavailable is a count (>= 1) or a fraction (< 1) of the machines;
	// DefaultMaxUnavailable when unset.
	MaxUnavailable float64
	// WaitTimeout bounds each machine's health wait; DefaultWaitTimeout when unset.
	WaitTimeout time.Duration
	// ReleaseCommand is deploy.release_command split into arguments; nil when unset.
	ReleaseCommand []string
	// ReleaseCommandTimeout is DefaultReleaseCommandTimeout when unset.
	ReleaseCommandTimeout time.Duration
	// Checks are the http and tcp checks of http_service, of every service and
	// the top-level ones (sorted by name), with Port filled in: the service's
	// internal port, or Spec.Port for a top-level check without one.
	Checks []Check
	// Warnings say what of the config the plan leaves out, such as script checks.
	Warnings []string
}

// Plan validates the config and turns it into a Plan.
func (c *Config) Plan() (Plan, error) {
	if err := c.Validate(); err != nil {
		return Plan{}, err
	}
	p := Plan{
		StrategyName:          c.Deploy.Strategy,
		MaxUnavailable:        c.Deploy.MaxUnavailable,
		WaitTimeout:           c.Deploy.WaitTimeout,
		ReleaseCommandTimeout: c.Deploy.ReleaseCommandTimeout,
	}
	if p.StrategyName == "" {
		p.StrategyName = StrategyRolling
	}
	if p.MaxUnavailable == 0 {
		p.MaxUnavailable = DefaultMaxUnavailable
	}
	if p.WaitTimeout == 0 {
		p.WaitTimeout = DefaultWaitTimeout
	}
	if p.ReleaseCommandTimeout == 0 {
		p.ReleaseCommandTimeout = DefaultReleaseCommandTimeout
	}
	p.ReleaseCommand, _ = SplitCommand(c.Deploy.ReleaseCommand) // validated above

	port := DefaultPort
	if c.HTTPService != nil {
		port = orDefault(c.HTTPService.InternalPort)
	} else {
		for _, s := range c.Services {
			if s.Protocol == "" || s.Protocol == "tcp" {
				port = orDefault(s.InternalPort)
				break
			}
		}
	}
	p.Spec = deploy.MachineSpec{
		App:         c.App,
		Image:       c.Build.Image,
		Env:         maps.Clone(c.Env),
		Port:        port,
		StopSignal:  c.KillSignal,
		StopTimeout: c.KillTimeout,
	}
	if c.PrimaryRegion != "" {
		// Backends with regions place by it (backend/swarm: node label "region").
		p.Spec.Labels = map[string]string{deploy.LabelRegion: c.PrimaryRegion}
	}

	add := func(chk Check, defaultPort int) {
		if chk.Type == CheckScript {
			p.Warnings = append(p.Warnings, fmt.Sprintf("check %s: script checks are not supported; skipped", chk.Name))
			return
		}
		if chk.Port == 0 {
			chk.Port = defaultPort
		}
		chk.Headers = maps.Clone(chk.Headers)
		p.Checks = append(p.Checks, chk)
	}
	if hs := c.HTTPService; hs != nil {
		for _, chk := range hs.Checks {
			add(withType(chk, CheckHTTP), orDefault(hs.InternalPort))
		}
	}
	for _, s := range c.Services {
		for _, chk := range s.HTTPChecks {
			add(withType(chk, CheckHTTP), orDefault(s.InternalPort))
		}
		for _, chk := range s.TCPChecks {
			add(withType(chk, CheckTCP), orDefault(s.InternalPort))
		}
	}
	names := slices.Collect(maps.Keys(c.Checks))
	sort.Strings(names)
	for _, name := range names {
		chk := c.Checks[name]
		if chk.Name == "" {
			chk.Name = name
		}
		add(chk, port)
	}
	return p, nil
}

func orDefault(port int) int {
	if port == 0 {
		return DefaultPort
	}
	return port
}

func withType(c Check, typ string) Check {
	if c.Type == "" {
		c.Type = typ
	}
	return c
}
