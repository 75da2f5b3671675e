package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultReleaseCommandTimeout bounds a release command when Request sets none.
const DefaultReleaseCommandTimeout = 5 * time.Minute

// releaseTailLines is how many lines of output a ReleaseCommandError keeps.
const releaseTailLines = 10

// ReleaseCommandError says how a release command failed: its exit code (or a
// timeout) and its last lines of output. It wraps ErrAborted.
type ReleaseCommandError struct {
	Command  []string
	Code     int
	TimedOut bool
	Timeout  time.Duration
	Tail     []string // last lines of output, oldest first
}

// Error gives the command, its exit code or timeout, and its last lines of output.
func (e *ReleaseCommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "release command %q ", strings.Join(e.Command, " "))
	if e.TimedOut {
		fmt.Fprintf(&b, "timed out after %s", e.Timeout)
	} else {
		fmt.Fprintf(&b, "exited with code %d", e.Code)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "; last output: %s", strings.Join(e.Tail, " | "))
	}
	return b.String()
}

// Unwrap returns ErrAborted: the deploy stopped before any machine changed.
func (e *ReleaseCommandError) Unwrap() error { return ErrAborted }

// runReleaseCommand runs cmd in a temporary machine of spec, with RELEASE_COMMAND=1,
// streaming its output as events. The machine is destroyed in every case.
func (d *Deployer) runReleaseCommand(ctx context.Context, r *Rollout, cmd []string, timeout time.Duration) (err error) {
	if timeout <= 0 {
		timeout = DefaultReleaseCommandTimeout
	}
	spec := r.Spec
	spec.Cmd = cmd
	spec.Restart = RestartPolicy{Policy: RestartNever} // it runs to completion, once
	spec.Env = withLabels(spec.Env, map[string]string{"RELEASE_COMMAND": "1"})
	spec.Labels = withLabels(spec.Labels, map[string]string{LabelRole: "release_command"})

	m, err := d.Backend.Create(ctx, spec)
	if err != nil {
		return phaseErr(nil, "release", fmt.Errorf("create: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := m.Destroy(cctx); derr != nil && !errors.Is(derr, ErrNotFound) {
			err = errors.Join(err, phaseErr(m, "release", fmt.Errorf("destroy: %w", derr)))
		}
	}()
	r.Emit(Event{Type: ReleaseCommand, Machine: m.ID(), Version: spec.Version, Message: strings.Join(cmd, " ")})
	if err := m.Start(ctx); err != nil {
		return phaseErr(m, "release", fmt.Errorf("start: %w", err))
	}

	tail := make(chan []string, 1)
	lctx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	go func() { tail <- d.streamOutput(lctx, r, m) }()

	wctx, cancel := WithTimeout(ctx, r.Clock(), timeout)
	defer cancel()
	st, werr := m.Wait(wctx)
	if werr != nil {
		// Timed out or cancelled: stop it (signal, then kill at its stop timeout).
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), r.Spec.StopTimeoutOrDefault()+10*time.Second)
		_ = m.Stop(sctx)
		scancel()
		stopLogs()
		lines := <-tail
		if ctx.Err() != nil {
			return phaseErr(m, "release", ctx.Err())
		}
		return phaseErr(m, "release", &ReleaseCommandError{Command: cmd, TimedOut: true, Timeout: timeout, Code: -1, Tail: lines})
	}
	lines := <-tail // the log stream ends when the machine exits
	r.Emit(Event{Type: ReleaseCommandEnd, Machine: m.ID(), Version: spec.Version, Message: st.String()})
	if st.Code != 0 {
		return phaseErr(m, "release", &ReleaseCommandError{Command: cmd, Code: st.Code, Tail: lines})
	}
	return nil
}

// streamOutput emits each line of m's output as a ReleaseOutput event and
// returns the last lines.
func (d *Deployer) streamOutput(ctx context.Context, r *Rollout, m Machine) []string {
	lr, ok := m.(LogReader)
	if !ok {
		return nil
	}
	rc, err := lr.Logs(ctx, true)
	if err != nil {
		r.Emit(Event{Type: ReleaseOutput, Machine: m.ID(), Err: err, Message: "logs unavailable"})
		return nil
	}
	defer rc.Close()
	var tail []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		r.Emit(Event{Type: ReleaseOutput, Machine: m.ID(), Version: m.Spec().Version, Message: line})
		if tail = append(tail, line); len(tail) > releaseTailLines {
			tail = tail[1:]
		}
	}
	return tail
}
