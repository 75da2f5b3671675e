package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// Group is one process group of a multi-group deploy (Request.Groups): its
// machines run their own spec (typically their own command) and are counted,
// checked and moved to the new release separately, one group after another
// with the request's strategy, in one release. A group whose spec has
// NoService is never routed and is ready once its machines stay running.
type Group struct {
	Name   string        // such as "web" or "worker"; labelled LabelGroup on its machines
	Spec   MachineSpec   // the group's new version; Spec.App is the request's app
	Count  int           // machines to end with; 0 keeps the group's count (at least 1)
	Health HealthChecker // nil: StaysRunning for NoService, else Deployer.Health
}

// groupHealth is the checker for spec when the request gives none.
func (d *Deployer) groupHealth(spec MachineSpec) HealthChecker {
	if spec.NoService {
		return StaysRunning{}
	}
	return d.Health
}

// labelled returns spec with the labels the Deployer sets on an app machine
// of it (of process group group; "" for none) added to its own.
func labelled(spec MachineSpec, group string) MachineSpec {
	l := map[string]string{LabelApp: spec.App, LabelVersion: spec.Version, LabelRole: "app"}
	if spec.NoService {
		l[LabelNoService] = "true"
	}
	if group != "" {
		l[LabelGroup] = group
	}
	spec.Labels = withLabels(spec.Labels, l)
	return spec
}

func noService(s MachineSpec) bool { return s.NoService || s.Labels[LabelNoService] == "true" }

// groupOf names the group a machine belongs to: its LabelGroup, or first
// for a machine of a single-group release.
func groupOf(m Machine, first string) string {
	if g := m.Spec().Labels[LabelGroup]; g != "" {
		return g
	}
	return first
}

