package config

import (
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
	errs     []*Error
	unknown  []string
	warnings []*Error // what was read but is not acted on, or read differently than written
}

func (d *decoder) errorf(key, format string, args ...any) {
	d.errs = append(d.errs, &Error{Key: key, Err: fmt.Errorf(format, args...)})
}

func (d *decoder) warnf(key, format string, args ...any) {
	d.warnings = append(d.warnings, &Error{Key: key, Err: fmt.Errorf(format, args...)})
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

// aType names a TOML value's type with its article: "an integer", "a string".
func aType(v any) string {
	n := typeName(v)
	switch n[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + n
	}
	return "a " + n
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
		t.d.errorf(p, "want a string, not %s", aType(v))
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
		t.d.errorf(p, "want true or false, not %s", aType(v))
		return
	}
	*dst = b
}

func (t *table) integer(key string, dst *int) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	n, err := wholeNumber(v)
	if err != nil {
		t.d.errorf(p, "%v", err)
		return
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		t.d.errorf(p, "integer %d out of range", n)
		return
	}
	*dst = int(n)
}

// wholeNumber reads an integer, or a float that is a whole number (8080.0),
// which flyctl takes as the integer it is: its loader goes through JSON,
// where 8080.0 and 8080 are the same number.
func wholeNumber(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case float64:
		if v != math.Trunc(v) || math.IsInf(v, 0) || v < math.MinInt64 || v >= math.MaxInt64 {
			return 0, fmt.Errorf("want an integer, not the number %v (flyctl: cannot unmarshal number %v into an int)", v, v)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("want an integer, not %s", aType(v))
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
				t.d.errorf(index(p, i), "want a string, not %s", aType(e))
				return
			}
			out = append(out, s)
		}
		*dst = out
	default:
		t.d.errorf(p, "want an array of strings, not %s", aType(v))
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
		t.d.errorf(p, "want a table of names and values, not %s", aType(v))
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
	return "", fmt.Errorf("want a string, not %s", aType(v))
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
	if f, isFloat := v.(float64); isFloat && f != math.Trunc(f) {
		t.d.warnf(p, "%v %s read as %v: flyctl drops the fraction", f, unitName(unit), d)
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
	case float64:
		// flyctl truncates a float to a whole number of units (1.5 seconds is 1s).
		if math.IsNaN(v) || v > float64(math.MaxInt64/unit) || v < float64(math.MinInt64/unit) {
			return 0, fmt.Errorf("duration %v %s is out of range", v, unitName(unit))
		}
		return time.Duration(int64(v)) * unit, nil
	}
	return 0, fmt.Errorf("want a duration such as \"5s\" or an integer number of %s, not %s", unitName(unit), aType(v))
}

// port reads a port written as an integer, a whole float or a string of digits.
func (t *table) port(key string, dst *int) { t.portAs(key, dst, false) }

// portAs is port; with truncate a fractional float loses its fraction (with
// a warning), as flyctl does for a service's internal_port and ports.
func (t *table) portAs(key string, dst *int, truncate bool) {
	v, p, ok := t.take(key)
	if !ok {
		return
	}
	if f, isFloat := v.(float64); isFloat && truncate && f != math.Trunc(f) && !math.IsNaN(f) && !math.IsInf(f, 0) {
		t.d.warnf(p, "port %v read as %d: flyctl drops the fraction", f, int64(f))
		v = math.Trunc(f)
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
	case float64:
		var err error
		if n, err = wholeNumber(v); err != nil {
			return 0, err
		}
	case string:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid port %q (want a number from 1 to 65535)", v)
		}
	default:
		return 0, fmt.Errorf("want a port number, not %s", aType(v))
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
		t.d.errorf(p, "want a table, not %s", aType(v))
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
	if m, isMap := v.(map[string]any); isMap {
		return []*table{t.d.table(p, m)}
	}
	items, isArray := arrayItems(v)
	if !isArray {
		t.d.errorf(p, "want an array of tables, not %s", aType(v))
		return nil
	}
	out := make([]*table, 0, len(items))
	for i, e := range items {
		m, isMap := e.(map[string]any)
		if !isMap {
			t.d.errorf(index(p, i), "want a table, not %s", aType(e))
			return nil
		}
		out = append(out, t.d.table(index(p, i), m))
	}
	return out
}

