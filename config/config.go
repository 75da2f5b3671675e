// Package config loads fly.toml files: the app, its build image, the deploy
// strategy and release command, environment, kill signal and timeout, the
// http_service and services with their health checks and concurrency,
// top-level checks, process groups, [[vm]] and [experimental].
//
// It reads the forms real files use, and the older ones flyctl's loader
// normalises, as flyctl reads them: durations as strings ("5s", "1m30s") or
// bare numbers (seconds for kill_timeout, wait_timeout and
// release_command_timeout; milliseconds for a check's interval, timeout and
// grace_period; a float loses its fraction), whole floats where integers are
// meant (internal_port = 8080.0), ports written as strings, check headers as
// a table or as an array of {name, value} tables, [processes] as a table or
// as an array of {name, command} tables ([[processes]]), [[env]], [[checks]]
// with a name key, empty arrays for env, checks, processes and headers, a
// service's concurrency as a table or "soft,hard", [experimental] kill_timeout
// and cmd (used when the top-level key or a group command is absent),
// entrypoint and auto_rollback. An
// empty [[services]] is none. Keys it does not model (such as [mounts] or
// [metrics]) are not errors: they are listed in Config.Unknown and kept in
// Config.Raw; Config.Warnings says what was read differently than written,
// and Plan.Warnings everything a deploy will not act on.
//
// Errors name the key and, when loading a file, its line and column:
//
//	fly.toml: line 12, column 3: deploy.strategy: unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)
//
// Where flyctl rejects a form, the error carries flyctl's words, such as
// "Unknown type for service concurrency: int64" for concurrency = 20.
//
// Config.Plan turns a loaded config into what a deploy needs: the machine
// spec of each process group (its command, its service's port or none for a
// worker, the other ports its checks probe), strategy name, health checks,
// release command and timeouts.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	deploy "github.com/cutover/deploy"
)

// ErrInvalid is wrapped by every error about a config's content (syntax or
// values). It wraps deploy.ErrInvalid, so errors.Is(err, deploy.ErrInvalid)
// holds too.
var ErrInvalid = fmt.Errorf("config: %w", deploy.ErrInvalid)

// Strategy names accepted in [deploy] strategy. The empty string means rolling.
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "bluegreen"
	StrategyCanary    = "canary"
	StrategyImmediate = "immediate"
)

// Check types.
const (
	CheckHTTP   = "http"
	CheckTCP    = "tcp"
	CheckScript = "script" // accepted in [checks] (older fly configs); Plan skips it
)

// Config is a loaded fly.toml. The zero value of a field means the file did
// not set it.
type Config struct {
	App           string `json:"app,omitempty"`
	PrimaryRegion string `json:"primary_region,omitempty"`

	Build  Build  `json:"build"`
	Deploy Deploy `json:"deploy"`

	// Env is [env]. Values written as numbers or booleans are kept as their text.
	Env map[string]string `json:"env,omitempty"`

	KillSignal  string        `json:"kill_signal,omitempty"`  // upper case, such as "SIGINT"
	KillTimeout time.Duration `json:"kill_timeout,omitempty"` // a bare integer means seconds

	// HTTPService is [http_service], nil when absent.
	HTTPService *HTTPService `json:"http_service,omitempty"`
	// Services is [[services]] (the older, more general form).
	Services []Service `json:"services,omitempty"`
	// Checks is the top-level [checks.NAME] tables, by NAME.
	Checks map[string]Check `json:"checks,omitempty"`
	// Processes is [processes]: process group name to command line ("" runs
	// the image's own command). The older [[processes]] array of {name,
	// command} tables is read into it too.
	Processes map[string]string `json:"processes,omitempty"`
	// Experimental is [experimental], nil when absent.
	Experimental *Experimental `json:"experimental,omitempty"`
	// VM is [[vm]] (also read from [vm], [[compute]] and [[computes]]).
	VM []VM `json:"vm,omitempty"`

	// Warnings say what the loader read but will not act on, or read
	// differently than written (a float truncated, a port key ignored), in
	// file order. Plan adds its own to these.
	Warnings []string `json:"-"`
	// Restart is [[restart]]: restart policies by process group (see RestartPolicy).
	Restart []Restart `json:"restart,omitempty"`

	// Unknown lists, in file order, the keys not decoded into a field above,
	// such as "vm", "mounts", "experimental" or "http_service.concurrency".
	// Nested keys of an unknown table are not listed separately.
	Unknown []string `json:"-"`
	// Raw is the whole file as decoded by the TOML parser.
	Raw map[string]any `json:"-"`
}

