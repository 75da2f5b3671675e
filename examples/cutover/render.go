package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
		return &ttyRenderer{w: w, lines: map[string]*machineLine{}}
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
// state changes; other lines scroll above them.
type ttyRenderer struct {
	w     io.Writer
	order []string
	lines map[string]*machineLine
	drawn int
}

type machineLine struct {
	id, version, state string
	mark               string
	since              time.Time
}

func (r *ttyRenderer) event(e control.Event) {
	var above []string
	switch {
	case machineEvent(e):
		l := r.lines[e.Machine]
		if l == nil {
			l = &machineLine{id: e.Machine, version: e.Version}
			r.lines[e.Machine] = l
			r.order = append(r.order, e.Machine)
		}
		l.state, l.mark, l.since = phrase(e), mark(e), e.Time
	default:
		above = append(above, phrase(e))
	}
	r.redraw(above)
}

func (r *ttyRenderer) redraw(above []string) {
	var b bytes.Buffer
	if r.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.drawn) // back to the first machine line
	}
	for _, l := range above {
		fmt.Fprintf(&b, "\x1b[2K%s\n", l)
	}
	for _, id := range r.order {
		l := r.lines[id]
		fmt.Fprintf(&b, "\x1b[2K  %s %-8s [%s] %s\n", l.mark, l.id, l.version, l.state)
	}
	r.drawn = len(r.order)
	_, _ = r.w.Write(b.Bytes())
}

func (r *ttyRenderer) done(res *control.Result) { fmt.Fprintln(r.w, summary(res)) }

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
	case deploy.DeployStarted:
		s = fmt.Sprintf("==> deploying %s %s (%s)", e.App, e.Version, e.Message)
	case deploy.DeploySucceeded:
		s = fmt.Sprintf("==> %s serves all traffic", e.Version)
	case deploy.DeployFailed:
		s = fmt.Sprintf("==> deploy of %s failed", e.Version)
	case deploy.DeployRolledBack:
		s = fmt.Sprintf("==> rolled back: %s serves again", e.Version)
	case deploy.DeployHeld:
		s = fmt.Sprintf("==> held: %s; run `cutover promote` to switch traffic or `cutover abort`", e.Message)
	case deploy.ReleaseCommand:
		s = fmt.Sprintf("==> release command in machine %s: %s", e.Machine, e.Message)
	case deploy.ReleaseOutput:
		s = "    | " + e.Message
	case deploy.ReleaseCommandEnd:
		s = "==> release command " + e.Message
	case deploy.CanaryStep:
		s = fmt.Sprintf("==> canary step: %d%% of traffic to %s", e.Weight, e.Version)
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
	what := "failed"
	switch {
	case res.Status == deploy.StatusRolledBack:
		what = "failed and was rolled back"
	case errors.Is(err, deploy.ErrAborted):
		what = "was aborted"
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
