package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// ownContext: see eng.OwnContext.
var ownContext = eng.OwnContext

// destroyWait bounds how long Destroy waits for the task to be gone.
const destroyWait = 15 * time.Second

// Machine is one swarm service of one replica. It implements deploy.Machine
// and deploy.LogReader. Its methods are safe for concurrent use.
type Machine struct {
	b    *Backend
	id   string // machine ID: the service ID's short form
	sid  string // service ID, in full
	spec deploy.MachineSpec
	node string // the node it is placed on

	c         eng.Cache // c.Mu guards the fields below too
	addr      string
	ports     map[int]string // host:port of each published target port, of the running task
	task      string         // the current (latest) task's ID
	taskAt    time.Time      // its creation time
	expectNew bool           // Start asked for a new task: the next one is not a restart
	restarts  int            // tasks the swarm replaced since the latest Start
	runs      int            // tasks seen replacing another
	prevExit  *deploy.ExitStatus
	container string // its container ID, on node
	started   bool   // the service was started once
	stopAt    time.Time
}

var (
	_ deploy.Machine   = (*Machine)(nil)
	_ deploy.LogReader = (*Machine)(nil)
)

func newMachine(b *Backend, sid string, spec deploy.MachineSpec, node string) *Machine {
	m := &Machine{b: b, id: eng.ShortID(sid), sid: sid, spec: spec, node: node}
	m.c.State = deploy.StateCreated
	return m
}

// adopt builds a handle for a service another handle (or process) made.
func adopt(b *Backend, s swarm.Service) *Machine {
	m := newMachine(b, s.ID, specOf(s), s.Spec.Labels[LabelNode])
	m.started = s.Spec.Labels[LabelStarted] != ""
	return m
}

// AddrOf returns "<node address>:<published port>" for a port of the spec
// (its Port or one of its Ports) while the task runs (deploy.PortAddresser),
// or an error wrapping deploy.ErrPortNotPublished.
func (m *Machine) AddrOf(port int) (string, error) {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return eng.AddrOf("swarm", m.id, port, m.spec.Port, m.addr, m.ports)
}

// ID returns the machine ID: its service's ID in the short form docker
// service ls prints (12 characters), which docker service ps, docker service
// logs and docker service inspect take too. Restarts (new tasks) keep it.
func (m *Machine) ID() string { return m.id }

// ServiceID returns the full ID of the machine's service (ID is its short form).
func (m *Machine) ServiceID() string { return m.sid }

// ContainerID returns the ID of the current task's container on its node's
// engine, or "" before the task has one. A restart makes a new one.
func (m *Machine) ContainerID() string {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.container
}

// NodeID returns the ID of the node the machine is placed on.
func (m *Machine) NodeID() string {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.node
}

// Spec returns the machine's spec. Its Labels hold deploy.LabelApp and, when
// set, deploy.LabelVersion, besides the labels the spec was created with.
func (m *Machine) Spec() deploy.MachineSpec { return m.spec }

// Addr returns "<node address>:<published port>" once started, or "" before.
func (m *Machine) Addr() string {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.addr
}

// State returns the machine's state. While the machine runs (or is
// starting or stopping, or exited on its own with a policy that restarts it)
// it asks the manager, briefly, so a crash shows up as StateStopped and a
// restart as StateStarting or StateStarted; otherwise it returns the state
// the machine's methods last saw.
func (m *Machine) State() deploy.MachineState {
	return m.c.Fresh(m.Refresh, func() bool { // it exited on its own and may be restarted
		return m.c.State == deploy.StateStopped && m.started && !m.c.StopAsked && m.spec.Restart.Normalized().Policy != deploy.RestartNever
	})
}

// Refresh updates the machine's cached state and address from the manager.
func (m *Machine) Refresh(ctx context.Context) error {
	res, err := m.b.cli.ServiceInspect(ctx, m.sid, client.ServiceInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			m.markDestroyed()
		}
		return wrapErr("inspect", m.id, err)
	}
	tasks, err := m.tasks(ctx)
	if err != nil {
		return err
	}
	m.observeTasks(ctx, res.Service, tasks)
	return nil
}