// Build is [build].
type Build struct {
	Image      string            `json:"image,omitempty"`
	Dockerfile string            `json:"dockerfile,omitempty"`
	Builder    string            `json:"builder,omitempty"`
	Buildpacks []string          `json:"buildpacks,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
}

// Deploy is [deploy].
type Deploy struct {
	// Strategy is rolling, bluegreen, canary or immediate; "" means rolling.
	Strategy string `json:"strategy,omitempty"`
	// ReleaseCommand runs once, in a temporary machine of the new version,
	// before any machine is updated. Split it with SplitCommand.
	ReleaseCommand string `json:"release_command,omitempty"`
	// ReleaseCommandTimeout bounds the release command; a bare integer means seconds.
	ReleaseCommandTimeout time.Duration `json:"release_command_timeout,omitempty"`
	// MaxUnavailable is how many machines a rolling deploy may take down at
	// once: a count (1, 2, ...) or a fraction of the machines (0 < f < 1).
	MaxUnavailable float64 `json:"max_unavailable,omitempty"`
	// WaitTimeout bounds each machine's start and health checks; a bare integer means seconds.
	WaitTimeout time.Duration `json:"wait_timeout,omitempty"`
}

// Experimental is [experimental]: what fly still reads of it.
type Experimental struct {
	// Cmd replaces the image's command when no process group gives one. A
	// string is one argument, as flyctl reads it (it is not split).
	Cmd []string `json:"cmd,omitempty"`
	// Entrypoint replaces the image's entrypoint (MachineSpec.Entrypoint).
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Exec is fly's init exec override; Plan warns that it is not supported.
	Exec []string `json:"exec,omitempty"`
	// AutoRollback is auto_rollback; nil when unset.
	AutoRollback *bool `json:"auto_rollback,omitempty"`
	// KillTimeout is kill_timeout, used when the top-level key is absent.
	KillTimeout time.Duration `json:"kill_timeout,omitempty"`
}

// VM is one [[vm]] entry: the machine size of the process groups it names
// (every group when it names none). The library runs machines as the
// backend does, so Plan only carries it.
type VM struct {
	Size      string   `json:"size,omitempty"`
	Memory    string   `json:"memory,omitempty"` // as written; a bare integer means MB
	CPUs      int      `json:"cpus,omitempty"`
	CPUKind   string   `json:"cpu_kind,omitempty"`
	MemoryMB  int      `json:"memory_mb,omitempty"`
	Processes []string `json:"processes,omitempty"`
}

// Concurrency is [http_service.concurrency] or [services.concurrency]: how
// many connections or requests a machine takes. The older "soft,hard"
// string form of a service is read as type "requests".
type Concurrency struct {
	Type      string `json:"type,omitempty"` // "connections" or "requests"; "" is fly's default, connections
	SoftLimit int    `json:"soft_limit,omitempty"`
	HardLimit int    `json:"hard_limit,omitempty"`
}

// HTTPService is [http_service].
type HTTPService struct {
	InternalPort int          `json:"internal_port,omitempty"` // 0: fly's default, 8080
	ForceHTTPS   bool         `json:"force_https,omitempty"`
	Processes    []string     `json:"processes,omitempty"`
	Concurrency  *Concurrency `json:"concurrency,omitempty"`
	Checks       []Check      `json:"checks,omitempty"` // [[http_service.checks]], all of type http
}

// Service is one [[services]] entry. An entry with no key at all is dropped,
// as flyctl drops it.
type Service struct {
	InternalPort int           `json:"internal_port,omitempty"`
	Protocol     string        `json:"protocol,omitempty"` // "tcp" (default) or "udp"
	Processes    []string      `json:"processes,omitempty"`
	Concurrency  *Concurrency  `json:"concurrency,omitempty"`
	Ports        []ServicePort `json:"ports,omitempty"`
	HTTPChecks   []Check       `json:"http_checks,omitempty"`
	TCPChecks    []Check       `json:"tcp_checks,omitempty"`
}

// ServicePort is one [[services.ports]] entry.
type ServicePort struct {
	Port       int      `json:"port,omitempty"`
	Handlers   []string `json:"handlers,omitempty"`
	ForceHTTPS bool     `json:"force_https,omitempty"`
}

// Check is one health check, from [[http_service.checks]],
// [[services.http_checks]], [[services.tcp_checks]] or [checks.NAME].
type Check struct {
	// Name is NAME for a top-level [checks.NAME], else where the check was
	// written, such as "services[0].http_checks[1]".
	Name string `json:"name,omitempty"`
	Type string `json:"type"` // http, tcp (or script, top-level only)
	// Port is the port checked; 0 means the service's internal port (Plan
	// fills it in). Only a top-level check sets it: flyctl ignores a port
	// key in a service's checks, and so does the loader (with a warning).
	Port          int               `json:"port,omitempty"`
	Method        string            `json:"method,omitempty"`   // upper case; "" means GET
	Path          string            `json:"path,omitempty"`     // "" means "/"
	Protocol      string            `json:"protocol,omitempty"` // http or https; "" means http
	TLSSkipVerify bool              `json:"tls_skip_verify,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	// Interval, Timeout and GracePeriod: a bare integer in the file means milliseconds.
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	GracePeriod time.Duration `json:"grace_period,omitempty"`
	// RestartLimit is fly's restart_limit, kept for callers that restart machines.
	RestartLimit int `json:"restart_limit,omitempty"`
	// Processes, for a top-level check, names the process groups it checks;
	// empty means the default group.
	Processes []string `json:"processes,omitempty"`
}

