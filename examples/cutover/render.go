package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/control"
)

// renderer shows a deploy's progress.
type renderer interface {
	event(e control.Event)
	// done shows the result of a deploy that did not fail (failures are errors).
	done(res *control.Result)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newRenderer(w io.Writer, asJSON bool) renderer {
	switch {
	case asJSON:
		return &jsonRenderer{enc: json.NewEncoder(w)}
	case isTerminal(w):
		_, noColor := os.LookupEnv("NO_COLOR")
		return newTTYRenderer(w, termWidth(w), !noColor)
	}
	return &plainRenderer{w: w}
}

// jsonRenderer prints each event as a JSON line, then the result.
type jsonRenderer struct{ enc *json.Encoder }

func (r *jsonRenderer) event(e control.Event)    { _ = r.enc.Encode(e) }
func (r *jsonRenderer) done(res *control.Result) { _ = r.enc.Encode(res) }

// machineEvent reports whether e is a step of one app machine (the release
// command's machine is shown as lines of its own).
func machineEvent(e control.Event) bool {
	return e.Machine != "" && e.Type != deploy.ReleaseCommand && e.Type != deploy.ReleaseOutput && e.Type != deploy.ReleaseCommandEnd
}

// plainRenderer prints one line per event.
type plainRenderer struct{ w io.Writer }

func (r *plainRenderer) event(e control.Event) {
	if machineEvent(e) {
		fmt.Fprintf(r.w, "%s machine %s [%s] %s\n", e.Time.Format("15:04:05"), e.Machine, e.Version, phrase(e))
		return
	}
	fmt.Fprintf(r.w, "%s %s\n", e.Time.Format("15:04:05"), phrase(e))
}

func (r *plainRenderer) done(res *control.Result) { fmt.Fprintln(r.w, summary(res)) }

// ttyRenderer keeps one line per machine and redraws them in place as their
// state changes; other lines scroll above them, and the deploy's outcome
// comes below them. Every line is cut to the terminal's width, so that the
// redraw's count of lines holds.
type ttyRenderer struct {
	w     io.Writer
	width int  // columns
	color bool // ANSI colours
	order []string
	lines map[string]*machineLine
	below []string // the outcome lines, after the machine lines
	drawn int      // lines drawn at the last redraw, from the first machine line
}

type machineLine struct {
	id, version, state string
	mark               string
	first, last        time.Time
}

func newTTYRenderer(w io.Writer, width int, color bool) *ttyRenderer {
	if width < 20 {
		width = 80
	}
	return &ttyRenderer{w: w, width: width, color: color, lines: map[string]*machineLine{}}
}

// outcome reports whether e ends a deploy: shown below the machine lines.
func outcome(e control.Event) bool {
	switch e.Type {
	case deploy.DeploySucceeded, deploy.DeployFailed, deploy.DeployRolledBack, deploy.ScaleSucceeded, deploy.ScaleFailed:
		return true
	}
	return false
}

func (r *ttyRenderer) event(e control.Event) {
	var above []string
	switch {
	case machineEvent(e):
		l := r.lines[e.Machine]
		if l == nil {
			l = &machineLine{id: e.Machine, version: e.Version, first: e.Time}
			r.lines[e.Machine] = l
			r.order = append(r.order, e.Machine)
		}
		l.state, l.mark, l.last = phrase(e), mark(e), e.Time
	case outcome(e):
		r.below = append(r.below, phrase(e))
	default:
		above = append(above, phrase(e))
	}
	r.redraw(above, nil)
}

// redraw rewrites the machine lines and the outcome lines in place, with
// above scrolled out before them and after printed once after them.
func (r *ttyRenderer) redraw(above, after []string) {
	var b bytes.Buffer
	if r.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", r.drawn) // back to the first machine line
	}
	put := func(s, color string) {
		s = fit(s, r.width-1)
		if r.color && color != "" {
			s = color + s + "\x1b[0m"
		}
		fmt.Fprintf(&b, "\x1b[2K%s\n", s)
	}
	for _, l := range above {
		put(l, "")
	}
	idw := 0
	for _, id := range r.order {
		idw = max(idw, len(id))
	}
	for _, id := range r.order {
		l := r.lines[id]
		put(fmt.Sprintf("  %s %-*s [%s] %5s  %s", l.mark, idw, l.id, l.version, elapsed(l.last.Sub(l.first)), l.state), markColor(l.mark))
	}
	for _, l := range r.below {
		put(l, outcomeColor(l))
	}
	r.drawn = len(r.order) + len(r.below)
	for _, l := range after {
		put(l, outcomeColor(l))
	}
	_, _ = r.w.Write(b.Bytes())
}

