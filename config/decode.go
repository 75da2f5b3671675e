package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder turns the TOML parser's map into a Config, one key at a time, so
// that every error and every unknown key has its full path (with array
// indices), which the locator maps back to a line and column.
type decoder struct {
	errs    []*Error
	unknown []string
}

func (d *decoder) errorf(key, format string, args ...any) {
	d.errs = append(d.errs, &Error{Key: key, Err: fmt.Errorf(format, args...)})
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// seg formats one key segment as TOML would write it.
func seg(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

func join(parent, key string) string {
	if parent == "" {
		return seg(key)
	}
	return parent + "." + seg(key)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// typeName names a TOML value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// table is one TOML table being decoded; it remembers which keys were used.
type table struct {
	d    *decoder
	path string
	m    map[string]any
	used map[string]bool
}

func (d *decoder) table(path string, m map[string]any) *table {
	return &table{d: d, path: path, m: m, used: map[string]bool{}}
}

// take returns the value of key and its full path, marking it used.
func (t *table) take(key string) (any, string, bool) {
	v, ok := t.m[key]
	if ok {
		t.used[key] = true
	}
	return v, join(t.path, key), ok
}

// done records the keys never taken as unknown.
func (t *table) done() {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		if !t.used[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.d.unknown = append(t.d.unknown, join(t.path, k))
	}
}

func (t *table) str(key string, dst *string) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.errorf(p, "want a string, not a %s", typeName(v))
		return
	}
	*dst = s
}

func (t *table) boolean(key string, dst *bool) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.errorf(p, "want true or false, not a %s", typeName(v))
		return
	}
	*dst = b
}

func (t *table) integer(key string, dst *int) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	n, isInt := v.(int64)
	if !isInt {
		t.d.errorf(p, "want an integer, not a %s", typeName(v))
		return
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		t.d.errorf(p, "integer %d out of range", n)
		return
	}
	*dst = int(n)
}

// strs reads an array of strings; a single string counts as an array of one.
func (t *table) strs(key string, dst *[]string) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	switch v := v.(type) {
	case string:
		*dst = []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, isStr := e.(string)
			if !isStr {
				t.d.errorf(index(p, i), "want a string, not a %s", typeName(e))
				return
			}
			out = append(out, s)
		}
		*dst = out
	default:
		t.d.errorf(p, "want an array of strings, not a %s", typeName(v))
	}
}

// stringMap reads a table of scalar values as strings (numbers and booleans
// are kept as their text, as fly does for [env]).
func (t *table) stringMap(key string) map[string]string {
	v, p, ok := t.take(key)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.d.errorf(p, "want a table of names and values, not a %s", typeName(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, err := scalarText(e)
		if err != nil {
			t.d.errorf(join(p, k), "%v", err)
			continue
		}
		out[k] = s
	}
	return out
}

func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("want a string, not a %s", typeName(v))
}

// duration reads a duration written as a string ("5s", "1m30s"; "" means
// unset) or as a bare integer counted in unit.
func (t *table) duration(key string, unit time.Duration, dst *time.Duration) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	d, err := parseDuration(v, unit)
	if err != nil {
		t.d.errorf(p, "%v", err)
		return
	}
	*dst = d
}

func unitName(unit time.Duration) string {
	if unit == time.Millisecond {
		return "milliseconds"
	}
	return "seconds"
}

func parseDuration(v any, unit time.Duration) (time.Duration, error) {
	switch v := v.(type) {
	case string:
		s := strings.TrimSpace(v)
		if s == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want a duration such as \"5s\" or \"1m30s\", or an integer number of %s)", v, unitName(unit))
		}
		return d, nil
	case int64:
		if v > int64(math.MaxInt64/unit) || v < int64(math.MinInt64/unit) {
			return 0, fmt.Errorf("duration %d %s is too large", v, unitName(unit))
		}
		return time.Duration(v) * unit, nil
	}
	return 0, fmt.Errorf("want a duration such as \"5s\" or an integer number of %s, not a %s", unitName(unit), typeName(v))
}

// port reads a port written as an integer or a string of digits.
func (t *table) port(key string, dst *int) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	n, err := parsePort(v)
	if err != nil {
		t.d.errorf(p, "%v", err)
		return
	}
	*dst = n
}