func (m *Machine) tasks(ctx context.Context) ([]swarm.Task, error) {
	res, err := m.b.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", m.sid)})
	if err != nil {
		return nil, wrapErr("tasks", m.id, err)
	}
	return res.Items, nil
}

// Start sets the service's replicas to 1 and returns once its task runs
// (not once it is healthy), with Addr set. Starting a running machine does
// nothing. A task the swarm rejects (an image no node has, say) fails Start.
func (m *Machine) Start(ctx context.Context) error {
	var old string
	var restart bool
	prev, ok, err := m.c.BeginStart("swarm", m.id, func() {
		old, restart = m.task, m.started
		m.expectNew, m.restarts = true, 0
	})
	if !ok {
		return err
	}

	err = m.update(ctx, func(s *swarm.ServiceSpec) {
		one := uint64(1)
		s.Mode.Replicated.Replicas = &one
		if restart {
			s.TaskTemplate.ForceUpdate++ // a new task for a slot whose task exited
		}
		s.Labels[LabelStarted] = time.Now().UTC().Format(time.RFC3339Nano)
	})
	if err != nil {
		if !errors.Is(err, deploy.ErrNotFound) {
			m.c.SetIf(deploy.StateStarting, prev)
		}
		return err
	}
	m.c.Mu.Lock()
	m.started = true
	m.c.Mu.Unlock()
	lastNodeCheck := time.Now()
	for {
		tasks, err := m.tasks(ctx)
		if err != nil {
			return err
		}
		t := newest(tasks, old)
		if t != nil {
			m.observeTask(ctx, *t, 1)
			switch st := t.Status.State; {
			case st == swarm.TaskStateRunning:
				if m.Addr() == "" {
					return fmt.Errorf("swarm: start %s: no host port published for %d/tcp", m.id, m.spec.Port)
				}
				return nil
			case ranAndExited(*t):
				return nil // the process ran; Wait reports how it ended
			case terminal(st):
				return fmt.Errorf("swarm: start %s: task %s: %w: %s", m.id, st, deploy.ErrExited, taskErr(*t))
			case time.Since(lastNodeCheck) > 2*time.Second:
				// A task waits for its node (pending, assigned, ...): fail
				// when the node is gone rather than wait for it forever.
				lastNodeCheck = time.Now()
				if n, err := m.b.cli.NodeInspect(ctx, m.NodeID(), client.NodeInspectOptions{}); err == nil && n.Node.Status.State != swarm.NodeStateReady {
					return fmt.Errorf("swarm: start %s: %w: its node %s is %s (%s)", m.id, deploy.ErrTransient, m.NodeID(), n.Node.Status.State, taskErr(*t))
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm: start %s: %w", m.id, ctx.Err())
		case <-time.After(m.b.opts.PollInterval): // the task is on its way; look again
		}
	}
}

// Wait blocks until the machine's process exits, or ctx ends. For a created
// machine it waits for the next run to end. After Destroy it returns the last
// exit seen, if any. When the swarm restarts the machine (its Restart policy)
// the exit of the run that ended is returned, its reason saying
// "restarted by its restart policy".
func (m *Machine) Wait(ctx context.Context) (deploy.ExitStatus, error) {
	lastNodeCheck := time.Now()
	waited := "" // the container waitContainer last waited for
	m.c.Mu.Lock()
	runs := m.runs
	m.c.Mu.Unlock()
	for {
		if st, ok := m.c.ExitStatus(); ok {
			return st, nil
		}
		if st, ok := m.exitSince(runs); ok {
			return st, nil
		}
		if m.c.Now() == deploy.StateDestroyed {
			return deploy.ExitStatus{}, fmt.Errorf("swarm: wait %s: %w", m.id, deploy.ErrNotFound)
		}
		if err := ctx.Err(); err != nil {
			return deploy.ExitStatus{}, fmt.Errorf("swarm: wait %s: %w", m.id, err)
		}
		if err := m.Refresh(ctx); err != nil {
			if st, ok := m.c.ExitStatus(); ok {
				return st, nil
			}
			return deploy.ExitStatus{}, err
		}
		if st, ok := m.c.ExitStatus(); ok {
			return st, nil
		}
		if m.nodeGone(ctx, &lastNodeCheck) {
			st, _ := m.c.ExitStatus()
			return st, nil
		}
		// A running container on a known engine: wait for it there rather
		// than poll the manager, once per container (the manager learns of
		// its end a moment later, which the polling below then sees).
		if ne, cid := m.b.engine(m.NodeID()), m.ContainerID(); ne != nil && cid != "" && cid != waited && m.c.Now() == deploy.StateStarted {
			waited = cid
			if m.waitContainer(ctx, ne, cid, &lastNodeCheck) {
				st, _ := m.c.ExitStatus()
				return st, nil
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(m.b.opts.PollInterval): // the task runs; look again
		}
	}
}

// waitContainer blocks until container cid on its node's engine ne is not
// running, the engine fails the wait, or ctx ends, checking every 2s (last
// is when it last did) whether the node is down; it reports that it is, as
// nodeGone does.
func (m *Machine) waitContainer(ctx context.Context, ne *client.Client, cid string, last *time.Time) bool {
	w := eng.StartWait(ctx, ne, cid, container.WaitConditionNotRunning)
	defer w.Close()
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := w.Result(tctx, nil)
		cancel()
		if err == nil || tctx.Err() == nil || ctx.Err() != nil {
			return false // it stopped, the engine failed the wait, or ctx ended
		}
		if m.nodeGone(ctx, last) {
			return true
		}
	}
}

// Stop sets the service's replicas to 0: the swarm sends the spec's stop
// signal (default SIGTERM), waits up to the spec's stop timeout (default
// 10s, the service's StopGracePeriod), then kills. If ctx ends before the
// process exits, even before the signal is sent, the container is killed at
// once when its node's engine is known (Options.NodeEngines), and ctx's
// error returned. Stopping a stopped machine does nothing; stopping a
// destroyed one is ErrNotFound.
func (m *Machine) Stop(ctx context.Context) error {
	switch m.c.Now() {
	case deploy.StateDestroyed:
		return fmt.Errorf("swarm: stop %s: %w", m.id, deploy.ErrNotFound)
	case deploy.StateStopping:
		_, err := m.Wait(ctx)
		return err
	}
	octx, cancel := ownContext(ctx)
	err := m.Refresh(octx)
	cancel()
	if err != nil {
		return err
	}
	m.c.Mu.Lock()
	switch {
	case m.c.State == deploy.StateCreated:
		m.c.NeverStartedLocked()
		m.c.Mu.Unlock()
		return nil
	case m.c.State == deploy.StateStopped, m.c.State == deploy.StateDestroyed:
		m.c.Mu.Unlock()
		return nil
	}
	m.c.State = deploy.StateStopping
	m.c.StopAsked = true
	m.stopAt = time.Now()
	cid := m.container
	m.c.Mu.Unlock()

	grace := m.spec.StopTimeoutOrDefault()
	ne := m.b.engine(m.NodeID())
	var w *eng.Waiter
	if ne != nil && cid != "" {
		w = startWait(ctx, ne, cid)
		defer w.Close()
	}
	if ctx.Err() != nil {
		return m.kill(ctx, ne, cid)
	}
	if err := m.scaleZero(ctx); err != nil {
		if ctx.Err() != nil {
			return m.kill(ctx, ne, cid)
		}
		m.c.SetIf(deploy.StateStopping, deploy.StateStarted)
		return err
	}
	// The swarm kills at the grace; allow it some time past that.
	tctx, tcancel := context.WithTimeout(ctx, grace+15*time.Second)
	defer tcancel()
	lastNodeCheck := time.Now()
	for {
		if w != nil {
			r, err := w.Result(tctx, nil)
			switch {
			case err == nil:
				m.recordExit(int(r.StatusCode))
				return nil
			case tctx.Err() != nil:
				if ctx.Err() != nil {
					return m.kill(ctx, ne, cid)
				}
				return fmt.Errorf("swarm: stop %s: the task did not stop within %s", m.id, grace+15*time.Second)
			case ctx.Err() != nil && !cerrdefs.IsNotFound(err):
				return m.kill(ctx, ne, cid)
			}
			w = nil // removed already, or the engine failed: read the task instead
			continue
		}
		err := m.Refresh(tctx)
		if _, ok := m.c.ExitStatus(); ok {
			return nil
		}
		if err != nil && errors.Is(err, deploy.ErrNotFound) {
			return nil
		}
		if m.nodeGone(tctx, &lastNodeCheck) {
			return nil
		}
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return m.kill(ctx, ne, cid)
			}
			return fmt.Errorf("swarm: stop %s: the task did not stop within %s", m.id, grace+15*time.Second)
		case <-time.After(m.b.opts.PollInterval / 2): // the task is stopping; look again
		}
	}
}