// arrayItems returns the items of a TOML array, which the parser gives as a
// []map[string]any when every item is a table and as a []any otherwise;
// false when v is no array.
func arrayItems(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []map[string]any:
		items := make([]any, len(v))
		for i, m := range v {
			items[i] = m
		}
		return items, true
	}
	return nil, false
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

	c.Env = d.env(top)

	if t := top.sub("http_service"); t != nil {
		hs := &HTTPService{}
		t.port("internal_port", &hs.InternalPort)
		t.boolean("force_https", &hs.ForceHTTPS)
		t.strs("processes", &hs.Processes)
		if ct := t.sub("concurrency"); ct != nil {
			hs.Concurrency = d.concurrency(ct)
		}
		for _, ct := range t.tables("checks") {
			hs.Checks = append(hs.Checks, d.check(ct, CheckHTTP))
		}
		t.done()
		c.HTTPService = hs
	}

	for _, st := range top.tables("services") {
		if len(st.m) == 0 {
			continue // flyctl drops a [[services]] with no key
		}
		var s Service
		st.portAs("internal_port", &s.InternalPort, true)
		st.str("protocol", &s.Protocol)
		s.Protocol = strings.ToLower(s.Protocol)
		st.strs("processes", &s.Processes)
		s.Concurrency = d.serviceConcurrency(st)
		for _, pt := range st.tables("ports") {
			var sp ServicePort
			pt.portAs("port", &sp.Port, true)
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

	c.Checks = d.topChecks(top)
	c.Processes = d.processes(top)
	c.Experimental = d.experimental(top)
	if c.Experimental != nil && c.Experimental.KillTimeout != 0 {
		if _, set := raw["kill_timeout"]; !set {
			c.KillTimeout = c.Experimental.KillTimeout // flyctl uses it when the top-level key is absent
		} else {
			d.warnf("experimental.kill_timeout", "ignored: the top-level kill_timeout is set")
		}
	}
	for _, key := range []string{"vm", "compute", "computes"} {
		for _, vt := range top.tables(key) {
			c.VM = append(c.VM, d.vm(vt))
		}
	}
	c.Restart = d.decodeRestarts(top) // config/restart.go
	top.done()
	return c
}

// env reads [env] as flyctl does: a table, or an array of tables merged in
// order ([[env]]), or an empty array. Values that are not strings are kept
// as Go formats them (%v), as flyctl does.
func (d *decoder) env(top *table) map[string]string {
	v, p, ok := top.take("env")
	if !ok {
		return nil
	}
	out := map[string]string{}
	var add func(p string, v any) bool
	add = func(p string, v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				switch e := e.(type) {
				case string:
					out[k] = e
				case []any, []map[string]any, map[string]any:
					d.warnf(join(p, k), "%s as a value: flyctl sets it to the text %q", aType(e), fmt.Sprintf("%v", e))
					out[k] = fmt.Sprintf("%v", e)
				default:
					out[k] = fmt.Sprintf("%v", e)
				}
			}
		case []any, []map[string]any:
			items, _ := arrayItems(v)
			for i, e := range items {
				if !add(index(p, i), e) {
					return false
				}
			}
		default:
			d.errorf(p, "want a table of names and values, not %s (flyctl: Do not know how to process 'env' section of type: %T)", aType(v), v)
			return false
		}
		return true
	}
	if !add(p, v) {
		return nil
	}
	return out
}