func (r *ttyRenderer) done(res *control.Result) {
	r.redraw(nil, []string{summary(res)})
	r.drawn = 0
}

// elapsed is a machine's time since it was created, short.
func elapsed(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// fit cuts s to n columns (runes), ending it with "…" when cut.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	if n <= 1 {
		return string(rs[:max(n, 0)])
	}
	return string(rs[:n-1]) + "…"
}

const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	dim    = "\x1b[2m"
)

func markColor(mark string) string {
	switch mark {
	case "✓":
		return green
	case "✗":
		return red
	case "↓", "·":
		return dim
	}
	return yellow
}

func outcomeColor(line string) string {
	switch {
	case strings.HasPrefix(line, "✔"), strings.Contains(line, "serves all traffic"):
		return green
	case strings.Contains(line, "failed"), strings.Contains(line, "rolled back"):
		return red
	}
	return ""
}

func mark(e control.Event) string {
	switch e.Type {
	case deploy.MachineHealthy, deploy.MachineRouted:
		if e.Type == deploy.MachineRouted && e.Weight == 0 {
			return "·"
		}
		return "✓"
	case deploy.MachineUnhealthy:
		return "✗"
	case deploy.MachineDraining, deploy.MachineStopped, deploy.MachineDestroyed:
		return "↓"
	}
	return "…"
}

// phrase says what an event means, for people.
func phrase(e control.Event) string {
	var s string
	switch e.Type {
	case RollbackStarted:
		s = fmt.Sprintf("==> rolling back %s %s", e.App, e.Message)
	case deploy.DeployStarted:
		s = fmt.Sprintf("==> deploying %s %s (%s)", e.App, e.Version, e.Message)
	case deploy.DeploySucceeded:
		s = fmt.Sprintf("==> %s serves all traffic", e.Version)
	case deploy.DeployFailed:
		s = fmt.Sprintf("==> deploy of %s failed", e.Version)
	case deploy.DeployRolledBack:
		s = fmt.Sprintf("==> rolled back: %s serves again", e.Version)
	case deploy.ScaleStarted:
		s = fmt.Sprintf("==> scaling %s %s: %s machines", e.App, e.Version, e.Message)
	case deploy.ScaleSucceeded:
		s = fmt.Sprintf("==> %s scaled: %s machines", e.Version, e.Message)
	case deploy.ScaleFailed:
		s = fmt.Sprintf("==> scale of %s failed", e.Version)
	case deploy.DeployHeld:
		s = fmt.Sprintf("==> held: %s; run `cutover promote` to switch traffic or `cutover abort`", e.Message)
	case deploy.ReleaseCommand:
		s = fmt.Sprintf("==> release command in machine %s: %s", e.Machine, e.Message)
	case deploy.ReleaseOutput:
		s = "    | " + e.Message
	case deploy.ReleaseCommandEnd:
		s = "==> release command " + e.Message
	case deploy.CanaryStep:
		s = fmt.Sprintf("==> canary %s (%s)", e.Message, e.Version)
		if e.Message == "" {
			s = fmt.Sprintf("==> canary step: %d%% of traffic to %s", e.Weight, e.Version)
		}
	case deploy.CanaryAnalysis:
		s = "==> canary analysis: " + e.Message
	case deploy.MachineCreated:
		s = "created"
	case deploy.MachineStarted:
		s = "started, waiting for health checks"
	case deploy.MachineHealthy:
		s = "healthy"
	case deploy.MachineUnhealthy:
		s = "unhealthy"
		e.Error = strings.TrimPrefix(e.Error, "unhealthy: ") // the error says it too
	case deploy.MachineRouted:
		if e.Weight == 0 {
			s = "in the proxy at weight 0 (no new requests)"
		} else {
			s = fmt.Sprintf("serving traffic (weight %d)", e.Weight)
		}
	case deploy.MachineDraining:
		s = "draining: finishing requests in flight"
	case deploy.MachineStopped:
		s = "stopped"
	case deploy.MachineDestroyed:
		s = "destroyed"
	default:
		s = string(e.Type)
		if e.Message != "" {
			s += " " + e.Message
		}
	}
	if e.Error != "" {
		s += ": " + e.Error
	}
	return s
}

