package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// ownContext: see eng.OwnContext.
var ownContext = eng.OwnContext

// Machine is one container. It implements deploy.Machine and deploy.LogReader.
// Its methods are safe for concurrent use.
type Machine struct {
	b    *Backend
	id   string // machine ID: the container ID's short form
	cid  string // container ID, in full
	spec deploy.MachineSpec
	tty  bool

	c            eng.Cache // c.Mu guards the fields below too
	addr         string
	ports        map[int]string // host address of each of spec.Ports, once started
	neverStarted chan struct{}  // closed when a created machine is stopped or destroyed
	closedNever  bool
	restarts     int // the engine's RestartCount, as last seen
}

var (
	_ deploy.Machine       = (*Machine)(nil)
	_ deploy.PortAddresser = (*Machine)(nil)
	_ deploy.LogReader     = (*Machine)(nil)
)

func newMachine(b *Backend, cid string, spec deploy.MachineSpec, tty bool) *Machine {
	m := &Machine{b: b, id: eng.ShortID(cid), cid: cid, spec: spec, tty: tty, neverStarted: make(chan struct{})}
	m.c.State = deploy.StateCreated
	return m
}

// ID returns the machine ID: its container's ID in the short form docker ps
// prints (12 hex digits), which docker logs, docker inspect and docker stop
// take too. A restart of the container keeps it.
func (m *Machine) ID() string { return m.id }

// ContainerID returns the full ID of the machine's container (ID is its
// short form).
func (m *Machine) ContainerID() string { return m.cid }

// Spec returns the machine's spec. Its Labels hold deploy.LabelApp and, when
// set, deploy.LabelVersion, besides the labels the spec was created with.
func (m *Machine) Spec() deploy.MachineSpec { return m.spec }

// Addr returns "127.0.0.1:<host port>" once started, or "" before.
func (m *Machine) Addr() string {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.addr
}

// AddrOf returns "127.0.0.1:<host port>" for port, the app port or one of
// the spec's Ports, once started; an error wrapping
// deploy.ErrPortNotPublished before, or for another port.
func (m *Machine) AddrOf(port int) (string, error) {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return eng.AddrOf("docker", m.id, port, m.spec.Port, m.addr, m.ports)
}

// State returns the machine's state. While the machine runs (or is stopping)
// it asks the engine, briefly, so a crash shows up as StateStopped; otherwise
// it returns the state the machine's methods last saw.
func (m *Machine) State() deploy.MachineState { return m.c.Fresh(m.Refresh, nil) }

// Refresh updates the machine's cached state and address from the engine.
func (m *Machine) Refresh(ctx context.Context) error {
	c, err := m.inspect(ctx)
	if err != nil {
		return err
	}
	m.observeInspect(c)
	return nil
}

