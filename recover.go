package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Recover finishes or undoes what a deploy of app left behind when its process
// stopped mid-way, from the release store and the backend's labels. If the interrupted version
// already serves at full count with nothing of the previous version left, it
// is kept (finished); otherwise the previous stable release is restored to its
// count and every machine of the interrupted version is removed. Each
// release still "running" then ends "rolled_back" (or "failed" when nothing
// served before it, "complete" when it was kept), its reason saying that its
// process stopped mid-deploy and what the recovery did. Temporary
// release-command machines are removed too. When no deploy was interrupted
// but the current release runs fewer machines than its count (they stopped
// with the process, as the mem backend's do), the missing ones are started
// and routed. Recover returns nil, nil when there is nothing to recover.
func (d *Deployer) Recover(ctx context.Context, app string) (*Result, error) {
	res, err := d.recoverApp(ctx, app)
	switch log := d.logger().With("app", app); {
	case err != nil:
		log.Warn("recovery failed", errArgs(err)...)
	case res != nil:
		log.Info("recovered", "status", res.Status, "version", res.Version, "from", res.FromVersion, "machines", len(res.Machines))
	}
	return res, err
}

// recoverApp is Recover.
func (d *Deployer) recoverApp(ctx context.Context, app string) (*Result, error) {
	if d.Store == nil {
		return nil, fmt.Errorf("recover: %w: Store must be set", ErrInvalid)
	}
	if err := d.validateFields(); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	unlock, err := d.acquire(ctx, app)
	if err != nil {
		return nil, err
	}
	defer unlock()

	rels, err := d.Store.List(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", app, err)
	}
	var running []Release
	var prev *Release // the newest stable release
	for i := range rels {
		if rels[i].Status == ReleaseRunning {
			running = append(running, rels[i])
		} else if rels[i].Stable && prev == nil {
			prev = &rels[i]
		}
	}
	all, err := d.Backend.List(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", app, err)
	}
	var orphans []Machine // release-command machines
	for _, m := range all {
		if m.Spec().Labels[LabelRole] == "release_command" {
			orphans = append(orphans, m)
		}
	}
	if len(running) == 0 && len(orphans) == 0 {
		if prev != nil && len(prev.Groups) == 0 { // a multi-group release keeps one group's spec and count in Spec
			return d.refill(ctx, app, *prev, appMachines(all))
		}
		return nil, nil
	}

	log := d.logger().With("app", app)
	res := &Result{App: app, Started: d.now(), Counts: map[EventType]int{}, Strategy: "recover"}
	emit := d.counted(res, log)
	var errs []error
	for _, m := range orphans {
		if err := m.Destroy(ctx); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, phaseErr(m, "destroy", err))
			continue
		}
		emit(Event{Type: MachineDestroyed, App: app, Time: d.now(), Machine: m.ID(), Version: m.Spec().Version, Message: "release command machine left by an interrupted deploy"})
	}

	interrupted := map[string]bool{}
	for _, rel := range running {
		interrupted["v"+strconv.Itoa(rel.Version)] = true
	}
	var news, olds []Machine
	for _, m := range appMachines(all) {
		switch {
		case interrupted[m.Spec().Version]:
			news = append(news, m)
		case m.State() == StateStarted:
			olds = append(olds, m)
		case len(running) > 0:
			// An old machine the interrupted deploy had stopped: restoring
			// starts a replacement, so remove it.
			if err := m.Destroy(ctx); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, phaseErr(m, "destroy", err))
				continue
			}
			emit(Event{Type: MachineDestroyed, App: app, Time: d.now(), Machine: m.ID(), Version: m.Spec().Version, Message: "stopped by an interrupted deploy; replaced"})
		}
	}

	routes := d.targets()
	newest := Release{}
	if len(running) > 0 {
		newest = running[0]
		res.Version = "v" + strconv.Itoa(newest.Version)
	}
	finish := len(olds) == 0 && len(news) > 0 && len(news) >= newest.Count && allRouted(news, routes)
	groups := grouped(newest, prev)
	if groups {
		finish = groupsFinished(newest, news, olds, routes)
	}
	if len(running) > 0 && !finish && groups {
		if err := d.undoGroups(ctx, newest, prev, news, olds, routes, emit); err != nil {
			errs = append(errs, err)
		}
		if prev != nil {
			res.FromVersion = "v" + strconv.Itoa(prev.Version)
		}
	} else if len(running) > 0 && !finish {
		spec := newest.Spec // of the machines to bring back
		if prev != nil {
			spec = prev.Spec
		}
		hc := d.groupHealth(spec)
		r := d.newRollout(newest.Spec, newest.Count, olds, hc, routes, emit)
		r.logger = log
		r.WaitTimeout = waitTimeout(d.WaitTimeout)
		r.created = news
		r.moved = true
		if prev != nil {
			restore := *prev
			v := "v" + strconv.Itoa(prev.Version)
			restore.Spec.App, restore.Spec.Version = app, v
			restore.Spec = labelled(restore.Spec, "")
			r.restore = &restore
		}
		if _, err := d.undo(ctx, r); err != nil {
			// Leave the releases running: the next Recover tries again.
			res.Status, res.Err, res.Finished = StatusFailed, err, d.now()
			return res, fmt.Errorf("recover %s: %w", app, errors.Join(append(errs, err)...))
		}
		if prev != nil {
			res.FromVersion = "v" + strconv.Itoa(prev.Version)
		}
	}

	// What the restart found and did, for the release records.
	what := "nothing was serving before: its machines were removed"
	if prev != nil {
		what = fmt.Sprintf("v%d was restored (%d machines) and its machines removed", prev.Version, prev.Count)
	}
	for _, rel := range running {
		rel.Finished = d.now()
		rel.Status = ReleaseFailed
		if prev != nil {
			rel.Status = ReleaseRolledBack
		}
		reason := "the process deploying it stopped before the deploy finished (killed or crashed); on restart " + what
		if finish && rel.Version == newest.Version {
			rel.Status, rel.Stable = ReleaseComplete, true
			reason = "the process deploying it stopped after the deploy had moved all traffic; on restart the deploy was kept"
		}
		if rel.Reason != "" {
			reason = rel.Reason + "; " + reason
		}
		rel.Reason = reason
		if err := d.Store.Update(ctx, rel); err != nil {
			errs = append(errs, fmt.Errorf("recover: release v%d: %w", rel.Version, err))
		}
	}
	after, _ := d.Backend.List(ctx, app)
	res.Machines = ids(appMachines(after))
	res.Finished = d.now()
	res.Status = StatusRolledBack
	if prev == nil {
		res.Status = StatusFailed
	}
	if finish {
		res.Status = StatusSucceeded
	}
	if err := errors.Join(errs...); err != nil {
		res.Status, res.Err = StatusFailed, err
		return res, fmt.Errorf("recover %s: %w", app, err)
	}
	return res, nil
}

