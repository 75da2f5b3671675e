package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/deploy"
)

// Exit codes the mem backend reports.
const (
	ExitKilled  = 137 // killed after the stop timeout, or destroyed while running
	ExitCrashed = 1   // an injected crash or start failure
)

// Machine is one in-memory machine. It implements deploy.Machine and deploy.LogReader.
type Machine struct {
	b    *Backend
	id   string
	spec deploy.MachineSpec
	nth  int

	mu       sync.Mutex
	state    deploy.MachineState
	fault    Fault        // the behaviour faults, read at Start
	app      http.Handler // what this run serves: the image's app
	addr     string       // where clients reach the app: its own address, or its forwarder's
	fwd      *forwarder   // with Backend.PortForwarder; closed when the machine exits
	srv      *http.Server
	extra    map[int]string       // spec.Ports -> address, once listening
	extraSrv map[int]*http.Server // spec.Ports other than the app port -> its server
	cancel   context.CancelFunc   // ends the command or the boot wait
	killed   bool                 // kill began: its exit status wins over a graceful one
	timers   []*time.Timer
	exitOnce sync.Once
	exit     deploy.ExitStatus
	exited   chan struct{}
	bg       sync.WaitGroup

	stopAsked    bool        // Stop or Destroy began: an exit now is not restarted
	restartTimer *time.Timer // exited on its own: the pending restart, else nil
	restarts     int         // restarts done by the restart policy

	unhealthy atomic.Bool
	failing   atomic.Bool
	out       *Output
}

func newMachine(b *Backend, id string, spec deploy.MachineSpec, nth int) *Machine {
	return &Machine{b: b, id: id, spec: spec, nth: nth, state: deploy.StateCreated, exited: make(chan struct{}), out: newOutput()}
}

// ID returns the machine's ID, such as "m0001".
func (m *Machine) ID() string { return m.id }

// Spec returns the spec the machine was created from.
func (m *Machine) Spec() deploy.MachineSpec { return m.spec }

// Addr returns the 127.0.0.1:port the machine serves on, once started.
func (m *Machine) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// State returns the machine's lifecycle state.
func (m *Machine) State() deploy.MachineState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// SetHealthy makes the health endpoint pass (true) or answer 503 (false) from now on.
func (m *Machine) SetHealthy(ok bool) { m.unhealthy.Store(!ok) }

// SetFailing makes every request, health checks included, answer 503 (true),
// as an app that broke while running, or serve normally again (false).
func (m *Machine) SetFailing(failing bool) { m.failing.Store(failing) }

// Start starts the machine: its app listens on a fresh loopback port (after any
// ListenAfter fault), or its command override runs.
func (m *Machine) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.b.opErr(OpStart, m.spec.Image, m.id, m.nth); err != nil {
		return err
	}
	h, cmd, err := m.newRun()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != deploy.StateCreated {
		return fmt.Errorf("mem: machine %s is %s, not created", m.id, m.state)
	}
	// Behaviour faults are read now, so those injected after Create apply.
	m.b.mu.Lock()
	m.fault = m.b.faultsForLocked(m.spec.Image, m.id, m.nth)
	m.b.mu.Unlock()
	f := m.fault
	m.state = deploy.StateStarting
	if f.FailStart {
		m.state = deploy.StateStopped
		m.exitLocked(deploy.ExitStatus{Code: ExitCrashed, Reason: "failed to start (injected)"})
		return fmt.Errorf("mem: machine %s failed to start: %w", m.id, ErrInjected)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if cmd != nil {
		m.state = deploy.StateStarted
		m.bg.Add(1)
		go m.runCommand(runCtx, cmd)
		return nil
	}
	if m.b.NoListen {
		m.addr = m.id + ".mem.invalid:80"
		m.state = deploy.StateStarted
		return nil
	}
	ln, res, err := m.listenLocked(f)
	if err != nil {
		cancel()
		m.state = deploy.StateStopped
		m.exitLocked(deploy.ExitStatus{Code: ExitCrashed, Reason: err.Error()})
		return err
	}
	m.serversLocked(h)
	m.state = deploy.StateStarted
	m.bg.Add(1)
	go m.serve(runCtx, ln, res, f)
	m.armFaultsLocked(f)
	return nil
}

