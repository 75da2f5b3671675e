package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/release"
)

const deployAbout = `
Deploy a new version of the app through the daemon (cutover serve): new
machines start and pass their health checks before they take traffic, old
ones drain before they stop, and a failure restores the previous version.
Reads the image, strategy, checks and timeouts from fly.toml; flags override.
On a terminal each machine's progress is one line updated in place; otherwise
one line per event; --json prints events and the result as JSON lines.
Exits 1 when the deploy failed, was aborted or rolled back.`

// connect parses a command that takes no arguments, loads fly.toml and
// dials the app's daemon.
func (c *common) connect(ctx context.Context, args []string) (*control.Client, error) {
	plan, err := c.planNoArgs(args)
	if err != nil {
		return nil, err
	}
	return c.dial(ctx, plan.Spec.App)
}

// loadAndDial loads fly.toml's plan and dials the app's daemon.
func (c *common) loadAndDial(ctx context.Context) (config.Plan, *control.Client, error) {
	plan, err := c.load()
	if err != nil {
		return plan, nil, err
	}
	cl, err := c.dial(ctx, plan.Spec.App)
	return plan, cl, err
}

func noArgs(c *common, pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q (see cutover %s --help)", pos[0], c.fs.Name())
	}
	return nil
}

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFlags("deploy", "[--image IMG] [--strategy S] [--wait-timeout D] [--detach] [--count N] [--hold] [--json]", deployAbout, stdout)
	c.addBackendFlag()
	image := c.fs.String("image", "", "image to deploy (default: [build] image in fly.toml); on --backend mem any name works, its tag is the version it answers")
	strat := c.fs.String("strategy", "", "rolling, bluegreen, canary or immediate (default: [deploy] strategy in fly.toml, else rolling)")
	wait := c.durationFlag("wait-timeout", 0, "how long each machine may take to pass its health checks (default: [deploy] wait_timeout, else 5m)")
	detach := c.fs.Bool("detach", false, "return once the deploy started; it goes on in the daemon")
	count := c.fs.Int("count", 0, "machines to run (default: keep the current count; 1 for a first deploy)")
	hold := c.fs.Bool("hold", false, "bluegreen: once the new machines are healthy, wait for 'cutover promote' or 'cutover abort'")
	holdTimeout := c.durationFlag("hold-timeout", 0, "with --hold: abort if no decision comes within this (default 1h)")
	canarySteps := c.fs.String("canary-steps", "", "canary: traffic percent of each step, such as 10,50 (default: [deploy] canary_steps, else 10,50)")
	canaryStep := c.durationFlag("canary-step-duration", 0, "canary: how long each step is held (default: [deploy] canary_step_duration, else 1m)")
	message := c.fs.String("message", "", "description recorded with the release (default \"deploy image IMG\")")
	asJSON := c.fs.Bool("json", false, "print events and the result as JSON lines")
	plan, err := c.planNoArgs(args)
	if err != nil {
		return err
	}
	if *strat != "" {
		if err := validStrategy(*strat, plan.MaxUnavailable); err != nil {
			return err
		}
		plan.StrategyName = *strat
	}
	switch {
	case *wait < 0 || *holdTimeout < 0:
		return usagef("durations must not be negative")
	case *count < 0 || *count == 0 && flagSet(c.fs, "count"):
		return usagef("--count %d: want a number of machines, at least 1 (leave --count out to keep the current count)", *count)
	case *hold && plan.StrategyName != "bluegreen":
		return usagef("--hold needs the bluegreen strategy: pass --strategy bluegreen")
	}
	if *wait > 0 {
		plan.WaitTimeout = *wait
	}
	can, err := c.cfg.Canary()
	if err != nil {
		return usagef("invalid %s: %v: fix it and run again", c.cfgPath, err)
	}
	if *canarySteps != "" {
		if can.Steps, err = config.CanarySteps(*canarySteps); err != nil {
			return usagef("--canary-steps %s: %v", *canarySteps, err)
		}
	}
	if (*canarySteps != "" || *canaryStep != 0) && plan.StrategyName != "canary" {
		return usagef("--canary-steps and --canary-step-duration need the canary strategy: pass --strategy canary")
	}
	if *canaryStep < 0 {
		return usagef("durations must not be negative")
	}
	if *canaryStep > 0 {
		can.StepDuration = *canaryStep
	}
	if *image != "" {
		plan.SetImage(*image)
	}
	if plan.Spec.Image == "" {
		return usagef("no image to deploy: pass --image IMAGE or set [build] image in %s", c.cfgPath)
	}
	for _, w := range plan.Warnings { // what fly.toml says that this deploy will not act on
		if *image != "" && strings.HasPrefix(w, "build.image is empty") {
			continue
		}
		fmt.Fprintf(stderr, "warning: %s: %s\n", filepath.Base(c.cfgPath), w)
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	cl, err := c.dial(ctx, plan.Spec.App)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := newRenderer(stdout, *asJSON)
	// Ctrl-C (or SIGTERM) aborts the deploy, which rolls back, and the
	// command watches it to the end; a second one stops watching. With
	// --detach it only stops watching.
	watch, stopWatching := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatching()
	if *detach {
		defer context.AfterFunc(ctx, stopWatching)()
	} else {
		defer context.AfterFunc(ctx, func() { abortOnInterrupt(watch, cl, stderr, stopWatching) })()
	}
	res, err := cl.Deploy(watch, control.DeployArgs{
		Config: raw, Image: plan.Spec.Image, Strategy: plan.StrategyName, WaitTimeout: plan.WaitTimeout,
		Count: *count, Hold: *hold, HoldTimeout: *holdTimeout, Description: *message, User: currentUser(), Detach: *detach,
		CanarySteps: can.Steps, CanaryStepDuration: can.StepDuration,
	}, r.event)
	return finish(r, res, err)
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// abortOnInterrupt asks the daemon to abort the deploy the command watches;
// a second interrupt makes it stop watching.
func abortOnInterrupt(watch context.Context, cl *control.Client, stderr io.Writer, stopWatching func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sig)
		select {
		case <-sig:
			fmt.Fprintln(stderr, "cutover deploy: interrupted again: no longer watching; the daemon finishes the abort")
			stopWatching()
		case <-watch.Done():
		}
	}()
	fmt.Fprintln(stderr, "cutover deploy: interrupted: aborting the deploy (it rolls back); interrupt again to stop watching")
	actx, cancel := context.WithTimeout(watch, 10*time.Second)
	defer cancel()
	if err := cl.Abort(actx); err != nil && !errors.Is(err, control.ErrNotRunning) {
		fmt.Fprintf(stderr, "cutover deploy: abort: %s; stopping watching\n", oneLine(err))
		stopWatching()
	}
}

