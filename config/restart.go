package config

import (
	"slices"
	"strings"

	deploy "github.com/cutover/deploy"
)

// Restart policies of [[restart]], as fly names them.
const (
	RestartAlways    = deploy.RestartAlways    // "always"
	RestartOnFailure = deploy.RestartOnFailure // "on-failure"
	RestartNever     = deploy.RestartNever     // "never"
)

// DefaultProcessGroup is the process group of an app that defines no
// [processes], as on fly.
const DefaultProcessGroup = "app"

// Restart is one [[restart]] section: what the platform does when a machine's
// process exits on its own.
type Restart struct {
	// Policy is always, on-failure or never; empty means on-failure.
	Policy string `json:"policy,omitempty"`
	// MaxRetries is retries: how many restarts on-failure allows; 0 means
	// deploy.DefaultRestartRetries (10), as on fly.
	MaxRetries int `json:"retries,omitempty"`
	// Processes are the process groups it applies to; empty means all.
	Processes []string `json:"processes,omitempty"`
}

// decodeRestarts decodes the [[restart]] sections.
func (d *decoder) decodeRestarts(top *table) []Restart {
	var out []Restart
	for _, t := range top.tables("restart") {
		var r Restart
		t.str("policy", &r.Policy)
		r.Policy = strings.ToLower(strings.TrimSpace(r.Policy))
		switch r.Policy {
		case "", RestartAlways, RestartOnFailure, RestartNever:
		default:
			d.errorf(join(t.path, "policy"), "want always, on-failure or never, not %q", r.Policy)
		}
		t.integer("retries", &r.MaxRetries)
		if r.MaxRetries < 0 {
			d.errorf(join(t.path, "retries"), "want 0 or more, not %d", r.MaxRetries)
		}
		t.strs("processes", &r.Processes)
		t.done()
		out = append(out, r)
	}
	return out
}

// RestartPolicy returns the restart policy of the machines of process group
// group: the [[restart]] section that names the group, else the one that names
// no group, else the zero policy (on-failure with 10 retries, fly's default for
// deployed machines).
func (c *Config) RestartPolicy(group string) deploy.RestartPolicy {
	var general *Restart
	for i, r := range c.Restart {
		if slices.Contains(r.Processes, group) {
			return deploy.RestartPolicy{Policy: r.Policy, MaxRetries: r.MaxRetries}
		}
		if len(r.Processes) == 0 && general == nil {
			general = &c.Restart[i]
		}
	}
	if general != nil {
		return deploy.RestartPolicy{Policy: general.Policy, MaxRetries: general.MaxRetries}
	}
	return deploy.RestartPolicy{}
}
