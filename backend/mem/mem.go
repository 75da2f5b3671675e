// Package mem is an in-memory deploy.Backend for tests and examples.
//
// An image is an app registered by name: one http.Handler that all its
// machines share (Register), or a constructor called with each machine's
// spec, so that every machine runs an instance of its own, as every
// container runs a process of its own (RegisterPerMachine). Every machine
// serves its app on its own 127.0.0.1:0 listener, so health checks and proxy
// traffic are real HTTP. The other ports of a spec (MachineSpec.Ports) get a
// listener each too, once the app listens, serving the machine's app or a
// handler registered for that port (RegisterPort); Machine.AddrOf finds them.
//
// A command override (MachineSpec.Cmd, after MachineSpec.Entrypoint when
// set) runs a registered Go func instead and exits with its code, as a
// release command or a worker does.
//
// Faults are injected per image, per Nth machine of an image, or per machine:
// an app that listens late, never listens, or closes every connection; a
// failure to start; a crash or exit after a delay; a failing health endpoint;
// an app that ignores the stop signal; and errors on backend calls.
// Backend.PortForwarder fronts machines with a port forwarder, as Docker does.
//
// A serving machine that exits on its own (a crash fault, Kill, an exit
// fault) is restarted as its spec's Restart policy says, after RestartDelay,
// on a new loopback port, as a Docker container's ephemeral port changes.
// Command overrides run once and are never restarted.
package mem

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/cutover/deploy"
)

// CommandFunc runs a command override. It writes its output to out, returns
// its exit code, and must return soon after ctx ends (the machine was stopped).
type CommandFunc func(ctx context.Context, args []string, env map[string]string, out *Output) int

// Backend is an in-memory deploy.Backend. Create one with New; Close it when done.
type Backend struct {
	// NoListen, set right after New and before any machine is created, is a
	// mode for scale tests of the orchestration alone: started machines open no
	// listener and run no server, and their Addr is a synthetic unique address
	// ("m0001.mem.invalid:80") that nothing serves. Health checks must then use
	// a checker that does not dial (one that always passes); faults other than
	// start failures and operation errors (listening late, unhealthy
	// endpoint, crash or exit after a delay) have no effect, and no app is
	// made (an image's constructor is not called).
	NoListen bool
	// RestartDelay is how long a machine that exited on its own stays down
	// before its restart policy restarts it; 0 means DefaultRestartDelay.
	// Set it before machines start.
	RestartDelay time.Duration

	// PortForwarder, set right after New and before any machine is created,
	// fronts every machine the way Docker's published port does: a machine's
	// Addr is a forwarder's 127.0.0.1 port, which accepts connections from the
	// moment the machine starts, forwards each to the app, and closes it at once
	// while the app does not accept (it boots, never listens, or shuts down).
	// A bare successful dial then says nothing about the app, as on Docker.
	PortForwarder bool

	mu       sync.Mutex
	images   map[string]func(deploy.MachineSpec) http.Handler
	ports    map[string]map[int]http.Handler // image -> extra port -> handler
	commands map[string]CommandFunc
	machines map[string]*Machine // not yet destroyed
	faults   []*faultState
	perImage map[string]int // machines created per image, for Fault.Nth
	seq      int
	closed   bool
}

// New returns an empty Backend.
func New() *Backend {
	return &Backend{
		images:   map[string]func(deploy.MachineSpec) http.Handler{},
		ports:    map[string]map[int]http.Handler{},
		commands: map[string]CommandFunc{},
		machines: map[string]*Machine{},
		perImage: map[string]int{},
	}
}

// Register makes image runnable: all its machines serve h, one handler
// shared by them. An app that keeps state per machine (its start time, the
// requests it served) registers with RegisterPerMachine instead.
func (b *Backend) Register(image string, h http.Handler) {
	b.RegisterPerMachine(image, func(deploy.MachineSpec) http.Handler { return h })
}

// RegisterPerMachine makes image runnable with an app per machine, as every
// container runs a process of its own: each time a machine of image starts
// (and again when its restart policy restarts it, as a restarted process
// starts afresh), newApp is called with the machine's spec, and that run of
// the machine serves the handler it returns. Machine.Handler returns it.
// A nil handler fails the start.
func (b *Backend) RegisterPerMachine(image string, newApp func(spec deploy.MachineSpec) http.Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.images[image] = newApp
}

// RegisterPort makes machines of image serve h on port, one of their spec's
// Ports (deploy.MachineSpec.Ports); h is shared by the machines. A port of
// Ports with no handler registered serves the machine's app.
func (b *Backend) RegisterPort(image string, port int, h http.Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ports[image] == nil {
		b.ports[image] = map[int]http.Handler{}
	}
	b.ports[image][port] = h
}

