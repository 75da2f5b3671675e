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
	// Spec is the machine to run (of the default process group when there
	// are several): App, Image (from build.image; empty when the config
	// builds from source, so set it before deploying), Cmd (the group's
	// command, else experimental.cmd), Entrypoint (experimental.entrypoint), Env, Port (the internal port of the
	// group's http_service or first tcp service; 0 with NoService when it
	// has none), Protocol (tcp for a [[services]] entry without an http handler,
	// else http), Ports (the other ports its checks probe), StopSignal
	// (kill_signal) and StopTimeout (kill_timeout, else experimental.kill_timeout)
	// and Restart (the group's [[restart]], see Config.RestartPolicy).
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
	// Checks are the checks of Spec's group: the http checks of its
	// http_service and the http and tcp checks of its services, on the
	// service's internal port, then its top-level checks (sorted by name) on
	// their own port, or the group's http_service port when they set none.
	Checks []Check
	// Concurrency is the limits of Spec's group's http_service (or first
	// service); nil when unset. The proxy enforces them when given them
	// (proxy.Options.Concurrency or SetConcurrency; cutover serve does).
	Concurrency *Concurrency `json:",omitempty"`
	// NoAutoRollback is set by experimental.auto_rollback = false.
	NoAutoRollback bool `json:",omitempty"`
	// Groups is one entry per process group of [processes], sorted by name;
	// nil when the config has none (one group, Spec). Spec is the default
	// group's ("app" when present, else the first).
	Groups []Group `json:",omitempty"`
	// Warnings say what of the config is read but not acted on (unknown
	// keys, script checks, machine sizes, ...), the loader's first.
	Warnings []string
}

// SetImage sets the image of Spec and of every group's spec.
func (p *Plan) SetImage(image string) {
	p.Spec.Image = image
	for i := range p.Groups {
		p.Groups[i].Spec.Image = image
	}
}

// Group is one process group of a Plan.
type Group struct {
	Name string
	// Spec is as Plan.Spec, for this group, labelled deploy.LabelGroup.
	Spec deploy.MachineSpec
	// Checks are the group's checks, as Plan.Checks.
	Checks []Check `json:",omitempty"`
	// Concurrency is the limits of the group's http_service or first service.
	Concurrency *Concurrency `json:",omitempty"`
	// VM is the [[vm]] that applies to the group, nil when none; it is not
	// acted on (the backend sizes machines).
	VM *VM `json:",omitempty"`
	// Count is the group's number of machines; 0 keeps the group's current
	// count (at least one), as fly does when fly.toml sets none.
	Count int `json:",omitempty"`
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
	p.Warnings = append(p.Warnings, c.Warnings...)
	if e := c.Experimental; e != nil && e.AutoRollback != nil && !*e.AutoRollback {
		p.NoAutoRollback = true
	}

	names := c.groupNames()
	def := c.defaultGroup()
	var errs []*Error
	for _, name := range names {
		g, gerrs := c.group(name, def, &p.Warnings)
		errs = append(errs, gerrs...)
		if name == def {
			p.Spec, p.Checks, p.Concurrency = g.Spec, g.Checks, g.Concurrency
		}
		if len(c.Processes) > 0 {
			p.Groups = append(p.Groups, g)
		}
	}
	if len(errs) > 0 {
		return Plan{}, joinErrors(errs)
	}
	p.Warnings = append(p.Warnings, c.planWarnings()...)
	return p, nil
}

// groupNames lists the process groups, sorted; ["app"] without [processes].
func (c *Config) groupNames() []string {
	if len(c.Processes) == 0 {
		return []string{"app"}
	}
	names := slices.Collect(maps.Keys(c.Processes))
	sort.Strings(names)
	return names
}

// defaultGroup is the group that sections naming no processes apply to, as
// flyctl picks it: "app" when there is one, else the first by name.
func (c *Config) defaultGroup() string {
	names := c.groupNames()
	if slices.Contains(names, "app") {
		return "app"
	}
	return names[0]
}