// newRun returns what a new run of the machine runs: a new instance of its
// image's app (none in the backend's NoListen mode), or its command override.
// No lock is held: the image's constructor is the user's code.
func (m *Machine) newRun() (http.Handler, CommandFunc, error) {
	newApp, cmd, err := m.b.lookup(m.spec)
	if err != nil || cmd != nil || m.b.NoListen {
		return nil, cmd, err
	}
	h := newApp(m.spec)
	if h == nil {
		return nil, nil, fmt.Errorf("mem: image %q: its app is a nil handler", m.spec.Image)
	}
	return h, nil, nil
}

// Handler returns the app the machine's current (or last) run serves: the
// handler its image's constructor made for it (Backend.RegisterPerMachine),
// or the image's shared handler (Backend.Register). It is nil before Start
// and for a command override. A test type-asserts it to read the app's state.
func (m *Machine) Handler() http.Handler {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.app
}

// serversLocked makes the servers of a run that serves app: the app port's,
// and one per other port of the spec (listening once the app does). m.mu is held.
func (m *Machine) serversLocked(app http.Handler) {
	m.app = app
	m.srv = m.newServer(app)
	m.extra, m.extraSrv = nil, map[int]*http.Server{}
	for _, p := range m.spec.Ports {
		if p > 0 && p != m.spec.Port {
			m.extraSrv[p] = m.newServer(m.b.portHandler(m.spec.Image, p, app))
		}
	}
}

// listenLocked gives a run of the machine its address: a listener, or, for
// an app that boots late or never listens, a reservation of the port it will
// listen on; with the backend's PortForwarder, a forwarder in front of it
// whose address becomes m.addr. m.mu is held.
func (m *Machine) listenLocked(f Fault) (net.Listener, *reservation, error) {
	var ln net.Listener
	var res *reservation
	var err error
	if f.ListenAfter > 0 || f.NeverListen {
		if res, err = reserve(); err == nil {
			m.addr = res.addr
		}
	} else if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
		m.addr = ln.Addr().String()
	}
	if err == nil && m.b.PortForwarder {
		if m.fwd, err = newForwarder(m.addr); err == nil {
			m.addr = m.fwd.addr()
		} else if ln != nil {
			ln.Close()
		} else {
			res.close()
		}
	}
	return ln, res, err
}

// armFaultsLocked starts the timers of f's crash and exit faults for this run. m.mu is held.
func (m *Machine) armFaultsLocked(f Fault) {
	if f.CrashAfter > 0 {
		m.timers = append(m.timers, time.AfterFunc(f.CrashAfter, func() { m.kill(ExitCrashed, "crashed (injected)") }))
	}
	if f.ExitAfter > 0 {
		code := f.ExitCode
		m.timers = append(m.timers, time.AfterFunc(f.ExitAfter, func() { m.shutdown(code, "exited on its own (injected)") }))
	}
}

// serve serves on ln, or, for a booting app, listens on res after the boot
// delay (never, with NeverListen). With CloseConns it closes every connection
// it accepts instead of serving it.
func (m *Machine) serve(ctx context.Context, ln net.Listener, res *reservation, f Fault) {
	defer m.bg.Done()
	if ln == nil {
		var after <-chan time.Time
		if !f.NeverListen {
			t := time.NewTimer(f.ListenAfter)
			defer t.Stop()
			after = t.C
		}
		select {
		case <-ctx.Done():
			res.close()
			return
		case <-after:
		}
		var err error
		if ln, err = res.listen(); err != nil {
			go m.kill(ExitCrashed, "listen after boot: "+err.Error())
			return
		}
	}
	if f.CloseConns {
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	m.mu.Lock()
	srv := m.srv
	m.mu.Unlock()
	m.serveExtra(ctx)
	_ = srv.Serve(ln) // returns on Shutdown or Close
}

// serveExtra listens on the spec's other ports, as the app does once it
// listens on its own.
func (m *Machine) serveExtra(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil || m.state != deploy.StateStarted {
		return
	}
	for port, srv := range m.extraSrv {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue // AddrOf reports the port unpublished
		}
		if m.extra == nil {
			m.extra = map[int]string{}
		}
		m.extra[port] = ln.Addr().String()
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			_ = srv.Serve(ln)
		}()
	}
}

// AddrOf returns the address that serves port, one of the spec's Ports, once
// the app listens; deploy.ErrPortNotPublished before, or for another port.
func (m *Machine) AddrOf(port int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if port == m.spec.Port && m.addr != "" {
		return m.addr, nil
	}
	if a := m.extra[port]; a != "" {
		return a, nil
	}
	return "", fmt.Errorf("mem: machine %s: port %d: %w", m.id, port, deploy.ErrPortNotPublished)
}