// processes reads [processes] (name = command) or the older [[processes]]
// array of {name, command} tables, as flyctl does: an entry without a name
// is dropped, one without a command runs the image's own, and an empty array
// (or one with no named entry) means no processes.
func (d *decoder) processes(top *table) map[string]string {
	v, p, ok := top.take("processes")
	if !ok {
		return nil
	}
	var out map[string]string
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]string, len(v))
		for k, e := range v {
			s, isStr := e.(string)
			if !isStr {
				d.errorf(join(p, k), "want a command line string, not %s", aType(e))
				continue
			}
			out[k] = s
		}
		return out
	case []map[string]any, []any:
		out = d.namedValues(p, v, "command", func(ip string, e any) {
			if m, isMap := e.(map[string]any); !isMap {
				d.warnf(ip, "%s in processes: flyctl drops it", aType(e))
			} else if len(m) > 0 {
				d.warnf(ip, "a [[processes]] entry without a name: flyctl drops it")
			}
		})
	default:
		d.errorf(p, "want a table of process name = command, not %s (flyctl: Unknown processes type: %T)", aType(v), v)
		return nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// namedValues reads array (at path p; a []map[string]any or a []any) of
// {name, valueKey} tables, as in [[processes]] and headers, into a map of
// name to value: a missing value is "", other keys are unknown, and an item
// that is no table or has no name goes to bad with its path, which reports it.
func (d *decoder) namedValues(p string, array any, valueKey string, bad func(ip string, item any)) map[string]string {
	items, _ := arrayItems(array)
	out := map[string]string{}
	for i, e := range items {
		ip := index(p, i)
		m, isMap := e.(map[string]any)
		name, named := m["name"]
		if !isMap || !named {
			bad(ip, e)
			continue
		}
		val := ""
		if x, has := m[valueKey]; has {
			val = castToString(x)
		}
		out[castToString(name)] = val
		for k := range m {
			if k != "name" && k != valueKey {
				d.unknown = append(d.unknown, join(ip, k))
			}
		}
	}
	return out
}

func castToString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprintf("%v", v)
}

// topChecks reads the top-level checks: [checks.NAME] tables, or a list of
// tables with a name key ([[checks]]), or an empty array (no checks).
func (d *decoder) topChecks(top *table) map[string]Check {
	v, p, ok := top.take("checks")
	if !ok {
		return nil
	}
	out := map[string]Check{}
	one := func(path, name string, m map[string]any, named bool) {
		ct := d.table(path, m)
		if named {
			ct.used["name"] = true
		}
		chk := d.check(ct, "")
		chk.Name = name
		out[name] = chk
	}
	switch v := v.(type) {
	case map[string]any:
		t := d.table(p, v)
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			t.used[name] = true
			m, isMap := v[name].(map[string]any)
			if !isMap {
				d.errorf(join(p, name), "want a table, not %s (flyctl: 'checks' section of unknown type: %T)", aType(v[name]), v[name])
				continue
			}
			one(join(p, name), name, m, false)
		}
	case []map[string]any, []any:
		items, _ := arrayItems(v)
		for i, e := range items {
			ip := index(p, i)
			m, isMap := e.(map[string]any)
			if !isMap {
				d.errorf(ip, "want a table, not %s (flyctl: check item of unknown type: %T)", aType(e), e)
				continue
			}
			name, isStr := m["name"].(string)
			if !isStr {
				d.errorf(ip, "check item name not a string")
				continue
			}
			one(ip, name, m, true)
		}
	default:
		d.errorf(p, "want a table of checks, not %s (flyctl: 'checks' section of unknown type: %T)", aType(v), v)
		return nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// concurrency reads a {type, soft_limit, hard_limit} table.
func (d *decoder) concurrency(t *table) *Concurrency {
	c := &Concurrency{}
	t.str("type", &c.Type)
	t.integer("soft_limit", &c.SoftLimit)
	t.integer("hard_limit", &c.HardLimit)
	t.done()
	return c
}

// serviceConcurrency reads a service's concurrency: a table, or the older
// "soft,hard" string (type requests). Anything else is rejected as flyctl
// rejects it.
func (d *decoder) serviceConcurrency(st *table) *Concurrency {
	v, p, ok := st.take("concurrency")
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		return d.concurrency(d.table(p, v))
	case string:
		left, right, found := strings.Cut(v, ",")
		if !found {
			d.errorf(p, "Unknown value '%s' for concurrency limits", v)
			return nil
		}
		soft, err := strconv.Atoi(left)
		if err == nil {
			var hard int
			if hard, err = strconv.Atoi(right); err == nil {
				return &Concurrency{Type: "requests", SoftLimit: soft, HardLimit: hard}
			}
		}
		d.errorf(p, "Can not convert '%s': %v", v, err)
		return nil
	}
	d.errorf(p, "Unknown type for service concurrency: %T", v)
	return nil
}

