package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

var signals = []string{"SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP", "SIGHUP"}

// validate returns one error per wrong value, without positions.
func (c *Config) validate() []*Error {
	var errs []*Error
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Err: fmt.Errorf(format, args...)})
	}
	nonNegative := func(key string, d time.Duration) {
		if d < 0 {
			add(key, "duration %v must not be negative", d)
		}
	}
	port := func(key string, p int) {
		if p != 0 && (p < 1 || p > 65535) {
			add(key, "port %d out of range (want 1 to 65535)", p)
		}
	}

	if c.KillSignal != "" && !slices.Contains(signals, c.KillSignal) {
		add("kill_signal", "unknown signal %q (want one of %s)", c.KillSignal, strings.Join(signals, ", "))
	}
	nonNegative("kill_timeout", c.KillTimeout)

	switch c.Deploy.Strategy {
	case "", StrategyRolling, StrategyBlueGreen, StrategyCanary, StrategyImmediate:
	default:
		add("deploy.strategy", "unknown strategy %q (want rolling, bluegreen, canary or immediate)", c.Deploy.Strategy)
	}
	if _, err := SplitCommand(c.Deploy.ReleaseCommand); err != nil {
		add("deploy.release_command", "%v", err)
	}
	nonNegative("deploy.release_command_timeout", c.Deploy.ReleaseCommandTimeout)
	nonNegative("deploy.wait_timeout", c.Deploy.WaitTimeout)
	if m := c.Deploy.MaxUnavailable; math.IsNaN(m) || math.IsInf(m, 0) || m < 0 {
		add("deploy.max_unavailable", "max_unavailable %v must be a number greater than 0", m)
	} else if m > 1 && m != math.Trunc(m) {
		add("deploy.max_unavailable", "max_unavailable %v must be a whole number of machines, or a fraction below 1", m)
	}

	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			add(join("env", k), "invalid environment variable name %q", k)
		}
	}
	for name, cmd := range c.Processes {
		key := join("processes", name)
		if name == "" {
			add(key, "empty process group name")
		}
		// An empty command runs the image's own, as on fly.
		if _, err := SplitCommand(cmd); err != nil {
			add(key, "%v", err)
		}
	}

	check := func(key string, chk Check, kind string) {
		for _, e := range chk.validate(kind) {
			e.Key = key + "." + e.Key
			errs = append(errs, e)
		}
	}
	checks := func(base string, list []Check, kind string) {
		for i, chk := range list {
			key := index(base, i)
			if strings.HasPrefix(chk.Name, base) {
				key = chk.Name // the path it was decoded from
			}
			check(key, chk, kind)
		}
	}
	// As flyctl validates them: a service names only groups that exist. (A
	// service naming none with [processes] set, which flyctl's validation
	// also rejects, is a Plan warning: it goes to the default group.)
	groups := func(key string, procs []string) {
		for _, p := range procs {
			if !c.hasGroup(p) {
				add(key+".processes", "Service specifies '%s' as one of its processes, but no processes are defined with that name; "+
					"update fly.toml [processes] to add '%s' process or remove it from service's processes list", p, p)
			}
		}
	}
	if hs := c.HTTPService; hs != nil {
		groups("http_service", hs.Processes)
	}
	for i, s := range c.Services {
		groups(index("services", i), s.Processes)
	}
	if hs := c.HTTPService; hs != nil {
		port("http_service.internal_port", hs.InternalPort)
		checks("http_service.checks", hs.Checks, CheckHTTP)
	}
	for i, s := range c.Services {
		base := index("services", i)
		port(base+".internal_port", s.InternalPort)
		switch s.Protocol {
		case "", "tcp", "udp":
		default:
			add(base+".protocol", "unknown protocol %q (want tcp or udp)", s.Protocol)
		}
		for j, p := range s.Ports {
			port(index(base+".ports", j)+".port", p.Port)
		}
		checks(base+".http_checks", s.HTTPChecks, CheckHTTP)
		checks(base+".tcp_checks", s.TCPChecks, CheckTCP)
	}
	for name, chk := range c.Checks {
		key := join("checks", name)
		if chk.Type == "" {
			add(key, "missing type (want http or tcp)")
			continue
		}
		check(key, chk, "")
	}
	return errs
}

// validate checks one check; keys in the errors are relative to the check.
// kind is the type its table implies, "" for a top-level check.
func (c Check) validate(kind string) []*Error {
	var errs []*Error
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Err: fmt.Errorf(format, args...)})
	}
	typ := c.Type
	if typ == "" {
		typ = kind
	}
	switch typ {
	case CheckHTTP, CheckTCP:
	case CheckScript:
		if kind != "" {
			add("type", "script checks are only allowed in [checks]")
		}
	default:
		add("type", "unknown check type %q (want http or tcp)", c.Type)
	}
	if c.Port != 0 && (c.Port < 1 || c.Port > 65535) {
		add("port", "port %d out of range (want 1 to 65535)", c.Port)
	}
	if c.Method != "" && !isToken(c.Method) {
		add("method", "invalid HTTP method %q", c.Method)
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		add("path", "path %q must start with /", c.Path)
	}
	switch c.Protocol {
	case "", "http", "https":
	default:
		add("protocol", "unknown protocol %q (want http or https)", c.Protocol)
	}
	for name, v := range c.Headers {
		if !isToken(name) {
			add(join("headers", name), "invalid header name %q", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			add(join("headers", name), "header value must not contain CR, LF or NUL")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", c.Interval}, {"timeout", c.Timeout}, {"grace_period", c.GracePeriod}} {
		if d.v < 0 {
			add(d.key, "duration %v must not be negative", d.v)
		}
	}
	if c.RestartLimit < 0 {
		add("restart_limit", "restart_limit %d must not be negative", c.RestartLimit)
	}
	return errs
}

// isToken reports whether s is an HTTP token (RFC 9110), as methods and
// header names must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// SplitCommand splits a command line such as a release_command into
// arguments: on spaces and tabs, keeping text in single quotes as it is, and
// in double quotes with \" and \\ escapes; outside quotes a backslash escapes
// the next character. An empty line gives no arguments.
func SplitCommand(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			inArg = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated ' quote in command")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inArg = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
					cur.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					closed = true
					break
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("unterminated \" quote in command")
			}
		case c == '\\':
			inArg = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