// finish shows the end of a deploy or rollback and returns its error.
func finish(r renderer, res *control.Result, err error) error {
	if err == nil {
		r.done(res)
		return nil
	}
	if _, ok := r.(*jsonRenderer); ok && res != nil {
		r.done(res) // --json ends with the result line, failed or not
	}
	return failure(res, err)
}

func runRollback(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("rollback", "[VERSION] [--json]", `
Redeploy a stable release (its image and the configuration it was deployed
with) as a new release. Without VERSION: the stable release before the
current one. VERSION is a number such as 3 or v3; see cutover releases.`, stdout)
	c.addBackendFlag()
	asJSON := c.fs.Bool("json", false, "print events and the result as JSON lines")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	version := 0
	switch len(pos) {
	case 0:
	case 1:
		version, err = strconv.Atoi(strings.TrimPrefix(strings.ToLower(pos[0]), "v"))
		if err != nil || version < 1 {
			return usagef("bad version %q: want a release number such as 3 or v3 (see cutover releases)", pos[0])
		}
	default:
		return usagef("too many arguments: cutover rollback [VERSION]")
	}
	plan, cl, err := c.loadAndDial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := newRenderer(stdout, *asJSON)
	res, err := cl.Rollback(ctx, control.RollbackArgs{Version: version, User: currentUser()}, r.event)
	if err != nil && res == nil {
		switch {
		case version > 0 && errors.Is(err, deploy.ErrNotFound):
			return usagef("%s has no release v%d: see cutover releases", plan.Spec.App, version)
		case errors.Is(err, deploy.ErrNotFound):
			return fmt.Errorf("%s: nothing to roll back to: no stable release before the current one (see cutover releases)", plan.Spec.App)
		case errors.Is(err, deploy.ErrInvalid):
			return usagef("%s: pick a stable release (see cutover releases)", oneLine(err))
		}
	}
	return finish(r, res, err)
}