// experimental reads [experimental]: cmd, entrypoint and exec (a string or
// an array of strings), auto_rollback and kill_timeout.
func (d *decoder) experimental(top *table) *Experimental {
	t := top.sub("experimental")
	if t == nil {
		return nil
	}
	e := &Experimental{}
	for _, k := range []struct {
		key string
		dst *[]string
	}{{"cmd", &e.Cmd}, {"entrypoint", &e.Entrypoint}, {"exec", &e.Exec}} {
		v, p, ok := t.take(k.key)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			*k.dst = []string{v}
		case []any:
			out := make([]string, 0, len(v))
			for _, x := range v {
				s, isStr := x.(string)
				if !isStr {
					d.errorf(p, "could not cast %v of type %T to string on %s", x, x, k.key)
					out = nil
					break
				}
				out = append(out, s)
			}
			*k.dst = out
		default:
			d.errorf(p, "could not cast %v of type %T to []string on %s", v, v, k.key)
		}
	}
	if _, has := t.m["auto_rollback"]; has {
		var b bool
		t.boolean("auto_rollback", &b)
		e.AutoRollback = &b
	}
	t.duration("kill_timeout", time.Second, &e.KillTimeout)
	t.done()
	return e
}

// vm reads one [[vm]] entry.
func (d *decoder) vm(t *table) VM {
	var v VM
	t.str("size", &v.Size)
	if x, _, ok := t.take("memory"); ok {
		v.Memory = castToString(x) // flyctl reads memory = 512 as "512"
	}
	t.integer("cpus", &v.CPUs)
	t.str("cpu_kind", &v.CPUKind)
	t.integer("memory_mb", &v.MemoryMB)
	t.strs("processes", &v.Processes)
	t.done()
	return v
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
		d.errorf(p, "want a number of machines or a fraction such as 0.33, not %s", aType(v))
	}
}

// check decodes one check. kind is its type when the table it sits in says
// (http_checks, tcp_checks, http_service.checks); "" reads the type key.
func (d *decoder) check(t *table, kind string) Check {
	c := Check{Name: t.path, Type: kind}
	if kind == "" {
		t.str("type", &c.Type)
		c.Type = strings.ToLower(strings.TrimSpace(c.Type))
		t.port("port", &c.Port)
		t.strs("processes", &c.Processes)
	} else if _, p, ok := t.take("port"); ok {
		d.warnf(p, "ignored: fly checks a service on its internal_port")
	}
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
// {name, value} tables (a missing value is ""). Values that are not strings
// are kept as their text. Empty headers, in either form, are none.
func (d *decoder) headers(t *table) map[string]string {
	v, p, ok := t.take("headers")
	if !ok {
		return nil
	}
	out := map[string]string{}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			switch e.(type) {
			case map[string]any, []any, []map[string]any:
				d.errorf(join(p, k), "header value: want a string, not %s", aType(e))
				continue
			}
			out[k] = castToString(e)
		}
	case []map[string]any, []any:
		out = d.namedValues(p, v, "value", func(ip string, e any) {
			if _, isMap := e.(map[string]any); !isMap {
				d.errorf(ip, "want a {name, value} table, not %s", aType(e))
			} else {
				d.errorf(ip, "header needs a name (flyctl: Unsupported headers format)")
			}
		})
	default:
		d.errorf(p, "want a table of header names and values or an array of {name, value} tables, not %s", aType(v))
		return nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
