// Command cutover runs an app on one host with zero-downtime deploys, the way
// `fly deploy` does, and shows how to embed every part of the library.
//
// `cutover serve` is a daemon: it owns the app's machines (backend mem,
// docker, or swarm across the nodes of a swarm), the reverse proxy on the public port, continuous health checks, the
// Deployer and the release history (a file store in the state directory), and
// listens for commands on a Unix socket (mode 0600) in the state directory.
// Every other command is a thin client of that socket (package control),
// except `releases`, which reads the file store directly.
//
//	cutover serve -c fly.toml --backend mem --port 8080 &
//	cutover deploy --image demo:v1 --count 3
//	cutover deploy --image demo:v2
//	cutover releases
//	cutover rollback
//	cutover status
//	cutover pause && cutover resume
//
// serve's --https-port, --acme, --cert, --key and --host terminate TLS
// (package internal/edge); --metrics-addr serves Prometheus metrics
// (package internal/metrics).
//
// Exit codes: 0 success; 1 a failed, aborted or rolled-back deploy, or any
// other failure; 2 a usage error (flags, fly.toml, strategy, image).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/cutover/deploy"
)

const usageText = `cutover runs an app on one host with zero-downtime deploys, like fly deploy.

Usage:
  cutover <command> [flags]

Commands:
  serve      run the proxy daemon for the app in fly.toml (proxy, health checks, deploys, control socket)
  deploy     deploy a new version of the app (rolling, bluegreen, canary or immediate)
  releases   list the app's releases
  rollback   redeploy a previous stable release
  status     show machines, versions, states, health and traffic weights
  logs       show (or follow) the daemon's and the machines' logs
  promote    let a held bluegreen deploy switch traffic
  abort      stop the running deploy (any strategy); the previous version keeps serving
  scale      run N machines of the current release (cutover scale 3)
  destroy    stop and remove every machine of the app (--yes); the history is kept
  version    print the version of cutover
  help CMD   show a command's usage and flags
  pause      hold the app's new requests until resume (maintenance), once none is in flight
  resume     release the requests held by pause

Every command reads fly.toml like fly does (-c PATH, default ./fly.toml) and
keeps its state in --state-dir (default .cutover next to fly.toml).
Run "cutover help <command>" (or "cutover <command> --help") for its flags.

Exit codes: 0 success; 1 failure (including a failed, aborted or rolled-back
deploy); 2 usage error (bad flags, missing or invalid fly.toml, unknown strategy,
missing image).
`

type command struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", runServe},
	{"deploy", runDeploy},
	{"releases", runReleases},
	{"rollback", runRollback},
	{"status", runStatus},
	{"logs", runLogs},
	{"promote", runPromote},
	{"abort", runAbort},
	{"scale", runScale},
	{"destroy", runDestroy},
	{"pause", runPause},
	{"resume", runResume},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	name := args[0]
	warnings = stderr
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 { // help CMD: the command's usage
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usageText)
		return 0
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], stdout, stderr)
		if err == nil || errors.Is(err, errHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "cutover %s: %s\n", name, oneLine(err))
		return exitCode(err)
	}
	fmt.Fprintf(stderr, "cutover: unknown command %q: run \"cutover --help\" for the commands\n", name)
	return 2
}

// errHelp is returned after a command printed its --help.
var errHelp = errors.New("help shown")

// usageError is bad input: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	if errors.Is(err, deploy.ErrInvalid) {
		return 2
	}
	return 1
}

// oneLine returns the error's message on one line: joined errors become "; ".
func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// warnings receives warnings about the input, such as unknown fly.toml keys.
var warnings io.Writer = os.Stderr

// versionLine says which cutover this is: the module's version (or the VCS
// revision of a local build) and the Go version.
func versionLine() string {
	v, rev, dirty := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return fmt.Sprintf("cutover %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
