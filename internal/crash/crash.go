// Package crash simulates a deploying process that dies: wrappers around a
// backend, its machines, a store and a router that fail every call once the
// process is marked dead, so a test can throw a Deployer away mid-deploy and
// let another one Recover.
package crash

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

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

// Store returns s as seen by the process; when s is a deploy.Locker, so is the
// result, and a dead process neither renews nor releases its lock.
func (p *Process) Store(s deploy.Store) deploy.Store {
	if l, ok := s.(deploy.Locker); ok {
		return lockingStore{store{s, p}, l}
	}
	return store{s, p}
}

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

type lockingStore struct {
	store
	l deploy.Locker
}

func (s lockingStore) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	return s.p.or(func() error { return s.l.Lock(ctx, app, owner, ttl) })
}

func (s lockingStore) Unlock(ctx context.Context, app, owner string) error {
	return s.p.or(func() error { return s.l.Unlock(ctx, app, owner) })
}

type router struct {
	deploy.Router
	p *Process
}

func (r router) SetTargets(ctx context.Context, t map[string]int) error {
	return r.p.or(func() error { return r.Router.SetTargets(ctx, t) })
}

// Recover runs d.Recover for app and, while the dead process's deploy lock
// holds (ErrDeployInProgress), again every 20ms until ctx ends. locked reports
// that the first attempt found the lock held.
func Recover(ctx context.Context, d *deploy.Deployer, app string) (res *deploy.Result, locked bool, err error) {
	res, err = d.Recover(ctx, app)
	locked = errors.Is(err, deploy.ErrDeployInProgress)
	for errors.Is(err, deploy.ErrDeployInProgress) {
		select {
		case <-ctx.Done():
			return nil, locked, err
		case <-time.After(20 * time.Millisecond): // the lock's expiry is not observable
		}
		res, err = d.Recover(ctx, app)
	}
	return res, locked, err
}
