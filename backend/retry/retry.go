// Package retry wraps a deploy.Backend so that calls failing with an error
// that wraps deploy.ErrTransient are retried with exponential backoff, bounded
// in attempts and in time. Other errors return at once.
//
// The waits between attempts are on Options.Clock (real time by default), so
// that a test with a fake clock (deploytest.Clock) controls them; backoff's
// own Retry takes no clock, so the loop is this package's, with backoff's
// ExponentialBackOff for the intervals.
//
// A backend must report ErrTransient only when the failed call had no effect
// (a create that created nothing), so that a retry cannot act twice.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cutover/deploy"
)

// Options bound the retries. The zero value allows 5 attempts within 30s,
// starting about 50ms apart and growing 1.5 times each retry up to a quarter
// of MaxElapsed, with ±50% jitter on each wait.
type Options struct {
	MaxAttempts     uint          // attempts per call, the first included; 0 means 5
	MaxElapsed      time.Duration // time per call, all attempts included; 0 means 30s
	InitialInterval time.Duration // first wait; 0 means 50ms
	// OnRetry, when set, is told of each failed attempt that will be retried.
	OnRetry func(op string, err error, wait time.Duration)
	// Clock times the waits and MaxElapsed; nil means real time.
	Clock deploy.Clock
}

// Wrap returns b with retries on transient errors, for Create, List and Get and
// for the Start, Stop and Destroy of the machines it returns.
func Wrap(b deploy.Backend, opts Options) deploy.Backend {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 5
	}
	if opts.MaxElapsed <= 0 {
		opts.MaxElapsed = 30 * time.Second
	}
	if opts.InitialInterval <= 0 {
		opts.InitialInterval = 50 * time.Millisecond
	}
	if opts.Clock == nil {
		opts.Clock = deploy.RealClock{}
	}
	return &wrapped{b: b, o: opts}
}

type wrapped struct {
	b deploy.Backend
	o Options
}

// Unwrap returns the backend being retried.
func (w *wrapped) Unwrap() deploy.Backend { return w.b }

// do calls f until it succeeds, fails with an error that is not transient,
// or runs out of attempts or time; it waits between attempts on o.Clock.
func do[T any](ctx context.Context, o Options, op string, f func() (T, error)) (T, error) {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = o.InitialInterval
	eb.MaxInterval = o.MaxElapsed / 4
	started := o.Clock.Now()
	for attempt := uint(1); ; attempt++ {
		v, err := f()
		if err == nil || !errors.Is(err, deploy.ErrTransient) || attempt >= o.MaxAttempts {
			return v, err
		}
		if cerr := context.Cause(ctx); cerr != nil {
			return v, cerr
		}
		next := eb.NextBackOff()
		if next == backoff.Stop || o.Clock.Now().Sub(started)+next > o.MaxElapsed {
			return v, err
		}
		if o.OnRetry != nil {
			o.OnRetry(op, err, next)
		}
		t := o.Clock.NewTimer(next)
		select {
		case <-t.C():
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return v, context.Cause(ctx)
		}
	}
}

func (w *wrapped) Create(ctx context.Context, spec deploy.MachineSpec) (deploy.Machine, error) {
	m, err := do(ctx, w.o, "create", func() (deploy.Machine, error) { return w.b.Create(ctx, spec) })
	if err != nil {
		return nil, err
	}
	return w.machine(m), nil
}

func (w *wrapped) List(ctx context.Context, app string) ([]deploy.Machine, error) {
	ms, err := do(ctx, w.o, "list", func() ([]deploy.Machine, error) { return w.b.List(ctx, app) })
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		ms[i] = w.machine(m)
	}
	return ms, nil
}

func (w *wrapped) Get(ctx context.Context, id string) (deploy.Machine, error) {
	m, err := do(ctx, w.o, "get", func() (deploy.Machine, error) { return w.b.Get(ctx, id) })
	if err != nil {
		return nil, err
	}
	return w.machine(m), nil
}

func (w *wrapped) machine(m deploy.Machine) deploy.Machine {
	if lr, ok := m.(deploy.LogReader); ok {
		return &logMachine{machine{m, w.o}, lr}
	}
	return &machine{m, w.o}
}

type machine struct {
	deploy.Machine
	o Options
}

// Unwrap returns the machine being retried.
func (m *machine) Unwrap() deploy.Machine { return m.Machine }

func (m *machine) Start(ctx context.Context) error   { return m.do(ctx, "start", m.Machine.Start) }
func (m *machine) Stop(ctx context.Context) error    { return m.do(ctx, "stop", m.Machine.Stop) }
func (m *machine) Destroy(ctx context.Context) error { return m.do(ctx, "destroy", m.Machine.Destroy) }

func (m *machine) do(ctx context.Context, op string, f func(context.Context) error) error {
	_, err := do(ctx, m.o, op, func() (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

type logMachine struct {
	machine
	deploy.LogReader
}
