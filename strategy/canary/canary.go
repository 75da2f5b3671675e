// Package canary deploys by sending a share of real traffic to new machines,
// analysing what the proxy observed, then rolling out or rolling back.
//
// Each step routes the canary machines at a traffic share through the router's
// weights (no cookie needed) and holds it for a bake time. During the bake the
// canary's error rate (5xx plus transport errors) and tail latency (p99, or a
// lower percentile while the canary has served too few requests to estimate
// p99; see Analysis) are compared with the old machines' over the same window,
// from the router's per-target statistics. A failing comparison or health
// check aborts at once: the canary leaves traffic, drains and is destroyed, and
// the old machines keep serving.
// After the last step the remaining machines are started and all traffic moves.
//
// The router must report statistics (deploy.StatsReporter, read through
// Rollout.Traffic): proxy.Proxy does, and a router of one's own can. For
// sticky assignment, so that one user sees one version for the whole canary,
// set the proxy's StickyHeader or StickyCookie.
package canary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cutover/deploy"
)

// Step is one stage of a canary.
type Step struct {
	Percent  int           // the canary machines' share of traffic, 1..99
	Machines int           // canary machines during the step; 0 means the previous step's (at least 1)
	Bake     time.Duration // how long the step is held; 0 means the Strategy's Bake
}

// DefaultSteps are one canary machine at 10%, then at 50%.
var DefaultSteps = []Step{{Percent: 10, Machines: 1}, {Percent: 50}}

// Defaults for zero fields.
const (
	DefaultBake                 = time.Minute
	DefaultInterval             = 250 * time.Millisecond
	DefaultMinRequests          = 50
	DefaultMaxErrorRateIncrease = 0.02
	DefaultMaxLatencyRatio      = 2.0
	DefaultLatencySlack         = 100 * time.Millisecond
)

// Analysis sets the thresholds a canary is held to during each step.
type Analysis struct {
	// MaxErrorRateIncrease is how much the canary's error rate may exceed the
	// baseline's (0.02 = 2 percentage points). Default 0.02.
	MaxErrorRateIncrease float64
	// The canary's tail latency may not exceed both MaxLatencyRatio times the
	// baseline's and the baseline's plus LatencySlack. Defaults 2 and 100ms.
	// Both are taken at p99 or, while the canary has served fewer than 500
	// requests in the window, at the highest whole percentile with at least 5
	// of them above it (p90 at 50 requests, p95 at 100): the slowest of a few
	// requests says little, and one slow request must not fail a canary.
	MaxLatencyRatio float64
	LatencySlack    time.Duration
	// MinRequests the canary must serve in a step before a verdict on its figures;
	// a step that ends with fewer passes on health alone (the event says so). Default 50.
	MinRequests uint64
	// Interval between analyses and health checks during a bake. Default 250ms.
	Interval time.Duration
}

// Strategy is a canary deploy. Its zero value runs DefaultSteps with a one-minute bake each.
type Strategy struct {
	Steps []Step
	Bake  time.Duration // how long each step is held; 0 means DefaultBake
	// MaxBake extends a step whose canary served fewer than Analysis.MinRequests
	// by its bake time: the step is held until it has, or until MaxBake from the
	// step's start. 0 means no extension.
	MaxBake  time.Duration
	Analysis Analysis
	Parallel int // machines started at once for the final roll-out; 0 means all
}

var _ deploy.Validator = Strategy{}

// Validate reports settings a canary cannot run with, with an error wrapping
// deploy.ErrInvalid that names the field: a step's Percent outside 1..99, a
// negative count or duration, a threshold that is negative or not a number.
// Deployer.Deploy calls it before it takes the app's lock.
func (s Strategy) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("canary: %w: %s %v: want %s", deploy.ErrInvalid, field, v, want)
	}
	for i, st := range s.Steps {
		switch {
		case st.Percent <= 0 || st.Percent >= 100:
			return bad(fmt.Sprintf("Steps[%d].Percent", i), st.Percent, "1..99")
		case st.Machines < 0:
			return bad(fmt.Sprintf("Steps[%d].Machines", i), st.Machines, "0 (the previous step's) or more")
		case st.Bake < 0:
			return bad(fmt.Sprintf("Steps[%d].Bake", i), st.Bake, "0 (the Strategy's Bake) or more")
		}
	}
	a := s.Analysis
	switch {
	case s.Bake < 0:
		return bad("Bake", s.Bake, "0 (the default) or more")
	case s.MaxBake < 0:
		return bad("MaxBake", s.MaxBake, "0 (no extension) or more")
	case s.Parallel < 0:
		return bad("Parallel", s.Parallel, "0 (all at once) or more")
	case !(a.MaxErrorRateIncrease >= 0) || math.IsInf(a.MaxErrorRateIncrease, 0):
		return bad("Analysis.MaxErrorRateIncrease", a.MaxErrorRateIncrease, "0 (the default) or a positive number")
	case !(a.MaxLatencyRatio >= 0) || math.IsInf(a.MaxLatencyRatio, 0):
		return bad("Analysis.MaxLatencyRatio", a.MaxLatencyRatio, "0 (the default) or a positive number")
	case a.LatencySlack < 0:
		return bad("Analysis.LatencySlack", a.LatencySlack, "0 (the default) or more")
	case a.Interval < 0:
		return bad("Analysis.Interval", a.Interval, "0 (the default) or more")
	}
	return nil
}

