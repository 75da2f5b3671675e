package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/release"
)

// common are the flags every command has.
type common struct {
	fs       *flag.FlagSet
	cfgPath  string
	stateDir string
	backend  string         // optional on client commands: checked against the daemon's
	app      string         // -a: the app, instead of fly.toml's (a daemon may serve several)
	usage    func()         // prints the usage to stdout
	cfg      *config.Config // set by load
}

func newFlags(name, synopsis, about string, stdout io.Writer) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(io.Discard)
	c.fs.StringVar(&c.cfgPath, "c", "fly.toml", "path to the app's fly.toml")
	c.fs.StringVar(&c.cfgPath, "config", "fly.toml", "same as -c")
	c.fs.StringVar(&c.app, "a", "", "app name (default: app in fly.toml); a daemon started with serve --app serves several")
	c.fs.StringVar(&c.stateDir, "state-dir", "", "state directory: release history, control socket (default .cutover next to fly.toml)")
	c.fs.Usage = func() {} // Parse calls it on every flag error; parse prints the usage for --help only
	c.usage = func() {
		fmt.Fprintf(stdout, "Usage: cutover %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(about))
		c.fs.SetOutput(stdout)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	return c
}

// parse parses args, allowing flags after positional arguments, and returns
// the positional ones. --help prints the usage and returns errHelp.
func (c *common) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage()
				return nil, errHelp
			}
			return nil, usagef("%v (see cutover %s --help)", err, c.fs.Name())
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// state returns the state directory.
func (c *common) state() string {
	if c.stateDir != "" {
		return c.stateDir
	}
	return filepath.Join(filepath.Dir(c.cfgPath), ".cutover")
}

func (c *common) socket() string { return filepath.Join(c.state(), "cutover.sock") }

func (c *common) releasesDir() string { return filepath.Join(c.state(), "releases") }

// planNoArgs parses a command that takes no arguments and loads fly.toml's plan.
func (c *common) planNoArgs(args []string) (config.Plan, error) {
	pos, err := c.parse(args)
	if err != nil {
		return config.Plan{}, err
	}
	if err := noArgs(c, pos); err != nil {
		return config.Plan{}, err
	}
	return c.load()
}

// load reads fly.toml and makes its plan; every failure is a usage error
// that says what to do.
func (c *common) load() (config.Plan, error) {
	cfg, err := config.Load(c.cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return config.Plan{}, usagef("%s not found: pass -c PATH or create one (app = \"NAME\" and [build] image = \"IMAGE\" are enough)", c.cfgPath)
	}
	if err != nil {
		if errors.Is(err, config.ErrInvalid) { // every *config.Error wraps it
			more, first := firstErr(err)
			msg := first.Error()
			if more > 0 {
				msg += fmt.Sprintf(" (and %d more)", more)
			}
			return config.Plan{}, usagef("invalid %s: %s: fix it and run again", c.cfgPath, strings.TrimPrefix(msg, filepath.Base(c.cfgPath)+": "))
		}
		return config.Plan{}, usagef("cannot read %s: %v", c.cfgPath, err)
	}
	c.cfg = cfg
	warnUnknown(warnings, c.cfgPath, cfg)
	if cfg.App == "" {
		return config.Plan{}, usagef("%s has no app name: add app = \"NAME\" at its top", c.cfgPath)
	}
	plan, err := cfg.Plan()
	if err != nil {
		return config.Plan{}, usagef("invalid %s: %v: fix it and run again", c.cfgPath, oneLine(err))
	}
	if c.app != "" {
		if err := release.ValidApp(c.app); err != nil {
			return config.Plan{}, usagef("-a %q: use letters, digits, '-', '_' or '.'", c.app)
		}
		plan.Spec.App = c.app
	}
	return plan, nil
}

func firstErr(err error) (int, error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, isCfg := err.(*config.Error); !isCfg {
			errs := j.Unwrap()
			if len(errs) > 0 {
				return len(errs) - 1, errs[0]
			}
		}
	}
	return 0, err
}

// dial connects to the daemon of the state directory and checks it runs the
// app of fly.toml (and the backend asked for, if any).
func (c *common) dial(ctx context.Context, app string) (*control.Client, error) {
	cl := control.Dial(c.socket()).WithApp(app) // a daemon serving several apps (serve --app) picks it
	info, err := cl.Info(ctx)
	if err != nil {
		cl.Close()
		if errors.Is(err, control.ErrUnreachable) {
			return nil, fmt.Errorf("cannot reach the cutover daemon at %s: start it with `cutover serve -c %s`", c.socket(), c.cfgPath)
		}
		return nil, err
	}
	if info.App != app {
		cl.Close()
		return nil, usagef("the daemon at %s runs app %q, but %s is for app %q: pass the right -c or --state-dir", c.socket(), info.App, c.cfgPath, app)
	}
	if c.backend != "" && c.backend != info.Backend {
		cl.Close()
		return nil, usagef("the daemon at %s runs the %s backend, not %s: restart it with `cutover serve --backend %s`", c.socket(), info.Backend, c.backend, c.backend)
	}
	return cl, nil
}

// addBackendFlag adds --backend to a client command.
func (c *common) addBackendFlag() {
	c.fs.StringVar(&c.backend, "backend", "", "fail unless the daemon runs this backend (docker, swarm or mem)")
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// secondsOrDuration is a duration flag that takes a bare number as seconds,
// as flyctl does (--wait-timeout 120), or a Go duration (2m, 90s, 1m30s).
type secondsOrDuration struct{ d *time.Duration }

func (f secondsOrDuration) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f secondsOrDuration) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseDuration reads a bare number as seconds (120, 1.5) or a Go duration (2m).
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 || n > float64(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("%s seconds is out of range", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want seconds (120) or a duration (2m, 90s, 1m30s)")
	}
	return d, nil
}

// durationFlag defines a flag of secondsOrDuration.
func (c *common) durationFlag(name string, value time.Duration, usage string) *time.Duration {
	d := value
	c.fs.Var(secondsOrDuration{&d}, name, usage+" (`SECONDS`, or a duration such as 2m)")
	return &d
}