// Start starts the container and reads back its host port. It returns once
// the process runs, not once it is healthy. Starting a running machine does nothing.
func (m *Machine) Start(ctx context.Context) error {
	prev, ok, err := m.c.BeginStart("docker", m.id, func() {
		if m.closedNever { // it was stopped before it started: a new run
			m.neverStarted, m.closedNever = make(chan struct{}), false
		}
	})
	if !ok {
		return err
	}

	if _, err := m.b.cli.ContainerStart(ctx, m.cid, client.ContainerStartOptions{}); err != nil {
		if cerrdefs.IsNotFound(err) {
			m.markDestroyed()
		} else {
			m.c.SetIf(deploy.StateStarting, prev)
			if ctx.Err() == nil {
				octx, cancel := ownContext(ctx)
				_ = m.Refresh(octx)
				cancel()
			}
		}
		return wrapErr("start", m.id, err)
	}
	// The port binding is there once start returns; poll briefly in case it lags.
	for i := 0; ; i++ {
		c, err := m.inspect(ctx)
		if err != nil {
			return err
		}
		m.observeInspect(c)
		if m.Addr() != "" || c.State == nil || !c.State.Running || i >= 20 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: start %s: %w", m.id, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
	if m.Addr() == "" && m.c.Now() == deploy.StateStarted {
		return fmt.Errorf("docker: start %s: no host port published for %d/tcp", m.id, m.spec.Port)
	}
	return nil
}

// Wait blocks until the container's process exits, or ctx ends. For a
// created machine it waits for the next run to end. After Destroy it returns
// the last exit seen, if any. When the engine restarts the container under
// its restart policy, Wait returns for the run that ended, with the reason
// "exited; restarted by its restart policy" and the code the engine
// reported, which may be 0 (the engine can lose it as it restarts); a Wait
// begun after the restart waits for the next run.
func (m *Machine) Wait(ctx context.Context) (deploy.ExitStatus, error) {
	if st, ok := m.c.ExitStatus(); ok {
		return st, nil
	}
	c, err := m.inspect(ctx)
	if err != nil {
		if st, ok := m.c.ExitStatus(); ok && errors.Is(err, deploy.ErrNotFound) {
			return st, nil
		}
		return deploy.ExitStatus{}, err
	}
	m.observeInspect(c)
	if st, ok := exitedState(c); ok {
		return m.recordExit(st.ExitCode, st.OOMKilled), nil
	}

	cond := container.WaitConditionNotRunning
	if c.State != nil && c.State.Status == container.StateCreated {
		if st, ok := m.c.ExitStatus(); ok { // stopped before it ever started
			return st, nil
		}
		cond = container.WaitConditionNextExit
	}
	// The engine registers the waiter before it answers the request, so a
	// second look after it closes the gap between inspect and wait.
	w := m.b.startWait(ctx, m.cid, cond)
	defer w.Close()
	if cond == container.WaitConditionNextExit {
		if c, err := m.inspect(ctx); err == nil {
			if st, ok := exitedState(c); ok {
				m.observeInspect(c)
				return m.recordExit(st.ExitCode, st.OOMKilled), nil
			}
		}
	}
	m.c.Mu.Lock()
	never, restarts := m.neverStarted, m.restarts
	m.c.Mu.Unlock()
	res, err := w.Result(ctx, never)
	if errors.Is(err, eng.ErrNeverStarted) {
		if st, ok := m.c.ExitStatus(); ok {
			return st, nil
		}
		return deploy.ExitStatus{}, fmt.Errorf("docker: wait %s: %w", m.id, deploy.ErrNotFound)
	}
	if err != nil {
		if st, ok := m.c.ExitStatus(); ok && errors.Is(err, deploy.ErrNotFound) {
			return st, nil
		}
		return deploy.ExitStatus{}, wrapErr("wait", m.id, err)
	}
	if res.Error != nil && res.Error.Message != "" {
		return deploy.ExitStatus{}, fmt.Errorf("docker: wait %s: %s", m.id, res.Error.Message)
	}
	oom := false
	octx, cancel := ownContext(ctx)
	defer cancel()
	if c, err := m.inspect(octx); err == nil {
		m.observeInspect(c)
		oom = c.State != nil && c.State.OOMKilled
		if m.Restarts() > restarts { // the engine restarted it already: a new run goes on
			return deploy.ExitStatus{Code: int(res.StatusCode), Reason: "exited; restarted by its restart policy"}, nil
		}
	} else {
		m.c.SetIf(deploy.StateStarted, deploy.StateStopped)
		m.c.SetIf(deploy.StateStopping, deploy.StateStopped)
	}
	return m.recordExit(int(res.StatusCode), oom), nil
}

// Stop sends the spec's stop signal (default SIGTERM), waits up to the spec's
// stop timeout (default 10s) for the process to exit, then sends SIGKILL. If
// ctx ends before the process exits, even before the signal is sent, the
// container is killed and ctx's error returned. Stopping a stopped machine
// does nothing; stopping a destroyed one is ErrNotFound.
func (m *Machine) Stop(ctx context.Context) error {
	st := m.c.Now()
	switch st {
	case deploy.StateDestroyed:
		return fmt.Errorf("docker: stop %s: %w", m.id, deploy.ErrNotFound)
	case deploy.StateStopping:
		_, err := m.Wait(ctx)
		return err
	}
	// A context of its own: a ctx that has ended still stops (the signal below
	// then fails at once, and kill has a context of its own too).
	octx, cancel := ownContext(ctx)
	c, err := m.inspect(octx)
	cancel()
	if err != nil {
		return err
	}
	m.observeInspect(c)
	if c.State == nil {
		return fmt.Errorf("docker: stop %s: no state in inspect response", m.id)
	}
	if c.State.Status == container.StateCreated {
		m.c.Mu.Lock()
		m.c.NeverStartedLocked()
		m.closeNeverLocked()
		m.c.Mu.Unlock()
		return nil
	}
	if _, ok := exitedState(c); ok {
		return nil
	}

	m.c.Mu.Lock()
	m.c.State = deploy.StateStopping
	m.c.StopAsked = true
	m.c.Mu.Unlock()

	sig := m.spec.StopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	w := m.b.startWait(ctx, m.cid, container.WaitConditionNotRunning)
	defer w.Close()
	var stopErr error
	_, serr := m.b.cli.ContainerKill(ctx, m.cid, client.ContainerKillOptions{Signal: sig})
	switch {
	case serr == nil || cerrdefs.IsConflict(serr):
		// Conflict: it is not running any more, and the wait returns at once.
		tctx, tcancel := context.WithTimeout(ctx, m.spec.StopTimeoutOrDefault())
		_, werr := w.Result(tctx, nil)
		switch {
		case werr != nil && tctx.Err() != nil:
			// The stop timeout passed or ctx ended (the wait request, cut by
			// ctx, may say so first): the process may still run.
			stopErr = m.kill(ctx)
		case werr != nil && !cerrdefs.IsNotFound(werr):
			stopErr = wrapErr("stop", m.id, werr)
		}
		tcancel() // not before the switch: a cancelled tctx would read as a timeout
	case ctx.Err() != nil:
		// ctx ended before or while the signal was sent (it may have
		// arrived): a stop cut short kills, as one cut during the wait does.
		stopErr = m.kill(ctx)
	case cerrdefs.IsNotFound(serr):
		m.markDestroyed()
		return wrapErr("stop", m.id, serr)
	default:
		m.c.SetIf(deploy.StateStopping, deploy.StateStarted)
		return wrapErr("stop", m.id, serr)
	}
	// Record how it ended.
	octx, cancel = ownContext(ctx)
	defer cancel()
	if c, err := m.inspect(octx); err == nil {
		m.observeInspect(c)
		if st, ok := exitedState(c); ok {
			m.recordExit(st.ExitCode, st.OOMKilled)
		}
	}
	return stopErr
}

// kill sends SIGKILL after the stop timeout passed or ctx ended, and waits
// for the exit with a context of its own. It returns ctx's error, if any.
func (m *Machine) kill(ctx context.Context) error {
	var err error
	reason := "killed after stop timeout"
	if ctx.Err() != nil {
		reason = "killed: stop cancelled"
		err = fmt.Errorf("docker: stop %s: %w", m.id, ctx.Err())
	}
	m.c.Mu.Lock()
	m.c.KillReason = reason
	m.c.Mu.Unlock()
	kctx, cancel := ownContext(ctx)
	defer cancel()
	_, kerr := m.b.cli.ContainerKill(kctx, m.cid, client.ContainerKillOptions{Signal: "SIGKILL"})
	if kerr == nil {
		kw := m.b.startWait(kctx, m.cid, container.WaitConditionNotRunning)
		_, kerr = kw.Result(kctx, nil)
		kw.Close()
	}
	if kerr != nil && !cerrdefs.IsConflict(kerr) && !cerrdefs.IsNotFound(kerr) && err == nil {
		err = wrapErr("kill", m.id, kerr)
	}
	return err
}

// Destroy force-removes the container (killing it if it runs). Destroying a
// destroyed or already removed machine is not an error.
func (m *Machine) Destroy(ctx context.Context) error {
	st := m.c.Now()
	if st == deploy.StateDestroyed {
		return nil
	}
	if err := m.b.remove(ctx, m.cid); err != nil {
		return wrapErr("destroy", m.id, err)
	}
	m.markDestroyed()
	return nil
}

// LogOptions selects what ReadLogs returns: Follow streams until the
// container stops or ctx ends; Tail, when above 0, returns only the last Tail
// lines.
type LogOptions = eng.LogOptions

// Logs returns the container's stdout and stderr, demultiplexed into one
// stream. With follow it streams until the container stops or ctx ends.
func (m *Machine) Logs(ctx context.Context, follow bool) (io.ReadCloser, error) {
	return m.ReadLogs(ctx, LogOptions{Follow: follow})
}

// ReadLogs is Logs with options.
func (m *Machine) ReadLogs(ctx context.Context, opts LogOptions) (io.ReadCloser, error) {
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := m.b.cli.ContainerLogs(ctx, m.cid, lo)
	if err != nil {
		return nil, wrapErr("logs", m.id, err)
	}
	if m.tty {
		return rc, nil
	}
	return eng.Demux(rc, nil, nil), nil
}

// inspect inspects the container; a missing container marks the machine destroyed.
func (m *Machine) inspect(ctx context.Context) (container.InspectResponse, error) {
	res, err := m.b.cli.ContainerInspect(ctx, m.cid, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			m.markDestroyed()
		}
		return container.InspectResponse{}, wrapErr("inspect", m.id, err)
	}
	return res.Container, nil
}