// deployGroups deploys every group of req in one release: each group with
// strat in order; when one fails, the groups already moved are restored too.
// Machines of groups the request no longer has are retired once all succeed.
func (d *Deployer) deployGroups(ctx context.Context, req Request, strat Strategy, res *Result) (*Result, error) {
	fail := d.failer(res)
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = WithTimeout(ctx, d.Clock, d.Timeout)
		defer cancel()
	}
	app := req.Spec.App
	log := d.logger().With("app", app)
	all, err := d.Backend.List(ctx, app)
	if err != nil {
		return fail(phaseErr(nil, "list", err))
	}
	all = appMachines(all)
	first := req.Groups[0].Name
	oldBy := map[string][]Machine{}
	for _, m := range all {
		oldBy[groupOf(m, first)] = append(oldBy[groupOf(m, first)], m)
	}
	want := map[string]bool{}
	specs := make([]MachineSpec, len(req.Groups))
	counts := make([]int, len(req.Groups))
	for i, g := range req.Groups {
		want[g.Name] = true
		specs[i], counts[i] = g.Spec, g.Count
		if counts[i] <= 0 {
			counts[i] = max(len(oldBy[g.Name]), 1)
		}
	}
	var orphans []Machine
	for name, ms := range oldBy {
		if !want[name] {
			orphans = append(orphans, ms...)
		}
	}
	version := req.Spec.Version
	if d.Store != nil {
		rel := Release{
			App: app, Status: ReleaseRunning, Strategy: strat.Name(), Description: req.Description,
			User: req.User, Image: specs[0].Image, Started: res.Started, Spec: specs[0], Count: counts[0], Config: req.Config,
		}
		for i, g := range req.Groups {
			rel.Groups = append(rel.Groups, ReleaseGroup{Name: g.Name, Spec: specs[i], Count: counts[i]})
		}
		rel, err = d.Store.Create(ctx, rel)
		if err != nil {
			return fail(phaseErr(nil, "release history", err))
		}
		res.Release = rel.Version
		log = log.With("release", rel.Version)
		version = "v" + strconv.Itoa(rel.Version)
		fctx := context.WithoutCancel(ctx)
		defer func() { d.finishGroupsRelease(fctx, rel, specs, res) }() // specs as labelled below
	}
	if version == "" {
		version = nextVersion(all)
	}
	res.Version = version
	if len(all) > 0 {
		res.FromVersion = all[0].Spec().Version
	}
	for i, g := range req.Groups {
		specs[i].Version = version
		specs[i] = labelled(specs[i], g.Name)
	}
	var routes map[string]int
	if len(all) > 0 {
		routes = d.targets()
	}
	emit := d.counted(res, log)
	wait := waitTimeout(req.WaitTimeout, d.WaitTimeout)
	shared := &sharedTargets{full: copyWeights(routes)}
	if routes == nil {
		shared.full = map[string]int{}
		for _, m := range all {
			if !noService(m.Spec()) {
				shared.full[m.Addr()] = 1
			}
		}
	}
	newGroupRollout := func(i int) *Rollout {
		hc := req.Groups[i].Health
		if hc == nil {
			if hc = req.Health; hc == nil || specs[i].NoService {
				hc = d.groupHealth(specs[i])
			}
		}
		r := d.newRollout(specs[i], counts[i], oldBy[req.Groups[i].Name], hc, shared.snapshot(), emit)
		r.router = &scopedRouter{rt: d.Router, shared: shared, r: r}
		r.logger = log.With("group", req.Groups[i].Name)
		r.WaitTimeout = wait
		return r
	}

	msg := fmt.Sprintf("strategy=%s groups=%d from=%q", res.Strategy, len(req.Groups), res.FromVersion)
	for i, g := range req.Groups {
		msg += fmt.Sprintf(" %s=%d", g.Name, counts[i])
	}
	emit(Event{Type: DeployStarted, App: app, Time: d.now(), Version: version, Message: msg})
	var done []*Rollout
	err = nil
	if len(req.ReleaseCommand) > 0 {
		err = d.runReleaseCommand(ctx, newGroupRollout(0), req.ReleaseCommand, req.ReleaseCommandTimeout)
		if err != nil {
			emit(Event{Type: DeployFailed, App: app, Time: d.now(), Version: version, Err: err})
			return fail(err)
		}
	}
	for i, g := range req.Groups {
		r := newGroupRollout(i)
		done = append(done, r)
		r.logger.Info("deploying group", "machines", counts[i], "version", version)
		if err = strat.Deploy(ctx, r); err == nil {
			err = r.checkAlive(ctx)
		}
		res.Downtime += r.downtime
		if err != nil {
			err = fmt.Errorf("group %s: %w", g.Name, err)
			break
		}
	}
	if err == nil {
		for _, r := range done { // every group is up: the last check of the first groups
			if err = r.checkAlive(ctx); err != nil {
				break
			}
		}
	}
	if err == nil && len(orphans) > 0 {
		r := d.newRollout(specs[0], 0, orphans, nil, shared.snapshot(), emit)
		r.router = &scopedRouter{rt: d.Router, shared: shared, r: r}
		r.logger = log
		if rerr := r.Retire(ctx, orphans...); rerr != nil {
			log.Warn("machines of groups no longer deployed were not all removed", "error", rerr)
		}
	}
	if err == nil {
		res.Status = StatusSucceeded
		for _, r := range done {
			res.Machines = append(res.Machines, ids(r.createdAlive())...)
		}
		emit(Event{Type: DeploySucceeded, App: app, Time: d.now(), Version: version})
		res.Finished = d.now()
		return res, nil
	}

	res.Status = StatusFailed
	emit(Event{Type: DeployFailed, App: app, Time: d.now(), Version: version, Err: err})
	var uerrs []error
	rolledBack := false
	for i := len(done) - 1; i >= 0; i-- {
		rb, uerr := d.undo(context.WithoutCancel(ctx), done[i])
		rolledBack = rolledBack || rb
		if uerr != nil {
			uerrs = append(uerrs, uerr)
		}
	}
	if rolledBack {
		res.Status = StatusRolledBack
		emit(Event{Type: DeployRolledBack, App: app, Time: d.now(), Version: res.FromVersion, Message: "previous version restored", Err: err})
	}
	if uerr := errors.Join(uerrs...); uerr != nil {
		err = errors.Join(err, fmt.Errorf("cleanup: %w", uerr))
	}
	serving, _ := d.Backend.List(context.WithoutCancel(ctx), app)
	res.Machines = ids(appMachines(serving))
	res.Err, res.Finished = err, d.now()
	return res, err
}

// finishGroupsRelease is finishRelease for a multi-group release: it records
// the groups' specs as their machines run them (version and labels).
func (d *Deployer) finishGroupsRelease(ctx context.Context, rel Release, specs []MachineSpec, res *Result) {
	for i := range rel.Groups {
		rel.Groups[i].Spec = specs[i]
	}
	rel.Spec = specs[0]
	d.finishRelease(ctx, rel, res)
}

// grouped reports whether recovering from newest to prev involves process groups.
func grouped(newest Release, prev *Release) bool {
	return len(newest.Groups) > 0 || prev != nil && len(prev.Groups) > 0
}

// groupsFinished reports whether an interrupted multi-group release had
// finished: nothing of the previous release left, every group at its count,
// and the machines of every serving group routed.
func groupsFinished(newest Release, news, olds []Machine, routes map[string]int) bool {
	if len(olds) > 0 || len(news) == 0 || len(newest.Groups) == 0 {
		return false
	}
	first := newest.Groups[0].Name
	by := map[string][]Machine{}
	for _, m := range news {
		by[groupOf(m, first)] = append(by[groupOf(m, first)], m)
	}
	for _, g := range newest.Groups {
		ms := by[g.Name]
		if len(ms) < g.Count || !g.Spec.NoService && !allRouted(ms, routes) {
			return false
		}
	}
	return true
}