func (m *Machine) runCommand(ctx context.Context, fn CommandFunc) {
	defer m.bg.Done()
	code := fn(ctx, commandLine(m.spec)[1:], m.spec.Env, m.out)
	reason := "exited"
	if ctx.Err() != nil {
		reason = "stopped"
	}
	m.mu.Lock()
	m.state = deploy.StateStopped
	m.exitLocked(deploy.ExitStatus{Code: code, Reason: reason})
	m.mu.Unlock()
}

// newServer returns the machine's HTTP server. On shutdown it closes
// connections that never carried a request (a client's spare dial), which
// net/http would otherwise wait 5s for; in-flight requests still finish.
func (m *Machine) newServer(h http.Handler) *http.Server {
	var mu sync.Mutex
	fresh := map[net.Conn]bool{}
	srv := &http.Server{
		Handler:           m.wrap(h),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			if st == http.StateNew {
				fresh[c] = true
			} else {
				delete(fresh, c)
			}
		},
	}
	srv.RegisterOnShutdown(func() { // runs after the listeners closed
		mu.Lock()
		defer mu.Unlock()
		for c := range fresh {
			c.Close()
		}
	})
	return srv
}

// wrap serves h, except that the health path answers 503 when the machine is unhealthy.
func (m *Machine) wrap(h http.Handler) http.Handler {
	path := m.fault.HealthPath
	if path == "" {
		path = "/health"
	}
	unhealthy := m.fault.Unhealthy
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.failing.Load() {
			http.Error(w, "failing (injected)", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == path && (unhealthy || m.unhealthy.Load()) {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Machine-Id", m.id)
		h.ServeHTTP(w, r)
	})
}

// Wait blocks until the machine's current run exits or ctx ends. While a
// restart is pending it returns the exit of the run that ended.
func (m *Machine) Wait(ctx context.Context) (deploy.ExitStatus, error) {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.exit, nil
	case <-ctx.Done():
		return deploy.ExitStatus{}, ctx.Err()
	}
}

// Stop shuts the app down gracefully: in-flight requests finish within the
// spec's stop timeout, after which the machine is killed (exit 137). If ctx
// ends first the machine is killed and ctx's error returned; if it has ended
// already, the machine is killed at once.
func (m *Machine) Stop(ctx context.Context) error {
	if err := m.b.opErr(OpStop, m.spec.Image, m.id, m.nth); err != nil {
		return err
	}
	m.mu.Lock()
	switch m.state {
	case deploy.StateDestroyed:
		m.mu.Unlock()
		return fmt.Errorf("mem: machine %s: %w", m.id, deploy.ErrNotFound)
	case deploy.StateCreated:
		m.state = deploy.StateStopped
		m.exitLocked(deploy.ExitStatus{Reason: "never started"})
		m.mu.Unlock()
		return nil
	case deploy.StateStopped:
		m.mu.Unlock()
		return nil
	case deploy.StateStarting:
		if m.cancelRestartLocked() { // down, waiting to restart: it stays down
			m.stopAsked = true
			m.mu.Unlock()
			return nil
		}
	case deploy.StateStopping:
		m.mu.Unlock()
		_, err := m.Wait(ctx)
		return err
	}
	m.state = deploy.StateStopping
	m.stopAsked = true
	slow := m.fault.IgnoreStopFor
	m.mu.Unlock()
	if err := ctx.Err(); err != nil { // no time left for a graceful stop
		m.kill(ExitKilled, "killed: stop cancelled")
		return err
	}

	timeout := m.spec.StopTimeoutOrDefault()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if slow > 0 {
			t := time.NewTimer(slow) // the app ignores the signal for a while
			select {
			case <-t.C:
			case <-m.exited:
				t.Stop()
				return
			}
		}
		m.shutdown(0, "stopped")
	}()
	select {
	case <-done:
		return nil
	case <-deadline.C:
		m.kill(ExitKilled, "killed after stop timeout")
		<-done
		return nil
	case <-ctx.Done():
		m.kill(ExitKilled, "killed: stop cancelled")
		<-done
		return ctx.Err()
	}
}