func parsePort(v any) (int, error) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case string:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid port %q (want a number from 1 to 65535)", v)
		}
	default:
		return 0, fmt.Errorf("want a port number, not a %s", typeName(v))
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range (want 1 to 65535)", n)
	}
	return int(n), nil
}

// sub returns the table at key, or nil when it is absent or not a table
// (which is reported).
func (t *table) sub(key string) *table {
	v, p, ok := t.take(key)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.d.errorf(p, "want a table, not a %s", typeName(v))
		return nil
	}
	return t.d.table(p, m)
}

// tables returns the tables of an array of tables at key. A single table is
// taken as an array of one, and an empty array is fine.
func (t *table) tables(key string) []*table {
	v, p, ok := t.take(key)
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		return []*table{t.d.table(p, v)}
	case []map[string]any:
		out := make([]*table, len(v))
		for i, m := range v {
			out[i] = t.d.table(index(p, i), m)
		}
		return out
	case []any:
		out := make([]*table, 0, len(v))
		for i, e := range v {
			m, isMap := e.(map[string]any)
			if !isMap {
				t.d.errorf(index(p, i), "want a table, not a %s", typeName(e))
				return nil
			}
			out = append(out, t.d.table(index(p, i), m))
		}
		return out
	}
	t.d.errorf(p, "want an array of tables, not a %s", typeName(v))
	return nil
}

func (d *decoder) decode(raw map[string]any) *Config {
	c := &Config{}
	top := d.table("", raw)
	top.str("app", &c.App)
	top.str("primary_region", &c.PrimaryRegion)
	top.str("kill_signal", &c.KillSignal)
	c.KillSignal = strings.ToUpper(strings.TrimSpace(c.KillSignal))
	top.duration("kill_timeout", time.Second, &c.KillTimeout)

	if b := top.sub("build"); b != nil {
		b.str("image", &c.Build.Image)
		b.str("dockerfile", &c.Build.Dockerfile)
		b.str("builder", &c.Build.Builder)
		b.strs("buildpacks", &c.Build.Buildpacks)
		c.Build.Args = b.stringMap("args")
		b.done()
	}

	if t := top.sub("deploy"); t != nil {
		t.str("strategy", &c.Deploy.Strategy)
		t.str("release_command", &c.Deploy.ReleaseCommand)
		t.duration("release_command_timeout", time.Second, &c.Deploy.ReleaseCommandTimeout)
		t.duration("wait_timeout", time.Second, &c.Deploy.WaitTimeout)
		d.maxUnavailable(t, &c.Deploy.MaxUnavailable)
		t.done()
	}

	c.Env = top.stringMap("env")

	if t := top.sub("http_service"); t != nil {
		hs := &HTTPService{}
		t.port("internal_port", &hs.InternalPort)
		t.boolean("force_https", &hs.ForceHTTPS)
		t.strs("processes", &hs.Processes)
		for _, ct := range t.tables("checks") {
			hs.Checks = append(hs.Checks, d.check(ct, CheckHTTP))
		}
		t.done()
		c.HTTPService = hs
	}

	for _, st := range top.tables("services") {
		var s Service
		st.port("internal_port", &s.InternalPort)
		st.str("protocol", &s.Protocol)
		s.Protocol = strings.ToLower(s.Protocol)
		st.strs("processes", &s.Processes)
		for _, pt := range st.tables("ports") {
			var sp ServicePort
			pt.port("port", &sp.Port)
			pt.strs("handlers", &sp.Handlers)
			pt.boolean("force_https", &sp.ForceHTTPS)
			pt.done()
			s.Ports = append(s.Ports, sp)
		}
		for _, ct := range st.tables("http_checks") {
			s.HTTPChecks = append(s.HTTPChecks, d.check(ct, CheckHTTP))
		}
		for _, ct := range st.tables("tcp_checks") {
			s.TCPChecks = append(s.TCPChecks, d.check(ct, CheckTCP))
		}
		st.done()
		c.Services = append(c.Services, s)
	}

	if t := top.sub("checks"); t != nil {
		names := make([]string, 0, len(t.m))
		for k := range t.m {
			names = append(names, k)
		}
		sort.Strings(names)
		c.Checks = map[string]Check{}
		for _, name := range names {
			ct := t.sub(name)
			if ct == nil {
				continue
			}
			chk := d.check(ct, "")
			chk.Name = name
			c.Checks[name] = chk
		}
		t.done()
	}

	if v, p, ok := top.take("processes"); ok {
		switch v := v.(type) {
		case map[string]any:
			c.Processes = make(map[string]string, len(v))
			for k, e := range v {
				s, isStr := e.(string)
				if !isStr {
					d.errorf(join(p, k), "want a command line string, not a %s", typeName(e))
					continue
				}
				c.Processes[k] = s
			}
		case []any:
			if len(v) > 0 {
				d.errorf(p, "want a table of process name = command (an empty array is allowed), not a non-empty array")
			}
		default:
			d.errorf(p, "want a table of process name = command, not a %s", typeName(v))
		}
	}
	c.Restart = d.decodeRestarts(top) // config/restart.go
	top.done()
	return c
}

