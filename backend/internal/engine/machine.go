package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
)

// Cache is what a machine handle of either backend knows of its machine
// between calls to the engine: its state and the exit of its current run.
// A handle keeps it in a field, and guards its own fields with Mu too.
type Cache struct {
	Mu         sync.Mutex
	State      deploy.MachineState
	Exit       *deploy.ExitStatus // the current run's exit, once seen
	StopAsked  bool               // a Stop sent the stop signal
	KillReason string             // set before a Stop sends SIGKILL
}

// Now returns the cached state.
func (c *Cache) Now() deploy.MachineState {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.State
}

// Fresh returns the state, asking the engine first (refresh, within
// RefreshTimeout) when it may have changed behind the handle's back: while
// the machine starts, runs or stops, or when stale (asked with Mu held; may
// be nil) says so.
func (c *Cache) Fresh(refresh func(context.Context) error, stale func() bool) deploy.MachineState {
	c.Mu.Lock()
	st := c.State
	ask := st == deploy.StateStarting || st == deploy.StateStarted || st == deploy.StateStopping || stale != nil && stale()
	c.Mu.Unlock()
	if !ask {
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), RefreshTimeout)
	defer cancel()
	_ = refresh(ctx)
	return c.Now()
}

// SetIf moves the state from one to another, if it is still from.
func (c *Cache) SetIf(from, to deploy.MachineState) {
	c.Mu.Lock()
	if c.State == from {
		c.State = to
	}
	c.Mu.Unlock()
}

// ExitStatus returns the current run's exit, once seen.
func (c *Cache) ExitStatus() (deploy.ExitStatus, bool) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.Exit == nil {
		return deploy.ExitStatus{}, false
	}
	return *c.Exit, true
}

// BeginStart is how a Start begins, for a handle named name (such as
// "docker") and machine id: a destroyed machine is an error wrapping
// deploy.ErrNotFound; a started or stopping one needs nothing (ok false);
// a stopped one forgets its previous run. Otherwise the state becomes
// StateStarting, prev is what it was, and begin, when not nil, runs with Mu
// held (for the handle's own fields). Mu is not held.
func (c *Cache) BeginStart(name, id string, begin func()) (prev deploy.MachineState, ok bool, err error) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	switch c.State {
	case deploy.StateDestroyed:
		return "", false, fmt.Errorf("%s: start %s: %w", name, id, deploy.ErrNotFound)
	case deploy.StateStarted, deploy.StateStopping:
		return "", false, nil
	case deploy.StateStopped:
		c.Exit, c.StopAsked, c.KillReason = nil, false, ""
	}
	prev, c.State = c.State, deploy.StateStarting
	if begin != nil {
		begin()
	}
	return prev, true, nil
}

// RecordExitLocked records the run's exit with code (the first one recorded
// wins) and returns it: its reason is reason when not empty, else what
// ExitReason says. The machine is stopped, unless destroyed. Mu is held.
func (c *Cache) RecordExitLocked(code int, pastTimeout bool, reason string) deploy.ExitStatus {
	if c.Exit != nil {
		return *c.Exit
	}
	if reason == "" {
		reason = ExitReason(code, c.KillReason, c.StopAsked, pastTimeout)
	}
	c.Exit = &deploy.ExitStatus{Code: code, Reason: reason}
	if c.State != deploy.StateDestroyed {
		c.State = deploy.StateStopped
	}
	return *c.Exit
}

// NeverStartedLocked records that a created machine was stopped before it
// started. Mu is held.
func (c *Cache) NeverStartedLocked() {
	c.State = deploy.StateStopped
	if c.Exit == nil {
		c.Exit = &deploy.ExitStatus{Reason: "never started"}
	}
}

// DestroyLocked marks the machine destroyed, with DestroyedExit for its exit
// when none was seen. It reports whether the machine was not destroyed
// before. Mu is held.
func (c *Cache) DestroyLocked() bool {
	if c.State == deploy.StateDestroyed {
		return false
	}
	if c.Exit == nil {
		c.Exit = DestroyedExit(c.State)
	}
	c.State = deploy.StateDestroyed
	return true
}

// ErrNeverStarted ends a wait on a created machine that was stopped or
// destroyed before it started.
var ErrNeverStarted = errors.New("machine was stopped or destroyed before it started")

// Waiter is one container wait request whose goroutine is always drained.
type Waiter struct {
	result   <-chan container.WaitResponse
	errs     <-chan error
	cancel   context.CancelFunc
	consumed bool
}

// StartWait sends cli a wait request for container cid's cond, cancelled by
// ctx or Close; it returns once the engine has registered it.
func StartWait(ctx context.Context, cli *client.Client, cid string, cond container.WaitCondition) *Waiter {
	wctx, cancel := context.WithCancel(ctx)
	res := cli.ContainerWait(wctx, cid, client.ContainerWaitOptions{Condition: cond})
	return &Waiter{result: res.Result, errs: res.Error, cancel: cancel}
}

// Result waits for the answer, the end of ctx (its error), or stop
// (ErrNeverStarted; nil never stops).
func (w *Waiter) Result(ctx context.Context, stop <-chan struct{}) (container.WaitResponse, error) {
	var zero container.WaitResponse
	select {
	case r := <-w.result:
		w.consumed = true
		return r, nil
	case err := <-w.errs:
		w.consumed = true
		return zero, err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-stop:
		return zero, ErrNeverStarted
	}
}

// Close cancels the request and lets the client's goroutine finish.
func (w *Waiter) Close() {
	w.cancel()
	if w.consumed {
		return
	}
	go func() {
		select {
		case <-w.result:
		case <-w.errs:
		}
	}()
}

// LogOptions selects what a machine's ReadLogs returns.
type LogOptions struct {
	Follow bool // stream until the machine's process exits or ctx ends
	Tail   int  // only the last Tail lines; 0 means all
}

// LogReader reads an engine's log stream demultiplexed into one.
type LogReader struct {
	pr     *io.PipeReader
	src    io.Closer
	cancel context.CancelFunc
	done   chan struct{}
}

// Demux returns a reader of src, the engine's multiplexed log stream, split
// into one stream (stdcopy.StdCopy). end, when not nil, is
// called with the copy's error once the copy ends and returns the error the
// reader ends with; it may wait for what else the caller runs. Close
// cancels the stream with cancel (may be nil) and waits for the copy.
func Demux(src io.ReadCloser, cancel context.CancelFunc, end func(error) error) *LogReader {
	pr, pw := io.Pipe()
	l := &LogReader{pr: pr, src: src, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_, err := stdcopy.StdCopy(pw, pw, src)
		if end != nil {
			err = end(err)
		}
		_ = pw.CloseWithError(err)
	}()
	return l
}

func (l *LogReader) Read(p []byte) (int, error) { return l.pr.Read(p) }

// Close ends the stream and the copy.
func (l *LogReader) Close() error {
	if l.cancel != nil {
		l.cancel()
	}
	err := l.src.Close() // ends the copy
	_ = l.pr.Close()
	<-l.done
	return err
}