// observeInspect merges what the engine says into the cached state and address.
func (m *Machine) observeInspect(c container.InspectResponse) {
	addr := ""
	if c.NetworkSettings != nil {
		addr = hostAddr(c.NetworkSettings.Ports[portKey(m.spec.Port)])
		for _, p := range eng.ExtraPorts(m.spec) {
			if a := hostAddr(c.NetworkSettings.Ports[portKey(p)]); a != "" {
				m.c.Mu.Lock()
				if m.ports == nil {
					m.ports = map[int]string{}
				}
				m.ports[p] = a
				m.c.Mu.Unlock()
			}
		}
	}
	status := container.ContainerState("")
	if c.State != nil {
		status = c.State.Status
	}
	m.observe(stateOf(status), addr, c.RestartCount)
}

// observe merges an engine state (and the host address, when known) into the
// cache; restarts is the engine's restart count, or -1 when unknown.
func (m *Machine) observe(engine deploy.MachineState, addr string, restarts int) {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	if m.c.State != deploy.StateDestroyed {
		m.newRunLocked(engine, restarts)
	}
	if addr != "" {
		m.addr = addr
	}
	switch {
	case engine == "", m.c.State == deploy.StateDestroyed:
	case engine == deploy.StateStarted && m.c.State == deploy.StateStopping:
	case engine == deploy.StateCreated && m.c.State != deploy.StateCreated:
		// The engine says "created" only before a container's first start: the
		// machine was stopped before it started, or this answer is older than
		// what the cache knows (an inspect that raced Start and arrived after
		// it). Taking it would leave a running machine "created" for good,
		// since State asks the engine only while a machine runs.
	case engine == deploy.StateDestroyed:
		m.markDestroyedLocked()
	default:
		m.c.State = engine
	}
}