// portHandler returns the handler of image's port, or h.
func (b *Backend) portHandler(image string, port int, h http.Handler) http.Handler {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ph := b.ports[image][port]; ph != nil {
		return ph
	}
	return h
}

// RegisterCommand makes a command override named name (MachineSpec.Cmd[0],
// or MachineSpec.Entrypoint[0] when set) runnable.
func (b *Backend) RegisterCommand(name string, fn CommandFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commands[name] = fn
}

// Inject adds a fault. Behaviour faults apply to machines started (or
// restarted by their restart policy) afterwards,
// Fault.Op errors to calls made afterwards.
func (b *Backend) Inject(f Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, &faultState{Fault: f})
}

// ClearFaults removes every injected fault.
func (b *Backend) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = nil
}

// Create creates a machine of spec, not yet started.
func (b *Backend) Create(ctx context.Context, spec deploy.MachineSpec) (deploy.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("mem: backend closed")
	}
	b.perImage[spec.Image]++
	nth := b.perImage[spec.Image]
	if err := b.opErrLocked(OpCreate, spec.Image, "", nth); err != nil {
		return nil, err
	}
	b.seq++
	id := fmt.Sprintf("m%04d", b.seq)
	m := newMachine(b, id, spec, nth)
	b.machines[id] = m
	return m, nil
}

// List returns the app's machines that are not destroyed, in creation order.
func (b *Backend) List(ctx context.Context, app string) ([]deploy.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.opErrLocked(OpList, "", "", 0); err != nil {
		return nil, err
	}
	var ms []*Machine
	for _, m := range b.machines {
		if m.spec.App == app {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	out := make([]deploy.Machine, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out, nil
}

// Get returns a machine that is not destroyed, or an error wrapping deploy.ErrNotFound.
func (b *Backend) Get(ctx context.Context, id string) (deploy.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := b.Machine(id)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Machine returns the concrete machine, for tests that kill it or toggle its health.
func (b *Backend) Machine(id string) (*Machine, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.machines[id]
	if !ok {
		return nil, fmt.Errorf("mem: machine %q: %w", id, deploy.ErrNotFound)
	}
	return m, nil
}

// Count returns how many machines exist (not destroyed), across apps.
func (b *Backend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.machines)
}

// Close kills and destroys every machine and refuses new ones. Injected
// faults do not apply to it.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	ms := make([]*Machine, 0, len(b.machines))
	for _, m := range b.machines {
		ms = append(ms, m)
	}
	b.mu.Unlock()
	for _, m := range ms {
		m.destroy()
	}
	return nil
}

func (b *Backend) forget(id string) {
	b.mu.Lock()
	delete(b.machines, id)
	b.mu.Unlock()
}

// lookup returns what a machine of spec runs: its image's app constructor,
// or its command override.
func (b *Backend) lookup(spec deploy.MachineSpec) (func(deploy.MachineSpec) http.Handler, CommandFunc, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if args := commandLine(spec); len(args) > 0 {
		fn, ok := b.commands[args[0]]
		if !ok {
			return nil, nil, fmt.Errorf("mem: command %q not registered: %w", args[0], deploy.ErrNotFound)
		}
		return nil, fn, nil
	}
	newApp, ok := b.images[spec.Image]
	if !ok {
		return nil, nil, fmt.Errorf("mem: image %q not registered: %w", spec.Image, deploy.ErrNotFound)
	}
	return newApp, nil, nil
}

// opErr returns the injected error for op on a machine, if any.
func (b *Backend) opErr(op Op, image, id string, nth int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opErrLocked(op, image, id, nth)
}

func (b *Backend) opErrLocked(op Op, image, id string, nth int) error {
	for _, f := range b.faults {
		if f.Op != op || !f.matches(image, id, nth) {
			continue
		}
		if f.Times > 0 && f.used >= f.Times {
			continue
		}
		f.used++
		err := f.Err
		if err == nil {
			err = ErrInjected
		}
		if f.Transient {
			return fmt.Errorf("mem: %s: %w: %w", op, deploy.ErrTransient, err)
		}
		return fmt.Errorf("mem: %s: %w", op, err)
	}
	return nil
}

func (b *Backend) faultsForLocked(image, id string, nth int) Fault {
	var eff Fault
	for _, f := range b.faults {
		if f.Op != "" || !f.matches(image, id, nth) {
			continue
		}
		eff = eff.merge(f.Fault)
	}
	return eff
}

// commandLine is what a machine of spec runs instead of its image's app:
// the entrypoint override, then the command override.
func commandLine(spec deploy.MachineSpec) []string {
	if len(spec.Entrypoint) == 0 {
		return spec.Cmd
	}
	return append(append([]string(nil), spec.Entrypoint...), spec.Cmd...)
}