// Error is an error about one key of a config. Line and Column are 1-based
// and 0 when unknown (for example from Validate on a Config built in code).
// It wraps ErrInvalid.
type Error struct {
	File   string // set by Load
	Line   int
	Column int
	Key    string // such as "deploy.strategy" or "services[1].http_checks[0].interval"
	Err    error
}

// Error formats the error as "file: line L, column C: key: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause and ErrInvalid.
func (e *Error) Unwrap() []error { return []error{e.Err, ErrInvalid} }

// SyntaxError is the cause of an Error for a file that is not valid TOML.
type SyntaxError struct {
	Err toml.ParseError
}

// Error says the file is not valid TOML, and why.
func (e *SyntaxError) Error() string { return "syntax error: " + e.Err.Message }

// Unwrap returns the TOML parser's error.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Load reads and parses the fly.toml at path. Errors about its content start
// with the file name; they wrap ErrInvalid.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, filepath.Base(path))
}

// Parse parses the content of a fly.toml and validates it. When several values
// are wrong, the error joins one *Error per key, in file order.
func Parse(data []byte) (*Config, error) { return parse(data, "") }

// parse is Parse, with file (when not "") named in every *Error.
func parse(data []byte, file string) (*Config, error) {
	// The TOML parser skips a UTF-8 byte order mark; so must the locator,
	// or it finds no key of the file and errors lose their line and column.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	raw := map[string]any{}
	if _, err := decodeTOML(data, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := syntaxPos(data, pe.Position)
			return nil, &Error{File: file, Line: line, Column: col, Err: &SyntaxError{Err: pe}}
		}
		return nil, &Error{File: file, Err: err}
	}
	loc := locate(string(data))
	d := &decoder{}
	c := d.decode(raw)
	failed := map[string]bool{}
	for _, e := range d.errs {
		failed[e.Key] = true
	}
	for _, e := range c.validate() {
		if !failed[e.Key] {
			d.errs = append(d.errs, e)
		}
	}
	if len(d.errs) > 0 {
		for _, e := range d.errs {
			e.File = file
			e.Line, e.Column = loc.find(e.Key)
		}
		return nil, joinErrors(d.errs)
	}
	type keyPos struct {
		key       string
		line, col int
	}
	kp := make([]keyPos, len(d.unknown))
	for i, k := range d.unknown {
		l, col := loc.find(k)
		kp[i] = keyPos{k, l, col}
	}
	sort.SliceStable(kp, func(i, j int) bool {
		if kp[i].line != kp[j].line {
			return kp[i].line < kp[j].line
		}
		if kp[i].col != kp[j].col {
			return kp[i].col < kp[j].col
		}
		return kp[i].key < kp[j].key
	})
	c.Unknown = make([]string, len(kp))
	for i, k := range kp {
		c.Unknown[i] = k.key
	}
	for _, w := range d.warnings {
		w.Line, w.Column = loc.find(w.Key)
	}
	sortByPosition(d.warnings)
	for _, w := range d.warnings {
		c.Warnings = append(c.Warnings, w.Error())
	}
	c.Raw = raw
	return c, nil
}

// syntaxPos returns the line and column of a parse error, computed from its
// byte offset: the parser counts a newline it stops at as the next line.
func syntaxPos(data []byte, p toml.Position) (int, int) {
	if p.Start < 0 || p.Start > len(data) {
		return p.Line, max(p.Col, 1)
	}
	before := data[:p.Start]
	line := 1 + bytes.Count(before, []byte("\n"))
	col := p.Start - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// decodeTOML runs the TOML parser, turning a panic in it into an error so
// that no input can crash a caller.
func decodeTOML(data []byte, v any) (md toml.MetaData, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("toml parser failed: %v", r)
		}
	}()
	return toml.Decode(string(data), v)
}

// sortByPosition sorts errs by line, column and key.
func sortByPosition(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Key < b.Key
	})
}

// joinErrors sorts errs (at least one) by position and key and returns the
// only one, or all of them joined.
func joinErrors(errs []*Error) error {
	sortByPosition(errs)
	if len(errs) == 1 {
		return errs[0]
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Validate checks the values of a Config, such as one built in code: strategy,
// ports, durations, max_unavailable, kill signal, check types, methods and
// protocols, and that the release command splits. Parse runs it already.
func (c *Config) Validate() error {
	errs := c.validate()
	if len(errs) == 0 {
		return nil
	}
	return joinErrors(errs)
}