// recordExit records the run's exit (the first one recorded wins) and returns it.
func (m *Machine) recordExit(code int, oom bool) deploy.ExitStatus {
	reason := ""
	if oom {
		reason = "out of memory"
	}
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.c.RecordExitLocked(code, false, reason)
}

func (m *Machine) markDestroyed() {
	m.c.Mu.Lock()
	m.markDestroyedLocked()
	m.c.Mu.Unlock()
	m.b.mu.Lock()
	if m.b.machines[m.cid] == m {
		delete(m.b.machines, m.cid)
	}
	m.b.mu.Unlock()
}

func (m *Machine) markDestroyedLocked() {
	if m.c.DestroyLocked() {
		m.closeNeverLocked()
	}
}

func (m *Machine) closeNeverLocked() {
	if !m.closedNever {
		close(m.neverStarted)
		m.closedNever = true
	}
}

// stateOf maps an engine container state to a machine state.
func stateOf(s container.ContainerState) deploy.MachineState {
	switch s {
	case container.StateCreated:
		return deploy.StateCreated
	case container.StateRunning, container.StatePaused:
		return deploy.StateStarted
	case container.StateRestarting:
		return deploy.StateStarting
	case container.StateExited, container.StateDead:
		return deploy.StateStopped
	case container.StateRemoving:
		return deploy.StateDestroyed
	}
	return ""
}

// exitedState returns the container's state when its process has exited.
func exitedState(c container.InspectResponse) (*container.State, bool) {
	if c.State == nil {
		return nil, false
	}
	switch c.State.Status {
	case container.StateExited, container.StateDead:
		return c.State, true
	}
	return nil, false
}

func portKey(port int) network.Port {
	p, _ := network.PortFrom(uint16(port), network.TCP)
	return p
}

// hostAddr picks the loopback binding of a published port.
func hostAddr(bs []network.PortBinding) string {
	for _, b := range bs {
		if b.HostPort == "" {
			continue
		}
		if b.HostIP == loopback || !b.HostIP.IsValid() {
			return net.JoinHostPort(loopback.String(), b.HostPort)
		}
	}
	return ""
}

// startWait sends a wait request; it returns once the engine has registered it.
func (b *Backend) startWait(ctx context.Context, cid string, cond container.WaitCondition) *eng.Waiter {
	return eng.StartWait(ctx, b.cli, cid, cond)
}