// nodeGone checks, every 2s (last is when it last did), whether the
// machine's node is down: its task can neither run nor report its end. It
// then records the machine as stopped (killed with its node) and says so.
func (m *Machine) nodeGone(ctx context.Context, last *time.Time) bool {
	if time.Since(*last) < 2*time.Second || m.NodeID() == "" {
		return false
	}
	*last = time.Now()
	n, err := m.b.cli.NodeInspect(ctx, m.NodeID(), client.NodeInspectOptions{})
	if err != nil || n.Node.Status.State == swarm.NodeStateReady {
		return false
	}
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	if m.c.Exit == nil {
		m.c.Exit = &deploy.ExitStatus{Code: 137, Reason: fmt.Sprintf("its node %s is %s", m.node, n.Node.Status.State)}
	}
	if m.c.State != deploy.StateDestroyed {
		m.c.State = deploy.StateStopped
	}
	return true
}

// kill ends a stop cut short by ctx: replicas 0 in any case, and SIGKILL
// through the node's engine when known. It returns ctx's error.
func (m *Machine) kill(ctx context.Context, ne *client.Client, cid string) error {
	err := fmt.Errorf("swarm: stop %s: %w", m.id, ctx.Err())
	octx, cancel := ownContext(ctx)
	defer cancel()
	// Replicas 0 first, so that a restart policy does not replace the task the kill ends.
	if serr := m.scaleZero(octx); serr != nil && !errors.Is(serr, deploy.ErrNotFound) {
		err = errors.Join(err, serr)
	}
	if ne != nil && cid != "" {
		m.c.Mu.Lock()
		m.c.KillReason = "killed: stop cancelled"
		m.c.Mu.Unlock()
		w := startWait(octx, ne, cid)
		_, kerr := ne.ContainerKill(octx, cid, client.ContainerKillOptions{Signal: "SIGKILL"})
		if kerr == nil || cerrdefs.IsConflict(kerr) {
			if r, werr := w.Result(octx, nil); werr == nil {
				m.recordExit(int(r.StatusCode))
			}
		}
		w.Close()
	}
	return err
}