// shutdown stops the app gracefully, waiting for in-flight requests, and exits with code.
func (m *Machine) shutdown(code int, reason string) {
	m.mu.Lock()
	srv, cancel, extra := m.srv, m.cancel, m.extraSrv
	m.mu.Unlock()
	if cancel != nil {
		cancel() // ends a command override or a boot wait
	}
	for _, x := range extra {
		_ = x.Shutdown(context.Background())
	}
	if srv != nil {
		_ = srv.Shutdown(context.Background())
	}
	m.bg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.killed {
		return
	}
	if m.state != deploy.StateDestroyed {
		m.state = deploy.StateStopped
	}
	m.exitLocked(deploy.ExitStatus{Code: code, Reason: reason})
	m.maybeRestartLocked(code)
}

// Kill ends the machine abruptly, as a crash or SIGKILL would: open
// connections are reset and the machine exits with code 137.
func (m *Machine) Kill() { m.kill(ExitKilled, "killed") }

func (m *Machine) kill(code int, reason string) {
	m.mu.Lock()
	if m.state == deploy.StateDestroyed || m.state == deploy.StateStopped || m.state == deploy.StateCreated || m.restartTimer != nil {
		m.mu.Unlock()
		return
	}
	m.killed = true
	srv, cancel, extra := m.srv, m.cancel, m.extraSrv
	for _, t := range m.timers {
		t.Stop()
	}
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, x := range extra {
		x.Close()
	}
	if srv != nil {
		srv.Close() // closes listeners and connections; a concurrent Shutdown returns
	}
	m.bg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != deploy.StateDestroyed {
		m.state = deploy.StateStopped
	}
	m.exitLocked(deploy.ExitStatus{Code: code, Reason: reason})
	m.maybeRestartLocked(code)
}

// exitLocked records the first exit. m.mu is held.
func (m *Machine) exitLocked(st deploy.ExitStatus) {
	m.exitOnce.Do(func() {
		m.exit = st
		for _, t := range m.timers {
			t.Stop()
		}
		if m.fwd != nil {
			m.fwd.close() // as Docker unpublishes a stopped container's port
		}
		m.out.close()
		close(m.exited)
	})
}

// Destroy kills the machine if it runs and removes it. Destroying twice is fine.
func (m *Machine) Destroy(ctx context.Context) error {
	if err := m.b.opErr(OpDestroy, m.spec.Image, m.id, m.nth); err != nil {
		return err
	}
	m.destroy()
	return nil
}

// destroy kills the machine if it runs and removes it, with no injected fault.
func (m *Machine) destroy() {
	m.mu.Lock()
	m.stopAsked = true
	m.cancelRestartLocked()
	m.mu.Unlock()
	m.kill(ExitKilled, "destroyed while running")
	m.mu.Lock()
	if m.state == deploy.StateCreated {
		m.exitLocked(deploy.ExitStatus{Reason: "never started"})
	}
	m.state = deploy.StateDestroyed
	fwd := m.fwd
	m.mu.Unlock()
	if fwd != nil {
		fwd.wait()
	}
	m.b.forget(m.id)
}

// Logs returns the machine's output (a command override's writes). With
// follow, reads block for more until the machine exits or ctx ends.
func (m *Machine) Logs(ctx context.Context, follow bool) (io.ReadCloser, error) {
	return m.out.reader(ctx, follow), nil
}

// Output collects a machine's output. It is safe for concurrent use.
type Output struct {
	mu     sync.Mutex
	data   []byte
	more   chan struct{} // closed and replaced on each write
	closed bool
}

func newOutput() *Output { return &Output{more: make(chan struct{})} }

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errors.New("mem: output closed: machine exited")
	}
	o.data = append(o.data, p...)
	close(o.more)
	o.more = make(chan struct{})
	return len(p), nil
}

func (o *Output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		close(o.more)
	}
}

func (o *Output) reader(ctx context.Context, follow bool) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	return &outputReader{o: o, ctx: ctx, cancel: cancel, follow: follow}
}

type outputReader struct {
	o      *Output
	ctx    context.Context
	cancel context.CancelFunc
	follow bool
	off    int
}

func (r *outputReader) Read(p []byte) (int, error) {
	for {
		r.o.mu.Lock()
		if r.off < len(r.o.data) {
			n := copy(p, r.o.data[r.off:])
			r.off += n
			r.o.mu.Unlock()
			return n, nil
		}
		closed, more := r.o.closed, r.o.more
		r.o.mu.Unlock()
		if closed || !r.follow {
			return 0, io.EOF
		}
		select {
		case <-more:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *outputReader) Close() error {
	r.cancel()
	return nil
}