// hasGroup reports whether the app has process group name: one of
// [processes], or DefaultProcessGroup when there are none.
func (c *Config) hasGroup(name string) bool {
	if len(c.Processes) == 0 {
		return name == DefaultProcessGroup
	}
	_, ok := c.Processes[name]
	return ok
}

// inGroup reports whether a section with processes applies to group.
func inGroup(processes []string, group, def string) bool {
	if len(processes) == 0 {
		return group == def
	}
	return slices.Contains(processes, group)
}

// group builds one process group's spec and checks, as flyctl flattens a
// config for one group.
func (c *Config) group(name, def string, warnings *[]string) (Group, []*Error) {
	g := Group{Name: name}
	var errs []*Error
	cmd, _ := SplitCommand(c.Processes[name]) // validated
	if len(cmd) == 0 && c.Experimental != nil {
		cmd = slices.Clone(c.Experimental.Cmd)
	}
	port, protocol := 0, ""
	hs := c.HTTPService
	if hs != nil && !inGroup(hs.Processes, name, def) {
		hs = nil
	}
	if hs != nil {
		port, protocol = orDefault(hs.InternalPort), deploy.ProtocolHTTP
		g.Concurrency = hs.Concurrency
	}
	add := func(chk Check, defaultPort int) {
		if chk.Type == CheckScript {
			*warnings = append(*warnings, fmt.Sprintf("check %s: script checks are not supported; skipped", chk.Name))
			return
		}
		if chk.Port == 0 {
			chk.Port = defaultPort
		}
		chk.Headers = maps.Clone(chk.Headers)
		g.Checks = append(g.Checks, chk)
	}
	if hs != nil {
		for _, chk := range hs.Checks {
			add(withType(chk, CheckHTTP), port)
		}
	}
	for _, s := range c.Services {
		if !inGroup(s.Processes, name, def) {
			continue
		}
		if port == 0 && (s.Protocol == "" || s.Protocol == "tcp") {
			port, protocol = orDefault(s.InternalPort), deploy.ProtocolTCP
			for _, sp := range s.Ports {
				if slices.Contains(sp.Handlers, "http") {
					protocol = deploy.ProtocolHTTP // the edge speaks HTTP to the app
				}
			}
			if g.Concurrency == nil {
				g.Concurrency = s.Concurrency
			}
		}
		for _, chk := range s.HTTPChecks {
			add(withType(chk, CheckHTTP), orDefault(s.InternalPort))
		}
		for _, chk := range s.TCPChecks {
			add(withType(chk, CheckTCP), orDefault(s.InternalPort))
		}
	}
	checkNames := slices.Collect(maps.Keys(c.Checks))
	sort.Strings(checkNames)
	for _, cn := range checkNames {
		chk := c.Checks[cn]
		if !inGroup(chk.Processes, name, def) {
			continue
		}
		if chk.Name == "" {
			chk.Name = cn
		}
		if chk.Port == 0 && chk.Type != CheckScript {
			if hs == nil {
				errs = append(errs, &Error{Key: join("checks", cn), Err: fmt.Errorf(
					"Check '%s' for process group '%s' has no port set and the group has no http_service to take it from", cn, name)})
				continue
			}
			chk.Port = orDefault(hs.InternalPort)
		}
		add(chk, 0)
	}
	var extra []int
	for _, chk := range g.Checks {
		if chk.Port != port && !slices.Contains(extra, chk.Port) {
			extra = append(extra, chk.Port)
		}
	}
	sort.Ints(extra)
	g.Spec = deploy.MachineSpec{
		App:         c.App,
		Image:       c.Build.Image,
		Cmd:         cmd,
		Entrypoint:  c.entrypoint(),
		Env:         maps.Clone(c.Env),
		Port:        port,
		Protocol:    protocol,
		Ports:       extra,
		NoService:   port == 0,
		StopSignal:  c.KillSignal,
		StopTimeout: c.KillTimeout,
		Restart:     c.RestartPolicy(name),
	}
	if c.PrimaryRegion != "" {
		// Backends with regions place by it (backend/swarm: node label "region").
		g.Spec.Labels = map[string]string{deploy.LabelRegion: c.PrimaryRegion}
	}
	if len(c.Processes) > 0 {
		if g.Spec.Labels == nil {
			g.Spec.Labels = map[string]string{}
		}
		g.Spec.Labels[deploy.LabelGroup] = name
		if g.Spec.Env == nil {
			g.Spec.Env = map[string]string{}
		}
		g.Spec.Env["FLY_PROCESS_GROUP"] = name
	}
	// [[vm]]: the most specific entry, as flyctl's ComputeForGroup picks it.
	for i := range c.VM {
		v := &c.VM[i]
		if len(v.Processes) == 0 && g.VM == nil || len(v.Processes) > 0 && inGroup(v.Processes, name, def) {
			g.VM = v
		}
	}
	return g, errs
}