func (m *Machine) scaleZero(ctx context.Context) error {
	return m.update(ctx, func(s *swarm.ServiceSpec) {
		zero := uint64(0)
		s.Mode.Replicated.Replicas = &zero
	})
}

// update changes the service's spec, retrying when another update came first.
func (m *Machine) update(ctx context.Context, change func(*swarm.ServiceSpec)) error {
	for attempt := 0; ; attempt++ {
		res, err := m.b.cli.ServiceInspect(ctx, m.sid, client.ServiceInspectOptions{})
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				m.markDestroyed()
			}
			return wrapErr("update", m.id, err)
		}
		spec := res.Service.Spec
		if spec.Mode.Replicated == nil {
			return fmt.Errorf("swarm: update %s: %w: service %s is not replicated", m.id, deploy.ErrInvalid, m.sid)
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		change(&spec)
		_, err = m.b.cli.ServiceUpdate(ctx, m.sid, client.ServiceUpdateOptions{Version: res.Service.Version, Spec: spec})
		if err == nil {
			return nil
		}
		if attempt < 5 && strings.Contains(err.Error(), "out of sequence") {
			continue // another update came first: read it and apply ours on top
		}
		if cerrdefs.IsNotFound(err) {
			m.markDestroyed()
		}
		return wrapErr("update", m.id, err)
	}
}