func (d *decoder) maxUnavailable(t *table, dst *float64) {
	v, p, ok := t.take("max_unavailable")
	if !ok {
		return
	}
	switch v := v.(type) {
	case int64:
		if v <= 0 {
			d.errorf(p, "max_unavailable %d must be greater than 0", v)
			return
		}
		*dst = float64(v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			d.errorf(p, "max_unavailable %v must be a number greater than 0", v)
			return
		}
		*dst = v
	default:
		d.errorf(p, "want a number of machines or a fraction such as 0.33, not a %s", typeName(v))
	}
}

// check decodes one check. kind is its type when the table it sits in says
// (http_checks, tcp_checks, http_service.checks); "" reads the type key.
func (d *decoder) check(t *table, kind string) Check {
	c := Check{Name: t.path, Type: kind}
	if kind == "" {
		t.str("type", &c.Type)
		c.Type = strings.ToLower(strings.TrimSpace(c.Type))
	}
	t.port("port", &c.Port)
	t.str("method", &c.Method)
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	t.str("path", &c.Path)
	t.str("protocol", &c.Protocol)
	c.Protocol = strings.ToLower(strings.TrimSpace(c.Protocol))
	t.boolean("tls_skip_verify", &c.TLSSkipVerify)
	c.Headers = d.headers(t)
	t.duration("interval", time.Millisecond, &c.Interval)
	t.duration("timeout", time.Millisecond, &c.Timeout)
	t.duration("grace_period", time.Millisecond, &c.GracePeriod)
	t.integer("restart_limit", &c.RestartLimit)
	t.done()
	return c
}

// headers reads check headers as a table (name = value) or as an array of
// {name, value} tables; both may be empty.
func (d *decoder) headers(t *table) map[string]string {
	v, p, ok := t.take("headers")
	if !ok {
		return nil
	}
	out := map[string]string{}
	var items []any
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			s, err := scalarText(e)
			if err != nil {
				d.errorf(join(p, k), "header value: %v", err)
				continue
			}
			out[k] = s
		}
		return out
	case []map[string]any:
		for _, m := range v {
			items = append(items, m)
		}
	case []any:
		items = v
	default:
		d.errorf(p, "want a table of header names and values or an array of {name, value} tables, not a %s", typeName(v))
		return nil
	}
	for i, e := range items {
		ip := index(p, i)
		m, isMap := e.(map[string]any)
		if !isMap {
			d.errorf(ip, "want a {name, value} table, not a %s", typeName(e))
			continue
		}
		name, nameOK := m["name"].(string)
		if !nameOK || name == "" {
			d.errorf(ip, "header needs a name string")
			continue
		}
		val, err := scalarText(m["value"])
		if _, has := m["value"]; !has {
			err = errors.New("header needs a value")
		}
		if err != nil {
			d.errorf(join(ip, "value"), "%v", err)
			continue
		}
		out[name] = val
		for k := range m {
			if k != "name" && k != "value" {
				d.unknown = append(d.unknown, join(ip, k))
			}
		}
	}
	return out
}
