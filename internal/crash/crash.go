// Package crash simulates a deploying process that dies: wrappers around a
// backend, its machines, a store and a router that fail every call once the
// process is marked dead, so a test can throw a Deployer away mid-deploy and
// let another one Recover.
package crash

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/cutover/deploy"
)

// ErrDead is what every call returns once the process is dead.
var ErrDead = errors.New("the deploying process is gone")

// Process is a deploying process that can die.
type Process struct{ dead atomic.Bool }

// Die makes every later call through the process's wrappers fail with ErrDead.
func (p *Process) Die() { p.dead.Store(true) }

// Dead reports whether Die was called.
func (p *Process) Dead() bool { return p.dead.Load() }

func (p *Process) or(f func() error) error {
	if p.Dead() {
		return ErrDead
	}
	return f()
}

// Backend returns b as seen by the process.
func (p *Process) Backend(b deploy.Backend) deploy.Backend { return backend{b, p} }

// Store returns s as seen by the process.
func (p *Process) Store(s deploy.Store) deploy.Store { return store{s, p} }

// Router returns r as seen by the process.
func (p *Process) Router(r deploy.Router) deploy.Router { return router{r, p} }

type backend struct {
	deploy.Backend
	p *Process
}

func (b backend) Create(ctx context.Context, s deploy.MachineSpec) (deploy.Machine, error) {
	if b.p.Dead() {
		return nil, ErrDead
	}
	m, err := b.Backend.Create(ctx, s)
	if err != nil {
		return nil, err
	}
	return machine{m, b.p}, nil
}

func (b backend) List(ctx context.Context, app string) ([]deploy.Machine, error) {
	if b.p.Dead() {
		return nil, ErrDead
	}
	ms, err := b.Backend.List(ctx, app)
	for i := range ms {
		ms[i] = machine{ms[i], b.p}
	}
	return ms, err
}

type machine struct {
	deploy.Machine
	p *Process
}

func (m machine) Start(ctx context.Context) error {
	return m.p.or(func() error { return m.Machine.Start(ctx) })
}

func (m machine) Stop(ctx context.Context) error {
	return m.p.or(func() error { return m.Machine.Stop(ctx) })
}

func (m machine) Destroy(ctx context.Context) error {
	return m.p.or(func() error { return m.Machine.Destroy(ctx) })
}

type store struct {
	deploy.Store
	p *Process
}

func (s store) Update(ctx context.Context, r deploy.Release) error {
	return s.p.or(func() error { return s.Store.Update(ctx, r) })
}

type router struct {
	deploy.Router
	p *Process
}

func (r router) SetTargets(ctx context.Context, t map[string]int) error {
	return r.p.or(func() error { return r.Router.SetTargets(ctx, t) })
}