// Destroy removes the service, killing its container first when its node's
// engine is known, and waits (briefly) for its task to be gone. Destroying a
// destroyed or already removed machine is not an error.
func (m *Machine) Destroy(ctx context.Context) error {
	m.c.Mu.Lock()
	st, cid := m.c.State, m.container
	m.c.Mu.Unlock()
	if st == deploy.StateDestroyed {
		return nil
	}
	if ne := m.b.engine(m.NodeID()); ne != nil && cid != "" && (st == deploy.StateStarted || st == deploy.StateStopping || st == deploy.StateStarting) {
		_, _ = ne.ContainerKill(ctx, cid, client.ContainerKillOptions{Signal: "SIGKILL"})
	}
	err := m.b.removeService(ctx, m.sid)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return wrapErr("destroy", m.id, err)
	}
	m.markDestroyed()
	// The task shuts down after the service is gone: wait for it, so that
	// its port is free and nothing is left when Destroy returns.
	wctx, cancel := context.WithTimeout(ctx, destroyWait)
	defer cancel()
	if n, err := m.b.cli.NodeInspect(wctx, m.NodeID(), client.NodeInspectOptions{}); err == nil && n.Node.Status.State != swarm.NodeStateReady {
		return nil // a task on a node that is gone never reports its end
	}
	for {
		tasks, err := m.tasks(wctx)
		if err != nil || len(tasks) == 0 {
			return nil
		}
		select {
		case <-wctx.Done():
			return nil // the swarm finishes it
		case <-time.After(m.b.opts.PollInterval): // the task is shutting down; look again
		}
	}
}

// LogOptions selects what ReadLogs returns: Follow streams until the task
// exits or ctx ends; Tail, when above 0, returns only the last Tail lines.
type LogOptions = eng.LogOptions

// Logs returns the service's stdout and stderr (from whichever node runs
// its task), demultiplexed into one stream. With follow it streams until the
// task exits or ctx ends.
func (m *Machine) Logs(ctx context.Context, follow bool) (io.ReadCloser, error) {
	return m.ReadLogs(ctx, LogOptions{Follow: follow})
}

// logFlush is how long a followed log keeps reading after the task ended:
// the swarm's log stream has no end, and the last lines arrive after the exit.
const logFlush = time.Second