// releaseJSON is one line of `cutover releases --json`.
type releaseJSON struct {
	Version     int       `json:"version"`
	Stable      bool      `json:"stable"`
	Current     bool      `json:"current"` // the release that serves now
	Type        string    `json:"type"`    // "release" or "rollback"
	Status      string    `json:"status"`
	Description string    `json:"description"`
	User        string    `json:"user"`
	Date        time.Time `json:"date"`
	Finished    time.Time `json:"finished,omitzero"`
	Image       string    `json:"image"`
	Strategy    string    `json:"strategy"`
	Reason      string    `json:"reason,omitempty"`
}

// releaseType is "rollback" for a release made by a rollback, else "release".
func releaseType(r deploy.Release) string {
	if strings.HasPrefix(r.Description, "rollback to v") {
		return "rollback"
	}
	return "release"
}

func runReleases(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("releases", "[--json]", `
List the app's releases, newest first, like fly releases: the current one
(the release that serves) is marked *, and the reason of each release that
did not complete is shown below the table. Reads the release history in the
state directory; the daemon need not run. --json keeps exact times.`, stdout)
	asJSON := c.fs.Bool("json", false, "print a JSON array")
	plan, err := c.planNoArgs(args)
	if err != nil {
		return err
	}
	var rels []deploy.Release
	if _, err := os.Stat(c.releasesDir()); err == nil {
		store, err := release.OpenFile(c.releasesDir())
		if err != nil {
			return err
		}
		if rels, err = store.List(ctx, plan.Spec.App); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out := make([]releaseJSON, 0, len(rels))
	current := false
	for _, r := range rels {
		out = append(out, releaseJSON{
			Version: r.Version, Stable: r.Stable, Current: r.Stable && !current, Type: releaseType(r), Status: string(r.Status),
			Description: r.Description, User: r.User, Date: r.Started, Finished: r.Finished, Image: r.Image, Strategy: r.Strategy, Reason: r.Reason,
		})
		current = current || r.Stable
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "%s has no releases yet: deploy with cutover deploy\n", plan.Spec.App)
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTABLE\tTYPE\tSTATUS\tDESCRIPTION\tUSER\tDATE")
	var reasons []string
	for _, r := range out {
		v := fmt.Sprintf("v%d", r.Version)
		if r.Current {
			v += " *"
		}
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\t%s\t%s\n", v, r.Stable, r.Type, r.Status, r.Description, r.User, ago(now, r.Date))
		if r.Reason != "" && r.Status != string(deploy.ReleaseComplete) {
			reasons = append(reasons, fmt.Sprintf("  v%d %s: %s", r.Version, r.Status, r.Reason))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if current {
		fmt.Fprintln(stdout, "* the current release: it serves now")
	}
	if len(reasons) > 0 {
		fmt.Fprintln(stdout, "\nWhy releases did not complete:")
		for _, r := range reasons {
			fmt.Fprintln(stdout, r)
		}
	}
	return nil
}

// ago is how long before now t was, as fly writes it: "30s ago", "5m ago",
// "1h ago", "3d ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func runStatus(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("status", "[--json]", `
Show the app's machines with their version, image, state, health (checked
now), traffic weight and proxy statistics, and the deploy running, if any.`, stdout)
	c.addBackendFlag()
	asJSON := c.fs.Bool("json", false, "print the status as JSON")
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "App:      %s\nBackend:  %s\nProxy:    http://%s\nDaemon:   pid %d, up %s\n",
		st.App, st.Backend, st.Addr, st.PID, time.Since(st.Started).Round(time.Second))
	if op := st.Operation; op != nil {
		line := fmt.Sprintf("%s %s (%s) since %s", op.Kind, orDash(op.Version), orDash(op.Strategy), op.Started.Format("15:04:05"))
		if op.Held {
			line += ", held: run `cutover promote` or `cutover abort`"
		}
		fmt.Fprintf(stdout, "Running:  %s\n", line)
	}
	fmt.Fprintln(stdout)
	if len(st.Machines) == 0 {
		fmt.Fprintln(stdout, "No machines: deploy with cutover deploy")
		return nil
	}
	versions := map[string]int{}
	for _, m := range st.Machines {
		versions[m.Version]++
	}
	var vs []string
	for v, n := range versions {
		vs = append(vs, fmt.Sprintf("%s×%d", v, n))
	}
	sort.Strings(vs)
	fmt.Fprintf(stdout, "Machines (%d; versions %s)\n", len(st.Machines), strings.Join(vs, ", "))
	groups := false
	for _, m := range st.Machines {
		groups = groups || m.Group != ""
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if groups {
		fmt.Fprint(tw, "PROCESS\t")
	}
	fmt.Fprintln(tw, "ID\tVERSION\tIMAGE\tSTATE\tHEALTH\tWEIGHT\tREQUESTS\tERRORS\tP99\tADDRESS")
	for _, m := range st.Machines {
		weight := "-"
		switch {
		case m.Down:
			weight = "down"
		case m.Weight >= 0:
			if _, routed := st.Targets[m.Addr]; routed {
				weight = strconv.Itoa(m.Weight)
			}
		}
		health := orDash(m.Health)
		if len(health) > 40 {
			health = health[:39] + "…"
		}
		req, errs, p99 := "-", "-", "-"
		if s := m.Stats; s != nil {
			req, errs, p99 = strconv.FormatUint(s.Requests, 10), strconv.FormatUint(s.Errors, 10), fmt.Sprintf("%.1fms", s.P99MS)
		}
		if groups {
			fmt.Fprintf(tw, "%s\t", orDash(m.Group))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Version, m.Image, m.State, health, weight, req, errs, p99, m.Addr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hint := engineHint(st.Backend, st.Machines[0].ID); hint != "" {
		fmt.Fprintf(stdout, "\n%s\n", hint)
	}
	return nil
}

// engineHint says how the engine of backend finds a machine by its ID, or "".
func engineHint(backend, id string) string {
	switch backend {
	case "docker":
		return "A machine's ID is its container's ID: docker ps --filter id=" + id + ", docker logs " + id
	case "swarm":
		return "A machine's ID is its service's ID: docker service ps " + id + ", docker service logs " + id
	}
	return ""
}

func runLogs(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("logs", "[-f] [-n N] [--since D]", `
Show the daemon's log (deploy events, health changes, proxy errors), then the
output of each machine that keeps it (Docker containers, release commands,
mem workers), as kept by the daemon: -n and --since select from each of them,
with -f or without. With -f, follow new lines until interrupted.`, stdout)
	follow := c.fs.Bool("f", false, "follow new lines")
	c.fs.BoolVar(follow, "follow", false, "same as -f")
	lines := c.fs.Int("n", 0, "show only the last N lines kept of the daemon's log and of each machine's output; 0: all")
	c.fs.IntVar(lines, "lines", 0, "same as -n")
	since := c.durationFlag("since", 0, "show only the lines (the daemon's and the machines') written in this last while, such as 10m or 600")
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	if *lines < 0 || *since < 0 {
		return usagef("-n and --since must not be negative")
	}
	opts := control.LogOptions{Follow: *follow, Lines: *lines}
	if *since > 0 {
		opts.Since = time.Now().Add(-*since)
	}
	return cl.Logs(ctx, opts, func(line string) { fmt.Fprintln(stdout, line) })
}

func runPromote(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return decide(ctx, args, stdout, "promote",
		"Let a held bluegreen deploy (cutover deploy --strategy bluegreen --hold) switch all traffic to its new machines.",
		(*control.Client).Promote,
		"promoted: the held deploy switches traffic to its new machines (cutover status shows it)")
}

func runAbort(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return decide(ctx, args, stdout, "abort",
		"Stop the running deploy or rollback, whatever its strategy (a canary included): it removes its new machines and the previous version serves, as after a failure. A held bluegreen deploy removes its new machines.",
		(*control.Client).Abort,
		"aborted: the deploy removes its new machines; the previous version keeps serving (cutover status shows it)")
}

// decide runs the command verb: call gives the decision to the daemon, and
// done is printed once it took it.
func decide(ctx context.Context, args []string, stdout io.Writer, verb, about string, call func(*control.Client, context.Context) error, done string) error {
	c := newFlags(verb, "", about, stdout)
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := call(cl, ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, done)
	return nil
}

func runScale(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("scale", "N [--process-group G] | GROUP=N... [--json]", `
Run N machines of the current release, as fly scale count does: new machines
start and pass their health checks before they take traffic, extra ones leave
traffic and drain before they stop (those that do not run first, then the
last listed). No release is made, and no version: the current release
records the count, which a restart of the daemon and a rollback to it
restore. N applies to the default process group (the first; the only one
without [processes]) or to --process-group; GROUP=N sets several, such as
web=2 worker=1.`, stdout)
	c.addBackendFlag()
	group := c.fs.String("process-group", "", "the process group N is for (default: the first)")
	asJSON := c.fs.Bool("json", false, "print events and the result as JSON lines")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	counts, err := scaleCounts(pos, *group)
	if err != nil {
		return err
	}
	_, cl, err := c.loadAndDial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := newRenderer(stdout, *asJSON)
	res, err := cl.Scale(ctx, control.ScaleArgs{Groups: counts, User: currentUser()}, r.event)
	return finish(r, res, err)
}

// scaleCounts reads scale's arguments: N (for group, "" the default one)
// or GROUP=N pairs, as fly scale count takes them.
func scaleCounts(pos []string, group string) (map[string]int, error) {
	if len(pos) == 0 {
		return nil, usagef("want the number of machines: cutover scale N, or GROUP=N per process group")
	}
	counts := map[string]int{}
	for _, a := range pos {
		g, v, named := strings.Cut(a, "=")
		if !named {
			g, v = group, a
			if len(pos) > 1 {
				return nil, usagef("scale %s: give one N, or GROUP=N per process group", strings.Join(pos, " "))
			}
		} else if group != "" {
			return nil, usagef("--process-group with %s: give either N with --process-group, or GROUP=N", a)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || named && g == "" {
			return nil, usagef("scale %q: want a number of machines, at least 1 (cutover destroy removes them all)", a)
		}
		if _, dup := counts[g]; dup {
			return nil, usagef("scale: group %s given twice", g)
		}
		counts[g] = n
	}
	return counts, nil
}

func runDestroy(ctx context.Context, args []string, stdout, _ io.Writer) error {
	c := newFlags("destroy", "--yes", `
Take every machine of the app out of traffic, stop and remove it. The
release history is kept: cutover rollback VERSION or cutover deploy starts
the app again.`, stdout)
	c.addBackendFlag()
	yes := c.fs.Bool("yes", false, "confirm: the app stops serving")
	cl, err := c.connect(ctx, args)
	if err != nil {
		return err
	}
	defer cl.Close()
	if !*yes {
		return usagef("destroy stops the app serving: pass --yes to confirm")
	}
	ids, err := cl.Destroy(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "destroyed %d machines: %s; the app serves nothing until the next deploy\n", len(ids), strings.Join(ids, " "))
	return nil
}