func allRouted(ms []Machine, routes map[string]int) bool {
	if routes == nil {
		return false
	}
	for _, m := range ms {
		if routes[m.Addr()] <= 0 {
			return false
		}
	}
	return true
}

// refill brings the current release rel back to its count, when every app
// machine that runs is of its version: it starts and routes the machines it
// lacks (they stopped with the last process, as the mem backend's do), or
// retires the ones beyond it (a scale the last process did not finish: an
// interrupted scale is undone, as an interrupted deploy is); it returns nil,
// nil when the count is right.
func (d *Deployer) refill(ctx context.Context, app string, rel Release, ms []Machine) (*Result, error) {
	v := "v" + strconv.Itoa(rel.Version)
	var alive []Machine
	for _, m := range ms {
		if m.Spec().Version != v {
			return nil, nil // another version runs: not ours to change
		}
		if st := m.State(); st == StateStarted || st == StateStarting {
			alive = append(alive, m)
		}
	}
	missing := rel.Count - len(alive)
	if missing == 0 || rel.Count <= 0 { // a release that recorded no count: nothing to hold to
		return nil, nil
	}
	log := d.logger().With("app", app)
	res := &Result{App: app, Version: v, FromVersion: v, Release: rel.Version, Started: d.now(), Counts: map[EventType]int{}, Strategy: "recover"}
	spec := rel.Spec
	spec.App, spec.Version = app, v
	spec = labelled(spec, "")
	r := d.newRollout(spec, rel.Count, alive, d.groupHealth(spec), d.targets(), d.counted(res, log))
	r.logger = log
	r.WaitTimeout = waitTimeout(d.WaitTimeout)
	what, msg := fmt.Sprintf("restore %s to %d machines", v, rel.Count), fmt.Sprintf("restoring %d of the %d machines of %s (they stopped with the last process)", missing, rel.Count, v)
	if missing < 0 {
		what, msg = fmt.Sprintf("bring %s back to %d machines", v, rel.Count), fmt.Sprintf("removing %d machines beyond the %d of %s (a scale the last process did not finish)", -missing, rel.Count, v)
	}
	r.Emit(Event{Type: DeployStarted, Version: v, Message: msg})
	err := scaleOne(ctx, r)
	res.Finished = d.now()
	if err != nil {
		res.Status, res.Err = StatusFailed, err
		return res, fmt.Errorf("recover %s: %s: %w", app, what, err)
	}
	r.Emit(Event{Type: DeploySucceeded, Version: v, Message: "restored"})
	res.Status = StatusSucceeded
	res.Machines = ids(append(r.oldAlive(), r.createdAlive()...))
	return res, nil
}