// undoGroups restores every group of prev (the previous stable release, nil
// for none) after the interrupted multi-group release newest: per group,
// the machines of newest go and prev's are brought back to its count.
func (d *Deployer) undoGroups(ctx context.Context, newest Release, prev *Release, news, olds []Machine, routes map[string]int, emit func(Event)) error {
	first := ""
	switch {
	case prev != nil && len(prev.Groups) > 0:
		first = prev.Groups[0].Name
	case len(newest.Groups) > 0:
		first = newest.Groups[0].Name
	}
	var names []string
	seen := map[string]bool{}
	addName := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if prev != nil {
		for _, g := range prev.Groups {
			addName(g.Name)
		}
	}
	for _, g := range newest.Groups {
		addName(g.Name)
	}
	newBy, oldBy := map[string][]Machine{}, map[string][]Machine{}
	for _, m := range news {
		addName(groupOf(m, first))
		newBy[groupOf(m, first)] = append(newBy[groupOf(m, first)], m)
	}
	for _, m := range olds {
		addName(groupOf(m, first))
		oldBy[groupOf(m, first)] = append(oldBy[groupOf(m, first)], m)
	}
	full := copyWeights(routes)
	if routes == nil {
		full = map[string]int{}
		for _, m := range olds {
			if !noService(m.Spec()) {
				full[m.Addr()] = 1
			}
		}
	}
	shared := &sharedTargets{full: full}
	var errs []error
	for _, name := range names {
		spec, count := newest.Spec, newest.Count
		for _, g := range newest.Groups {
			if g.Name == name {
				spec, count = g.Spec, g.Count
			}
		}
		var restore *Release
		if prev != nil {
			restore = &Release{} // a group prev does not have: none of it stays
			if len(prev.Groups) == 0 && name == first {
				restore = &Release{Spec: prev.Spec, Count: prev.Count}
			}
			for _, g := range prev.Groups {
				if g.Name == name {
					restore = &Release{Spec: g.Spec, Count: g.Count}
				}
			}
		}
		hc := d.Health
		if restore != nil && restore.Count > 0 && restore.Spec.NoService || restore == nil && spec.NoService {
			hc = StaysRunning{}
		}
		r := d.newRollout(spec, count, oldBy[name], hc, shared.snapshot(), emit)
		r.router = &scopedRouter{rt: d.Router, shared: shared, r: r}
		r.logger = d.logger().With("app", newest.App, "group", name)
		r.WaitTimeout = waitTimeout(d.WaitTimeout)
		r.created = newBy[name]
		for _, m := range r.created {
			r.byAddr[m.Addr()] = m
		}
		r.moved = true
		r.restore = restore
		if _, err := d.undo(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// groupsRequest is the request that redeploys a multi-group release.
func groupsRequest(rel Release) Request {
	req := Request{Spec: rel.Spec, Count: rel.Count, Config: rel.Config}
	for _, g := range rel.Groups {
		req.Groups = append(req.Groups, Group{Name: g.Name, Spec: g.Spec, Count: g.Count})
	}
	return req
}

// sharedTargets is the router's whole target set during a multi-group
// deploy, which each group's rollout changes only in its own addresses.
type sharedTargets struct {
	mu   sync.Mutex
	full map[string]int
}

func (s *sharedTargets) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyWeights(s.full)
}

// scopedRouter is the Router of one group's rollout: it sets the targets of
// that group's machines (its old ones and those it launched) and keeps every
// other group's, so a group's strategy (or its undo) that routes "only the
// new machines" leaves the other groups serving.
type scopedRouter struct {
	rt     Router
	shared *sharedTargets
	r      *Rollout // the group's rollout: its machines are those in r.byAddr
}

// SetTargets replaces this group's targets with targets, keeping the others.
func (s *scopedRouter) SetTargets(ctx context.Context, targets map[string]int) error {
	s.r.mu.Lock()
	mine := make(map[string]bool, len(s.r.byAddr))
	for a := range s.r.byAddr {
		mine[a] = true
	}
	s.r.mu.Unlock()
	s.shared.mu.Lock()
	next := make(map[string]int, len(s.shared.full)+len(targets))
	for a, w := range s.shared.full {
		if !mine[a] {
			next[a] = w
		}
	}
	for a, w := range targets {
		next[a] = w
	}
	s.shared.full = next
	s.shared.mu.Unlock()
	return s.rt.SetTargets(ctx, copyWeights(next))
}

var _ RouterWrapper = (*scopedRouter)(nil)

// Unwrap returns the router it scopes, for callers that look for its abilities.
func (s *scopedRouter) Unwrap() Router { return s.rt }