// Name returns "canary".
func (Strategy) Name() string { return "canary" }

// Deploy runs the steps, then rolls out the rest.
func (s Strategy) Deploy(ctx context.Context, r *deploy.Rollout) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if len(r.Old) == 0 { // nothing to compare with: a first deploy rolls out directly
		return s.rollOut(ctx, r, nil)
	}
	if _, err := r.Traffic(); err != nil {
		return fmt.Errorf("canary: %w", err)
	}
	steps := s.Steps
	if len(steps) == 0 {
		steps = DefaultSteps
	}
	var canaries []deploy.Machine
	for i, st := range steps {
		want := max(st.Machines, len(canaries), 1)
		want = min(want, r.Count)
		if more := want - len(canaries); more > 0 {
			ms, err := r.LaunchNew(ctx, deploy.LaunchOptions{Count: more})
			if err != nil {
				return err
			}
			canaries = append(canaries, ms...)
		}
		if err := r.Route(ctx, shares(r.Old, canaries, st.Percent)); err != nil {
			return err
		}
		bake := st.Bake
		if bake <= 0 {
			bake = orDefaultBake(s.Bake)
		}
		r.Emit(deploy.Event{Type: deploy.CanaryStep, Version: r.Spec.Version, Weight: st.Percent,
			Message: fmt.Sprintf("step %d/%d: %d canary machines at %d%% for %s", i+1, len(steps), len(canaries), st.Percent, bake)})
		if err := s.bake(ctx, r, canaries, bake); err != nil {
			return fmt.Errorf("canary step %d (%d%%): %w", i+1, st.Percent, err)
		}
	}
	return s.rollOut(ctx, r, canaries)
}

// shares weights old and canary machines so the canaries get pct percent of traffic.
func shares(old, canaries []deploy.Machine, pct int) map[deploy.Machine]int {
	w := make(map[deploy.Machine]int, len(old)+len(canaries))
	for _, m := range old {
		w[m] = len(canaries) * (100 - pct)
	}
	for _, m := range canaries {
		w[m] = len(old) * pct
	}
	return w
}

// rollOut starts the machines still missing, moves all traffic to the new
// version and retires the old machines.
func (s Strategy) rollOut(ctx context.Context, r *deploy.Rollout, canaries []deploy.Machine) error {
	news := canaries
	if more := r.Count - len(canaries); more > 0 {
		ms, err := r.LaunchNew(ctx, deploy.LaunchOptions{Count: more, Parallel: s.Parallel})
		if err != nil {
			return err
		}
		news = append(news, ms...)
	}
	next := make(map[deploy.Machine]int, len(news))
	for _, m := range news {
		next[m] = 1
	}
	if err := r.Route(ctx, next); err != nil {
		return err
	}
	return r.Retire(ctx, r.Old...)
}

func (s Strategy) bake(ctx context.Context, r *deploy.Rollout, canaries []deploy.Machine, bake time.Duration) error {
	a := s.Analysis.withDefaults()
	start, err := r.Traffic()
	if err != nil {
		return err
	}
	// The bake's timers are on the rollout's clock, so that a test with a fake
	// clock runs a one-minute step at once. A timer that fired is stopped or
	// reset only once the round it started is done (which tells a fake clock
	// that the round's real work is over), and tick is reset after each round,
	// so that rounds never pile up.
	clock := r.Clock()
	began := clock.Now()
	end := clock.NewTimer(bake)
	defer end.Stop()
	baked := false
	tick := clock.NewTimer(a.Interval)
	defer tick.Stop()
	fails := map[string]int{}
	for {
		var final bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C():
			baked = true
		case <-tick.C():
		}
		if ctx.Err() != nil { // it ended as a timer fired
			return ctx.Err()
		}
		for _, m := range canaries {
			if err := checkOnce(ctx, r.Health, m, a.Interval); err != nil {
				if fails[m.ID()]++; fails[m.ID()] >= 2 || errors.Is(err, deploy.ErrExited) {
					r.Emit(deploy.Event{Type: deploy.MachineUnhealthy, Machine: m.ID(), Version: m.Spec().Version, Err: err})
					return &deploy.PhaseError{Machine: m.ID(), Phase: "canary health", Err: fmt.Errorf("%w: %w", deploy.ErrUnhealthy, err)}
				}
			} else {
				fails[m.ID()] = 0
			}
		}
		now, err := r.Traffic()
		if err != nil {
			return err
		}
		v := a.judge(r.Old, canaries, start, now)
		final = baked && (!v.tooFew || clock.Now().Sub(began) >= s.MaxBake)
		if v.err != nil || final {
			r.Emit(deploy.Event{Type: deploy.CanaryAnalysis, Version: r.Spec.Version, Message: v.summary, Err: v.err})
			return v.err
		}
		if baked {
			end.Stop() // it fired: this round is done
		}
		tick.Reset(a.Interval)
	}
}