// planWarnings lists what of the config a deploy will not act on.
func (c *Config) planWarnings() []string {
	var w []string
	for _, k := range c.Unknown {
		w = append(w, k+": not read by cutover; ignored")
	}
	if c.Build.Image == "" {
		w = append(w, "build.image is empty: cutover does not build images; set the image to deploy")
	} else if c.Build.Dockerfile != "" || c.Build.Builder != "" || len(c.Build.Buildpacks) > 0 || len(c.Build.Args) > 0 {
		w = append(w, "build: cutover does not build images; only build.image is used")
	}
	if c.Deploy.MaxUnavailable != 0 && c.Deploy.Strategy != "" && c.Deploy.Strategy != StrategyRolling {
		w = append(w, fmt.Sprintf("deploy.max_unavailable: used by the rolling strategy only, not %s", c.Deploy.Strategy))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Checks)) {
		for _, g := range c.Checks[name].Processes {
			if !c.hasGroup(g) {
				w = append(w, fmt.Sprintf("%s: process group %q does not exist; the check does not run there", join("checks", name), g))
			}
		}
	}
	restart := false
	for _, chk := range c.allChecks() {
		restart = restart || chk.RestartLimit > 0
	}
	if restart {
		w = append(w, "restart_limit: a failing check does not restart a machine here; kept in the plan's checks")
	}
	if e := c.Experimental; e != nil {
		if len(e.Exec) > 0 {
			w = append(w, "experimental.exec: not supported; ignored")
		}
	}
	def := c.defaultGroup()
	if len(c.Processes) > 0 {
		if hs := c.HTTPService; hs != nil && len(hs.Processes) == 0 {
			w = append(w, fmt.Sprintf("http_service has no processes set but the app has %d process groups (flyctl's validation rejects this); it serves the default group %q", len(c.Processes), def))
		}
		for i, s := range c.Services {
			if len(s.Processes) == 0 {
				w = append(w, fmt.Sprintf("%s has no processes set but the app has %d process groups (flyctl's validation rejects this); it serves the default group %q", index("services", i), len(c.Processes), def))
			}
		}
	}
	if hs := c.HTTPService; hs != nil {
		if hs.ForceHTTPS {
			w = append(w, "http_service.force_https: the proxy does not redirect to https; ignored")
		}
	}
	for i, s := range c.Services {
		base := index("services", i)
		if s.Protocol == "udp" {
			w = append(w, base+": udp services are not routed; ignored")
		}
		if len(s.Ports) > 0 {
			w = append(w, base+".ports: public ports and handlers are the proxy's own configuration; ignored")
		}
	}
	if len(c.VM) > 0 {
		w = append(w, "vm: machine sizes are the backend's; not applied")
	}
	return w
}

// entrypoint is experimental.entrypoint, nil when unset.
func (c *Config) entrypoint() []string {
	if c.Experimental == nil {
		return nil
	}
	return slices.Clone(c.Experimental.Entrypoint)
}

// allChecks returns every check of the config.
func (c *Config) allChecks() []Check {
	var out []Check
	if c.HTTPService != nil {
		out = append(out, c.HTTPService.Checks...)
	}
	for _, s := range c.Services {
		out = append(out, s.HTTPChecks...)
		out = append(out, s.TCPChecks...)
	}
	for _, chk := range c.Checks {
		out = append(out, chk)
	}
	return out
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