// ReadLogs is Logs with options.
func (m *Machine) ReadLogs(ctx context.Context, opts LogOptions) (io.ReadCloser, error) {
	follow := opts.Follow
	if follow {
		if _, ok := m.c.ExitStatus(); ok {
			follow = false
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	lo := client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := m.b.cli.ServiceLogs(lctx, m.sid, lo)
	if err != nil {
		cancel()
		return nil, wrapErr("logs", m.id, err)
	}
	var (
		watching sync.WaitGroup
		ended    atomic.Bool // we ended the stream: the logs are complete
	)
	if follow {
		watching.Add(1)
		go func() { // ends the stream once the task has exited
			defer watching.Done()
			for {
				select {
				case <-lctx.Done():
					return
				case <-time.After(4 * m.b.opts.PollInterval): // poll the task's state
				}
				if _, ok := m.c.ExitStatus(); !ok && m.State() != deploy.StateDestroyed {
					continue
				}
				select {
				case <-lctx.Done():
				case <-time.After(logFlush):
					ended.Store(true)
					cancel()
				}
				return
			}
		}()
	}
	return eng.Demux(rc, cancel, func(err error) error {
		watching.Wait()
		if ended.Load() {
			return nil
		}
		return err
	}), nil
}

// observeTasks merges a service and its tasks into the cache.
func (m *Machine) observeTasks(ctx context.Context, s swarm.Service, tasks []swarm.Task) {
	replicas := uint64(1)
	if s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil {
		replicas = *s.Spec.Mode.Replicated.Replicas
	}
	m.c.Mu.Lock()
	if s.Spec.Labels[LabelStarted] != "" {
		m.started = true
	}
	cur := m.task
	m.c.Mu.Unlock()
	var t *swarm.Task
	for i := range tasks {
		if tasks[i].ID == cur {
			t = &tasks[i]
		}
	}
	if n := newest(tasks, ""); n != nil && (t == nil || n.CreatedAt.After(t.CreatedAt)) {
		if t != nil && terminal(t.Status.State) {
			m.observeTask(ctx, *t, replicas) // the run that ended, before the one replacing it
		}
		t = n
	}
	if t != nil {
		m.observeTask(ctx, *t, replicas)
		// What the task history shows, for a handle that did not see the
		// restarts (after observeTask, which counts the one it sees).
		if started, err := time.Parse(time.RFC3339Nano, s.Spec.Labels[LabelStarted]); err == nil {
			if n := countRestarts(tasks, started, t.ID); n > 0 {
				m.c.Mu.Lock()
				m.restarts = max(m.restarts, n)
				m.c.Mu.Unlock()
			}
		}
		return
	}
	// No task.
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	switch {
	case m.c.State == deploy.StateDestroyed:
	case replicas == 0 && !m.started:
		m.c.State = deploy.StateCreated
	case replicas == 0:
		if m.c.State == deploy.StateStarted || m.c.State == deploy.StateStopping || m.c.State == deploy.StateStarting || m.c.Exit == nil {
			m.inferExitLocked()
		}
	default:
		if m.c.State == deploy.StateCreated || m.c.State == deploy.StateStopped && m.c.Exit == nil {
			m.c.State = deploy.StateStarting
		}
	}
}

// observeTask merges one task into the cache.
func (m *Machine) observeTask(ctx context.Context, t swarm.Task, replicas uint64) {
	addr := ""
	var ports map[int]string
	if t.Status.State == swarm.TaskStateRunning && len(t.Status.PortStatus.Ports) > 0 {
		if host, err := m.b.nodeAddress(ctx, t.NodeID); err == nil {
			ports = make(map[int]string, len(t.Status.PortStatus.Ports))
			for _, p := range t.Status.PortStatus.Ports {
				// A node may list a port once per address family, on different
				// host ports: the first (IPv4) one is kept.
				if _, seen := ports[int(p.TargetPort)]; !seen && p.PublishedPort != 0 && p.Protocol != network.UDP && p.Protocol != network.SCTP {
					ports[int(p.TargetPort)] = net.JoinHostPort(host, strconv.Itoa(int(p.PublishedPort)))
				}
			}
			addr = ports[m.spec.Port]
		}
	}
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	if m.c.State == deploy.StateDestroyed {
		return
	}
	if t.ID != m.task && m.task != "" && !t.CreatedAt.After(m.taskAt) {
		return // an older task, from a listing made before the current task's
	}
	if t.ID != m.task {
		if m.task != "" && !m.expectNew && !m.c.StopAsked {
			// The swarm replaced the task: a restart, on a new port.
			if m.c.Exit != nil {
				prev := *m.c.Exit
				prev.Reason += "; restarted by its restart policy"
				m.prevExit = &prev
			}
			m.restarts++
			m.runs++
			m.c.Exit = nil
			m.c.KillReason = ""
			m.addr, m.ports = "", nil
		} else if m.task != "" && m.c.Exit != nil && !terminal(t.Status.State) {
			m.c.Exit = nil // a new run
		}
		m.expectNew = false
		m.task, m.taskAt = t.ID, t.CreatedAt
	}
	if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != "" {
		m.container = t.Status.ContainerStatus.ContainerID
	}
	if t.NodeID != "" {
		m.node = t.NodeID
	}
	if addr != "" {
		m.addr = addr
	}
	if ports != nil {
		m.ports = ports
	}
	switch st := t.Status.State; {
	case st == swarm.TaskStateRunning:
		if m.c.StopAsked || replicas == 0 || t.DesiredState != swarm.TaskStateRunning {
			m.c.State = deploy.StateStopping
		} else {
			m.c.State = deploy.StateStarted
		}
	case terminal(st):
		if m.c.Exit == nil {
			code := 0
			if t.Status.ContainerStatus != nil {
				code = t.Status.ContainerStatus.ExitCode
			}
			if t.Status.ContainerStatus == nil || (code < 0) {
				m.inferExitLocked()
				return
			}
			m.recordExitLocked(code)
		}
		m.c.State = deploy.StateStopped
	default:
		if m.c.Exit == nil {
			m.c.State = deploy.StateStarting
		}
	}
}

// inferExitLocked records the exit of a task that was stopped and removed
// before its exit code could be read: swarm either stopped it in its grace
// (0) or killed it at the grace (137).
func (m *Machine) inferExitLocked() {
	if m.c.Exit != nil {
		m.c.State = deploy.StateStopped
		return
	}
	switch {
	case m.c.StopAsked && time.Since(m.stopAt) >= m.spec.StopTimeoutOrDefault():
		m.c.Exit = &deploy.ExitStatus{Code: 137, Reason: "killed after stop timeout (inferred: the task was removed)"}
	case m.c.StopAsked:
		m.c.Exit = &deploy.ExitStatus{Code: 0, Reason: "stopped (inferred: the task was removed)"}
	default:
		m.c.Exit = &deploy.ExitStatus{Code: 0, Reason: "stopped elsewhere (replicas set to 0)"}
	}
	m.c.State = deploy.StateStopped
}

func (m *Machine) recordExit(code int) deploy.ExitStatus {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.recordExitLocked(code)
}

// recordExitLocked records the run's exit (the first one recorded wins).
func (m *Machine) recordExitLocked(code int) deploy.ExitStatus {
	return m.c.RecordExitLocked(code, time.Since(m.stopAt) >= m.spec.StopTimeoutOrDefault(), "")
}

// exitSince returns the exit of a run that ended and was replaced by a
// restart since runs.
func (m *Machine) exitSince(runs int) (deploy.ExitStatus, bool) {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	if m.runs == runs || m.prevExit == nil {
		return deploy.ExitStatus{}, false
	}
	return *m.prevExit, true
}

func (m *Machine) markDestroyed() {
	m.c.Mu.Lock()
	m.c.DestroyLocked()
	m.c.Mu.Unlock()
	m.b.mu.Lock()
	if m.b.machines[m.sid] == m {
		delete(m.b.machines, m.sid)
	}
	m.b.mu.Unlock()
}

// newest returns the most recently created task other than skip, or nil.
func newest(tasks []swarm.Task, skip string) *swarm.Task {
	var t *swarm.Task
	for i := range tasks {
		if tasks[i].ID == skip {
			continue
		}
		if t == nil || tasks[i].CreatedAt.After(t.CreatedAt) {
			t = &tasks[i]
		}
	}
	return t
}

func terminal(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// ranAndExited says whether a task's process ran and exited on its own.
func ranAndExited(t swarm.Task) bool {
	switch t.Status.State {
	case swarm.TaskStateComplete:
		return true
	case swarm.TaskStateFailed:
		return strings.HasPrefix(t.Status.Err, "task: non-zero exit")
	}
	return false
}

func taskErr(t swarm.Task) string {
	if t.Status.Err != "" {
		return t.Status.Err
	}
	return t.Status.Message
}

// startWait sends a wait request to a node's engine, cancelled only by its
// Close; it returns once the engine has registered it.
func startWait(ctx context.Context, ne *client.Client, cid string) *eng.Waiter {
	return eng.StartWait(context.WithoutCancel(ctx), ne, cid, container.WaitConditionNotRunning)
}