// checkOnce runs one health check of a routed canary, bounded in real time
// (it is network I/O), by the analysis interval and at least a second.
func checkOnce(ctx context.Context, hc deploy.HealthChecker, m deploy.Machine, timeout time.Duration) error {
	if st := m.State(); st != deploy.StateStarted {
		return fmt.Errorf("%w: machine is %s", deploy.ErrExited, st)
	}
	if n := deploy.RestartsOf(m); n > 0 { // it crashed during the bake
		return fmt.Errorf("%w: restarted %d time(s) by its restart policy", deploy.ErrExited, n)
	}
	if hc == nil {
		hc = deploy.DefaultCheck{}
	}
	ctx, cancel := context.WithTimeout(ctx, max(timeout, time.Second))
	defer cancel()
	return hc.Check(ctx, m)
}

func (a Analysis) withDefaults() Analysis {
	if a.MaxErrorRateIncrease <= 0 {
		a.MaxErrorRateIncrease = DefaultMaxErrorRateIncrease
	}
	if a.MaxLatencyRatio <= 0 {
		a.MaxLatencyRatio = DefaultMaxLatencyRatio
	}
	if a.LatencySlack <= 0 {
		a.LatencySlack = DefaultLatencySlack
	}
	if a.MinRequests == 0 {
		a.MinRequests = DefaultMinRequests
	}
	if a.Interval <= 0 {
		a.Interval = DefaultInterval
	}
	return a
}

// ErrAnalysis marks a canary that failed its analysis; it wraps deploy.ErrAborted.
var ErrAnalysis = fmt.Errorf("canary analysis failed: %w", deploy.ErrAborted)

type verdict struct {
	summary string
	err     error
	tooFew  bool // fewer canary requests than MinRequests: no verdict on figures
}

// minTail is the fewest of the canary's requests in a window that lie above the
// latency percentile the analysis compares (see Analysis.MaxLatencyRatio).
const minTail = 5

// percentile returns the latency percentile compared for a canary with n
// latency observations: 99, or the highest whole percentile with minTail of
// them above it, and at least 50.
func percentile(n uint64) int {
	if n == 0 {
		return 99
	}
	above := (100*minTail + n - 1) / n // minTail as a percentage of n, rounded up
	return 100 - int(min(above, 50))   // above >= 1 for any n > 0
}

// judge compares the canary's traffic since start with the baseline's.
func (a Analysis) judge(old, canaries []deploy.Machine, start, now map[string]deploy.Traffic) verdict {
	c := window(canaries, start, now)
	b := window(old, start, now)
	pc := percentile(c.Observations())
	cq, bq := c.Quantile(float64(pc)/100), b.Quantile(float64(pc)/100)
	sum := fmt.Sprintf("canary: %d requests, %.1f%% errors, p%d %s; baseline: %d requests, %.1f%% errors, p%d %s",
		c.Requests, 100*c.ErrorRate(), pc, cq, b.Requests, 100*b.ErrorRate(), pc, bq)
	if c.Requests < a.MinRequests {
		return verdict{summary: sum + fmt.Sprintf(" (fewer than %d canary requests: no verdict on figures)", a.MinRequests), tooFew: true}
	}
	if c.ErrorRate() > b.ErrorRate()+a.MaxErrorRateIncrease {
		return verdict{summary: sum, err: fmt.Errorf("%w: error rate %.1f%% vs baseline %.1f%% (allowed +%.1f points)", ErrAnalysis, 100*c.ErrorRate(), 100*b.ErrorRate(), 100*a.MaxErrorRateIncrease)}
	}
	if b.Requests > 0 && cq > time.Duration(float64(bq)*a.MaxLatencyRatio) && cq > bq+a.LatencySlack {
		return verdict{summary: sum, err: fmt.Errorf("%w: p%d latency %s vs baseline %s", ErrAnalysis, pc, cq, bq)}
	}
	return verdict{summary: sum}
}

// window adds up the machines' statistics between two snapshots.
func window(ms []deploy.Machine, start, now map[string]deploy.Traffic) deploy.Traffic {
	var total deploy.Traffic
	for _, m := range ms {
		total = total.Add(now[m.Addr()].Sub(start[m.Addr()]))
	}
	return total
}

// orDefaultBake is the bake a step holds for: bake, or DefaultBake when 0.
func orDefaultBake(bake time.Duration) time.Duration {
	if bake <= 0 {
		return DefaultBake
	}
	return bake
}