// summary is the last line of a deploy that did not fail.
func summary(res *control.Result) string {
	if res.Status == control.StatusRunning {
		return fmt.Sprintf("deploy of %s %s started; it goes on in the daemon: watch it with `cutover status` or `cutover logs -f`", res.App, orDash(res.Version))
	}
	if res.Strategy == "scale" {
		return fmt.Sprintf("✔ %s %s scaled in %s: %d machines: %s", res.App, res.Version,
			(time.Duration(res.DurationMS) * time.Millisecond).String(), len(res.Machines), strings.Join(res.Machines, " "))
	}
	return fmt.Sprintf("✔ %s %s deployed with %s in %s; machines: %s", res.App, res.Version, res.Strategy,
		(time.Duration(res.DurationMS) * time.Millisecond).String(), strings.Join(res.Machines, " "))
}

// failure is the error of a deploy that did not succeed.
func failure(res *control.Result, err error) error {
	if errors.Is(err, control.ErrDaemonGone) {
		v := ""
		if res != nil && res.Version != "" {
			v = " " + res.Version
		}
		return fmt.Errorf("the daemon stopped before the deploy%s finished, and its proxy stopped with it: "+
			"nothing serves until `cutover serve` runs again, which recovers the deploy (rolls it back unless it had finished): %w", v, err)
	}
	if errors.Is(err, deploy.ErrDeployInProgress) {
		return err // refused: nothing changed
	}
	if res == nil {
		return err
	}
	if res.Strategy == "scale" && res.Version == "" {
		return err // refused: nothing changed
	}
	if res.Strategy == "scale" {
		return &deployError{msg: fmt.Sprintf("scale of %s %s failed: %s; %d machines of %s run (cutover status)",
			res.App, orDash(res.Version), oneLine(err), len(res.Machines), orDash(res.Version)), err: err}
	}
	what := "failed"
	switch {
	case errors.Is(err, deploy.ErrAborted) && res.Status == deploy.StatusRolledBack:
		what = "was aborted and rolled back"
	case errors.Is(err, deploy.ErrAborted):
		what = "was aborted"
	case res.Status == deploy.StatusRolledBack:
		what = "failed and was rolled back"
	}
	prev := "the previous version serves"
	if res.FromVersion != "" {
		prev = res.FromVersion + " serves"
	} else if res.Status == deploy.StatusFailed {
		prev = "nothing was serving before"
	}
	return &deployError{msg: fmt.Sprintf("deploy of %s %s %s: %s; %s", res.App, orDash(res.Version), what, oneLine(err), prev), err: err}
}

type deployError struct {
	msg string
	err error
}

func (e *deployError) Error() string { return e.msg }
func (e *deployError) Unwrap() error { return e.err }

// columnsEnv returns $COLUMNS, else 80.
func columnsEnv() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}
