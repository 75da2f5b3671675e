package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Events of a scale (Deployer.Scale). In between come the machine events of
// the machines launched (created, started, healthy, routed) or removed
// (draining, stopped, destroyed).
const (
	ScaleStarted   EventType = "scale_started"   // Message has the counts, such as "2 -> 4", "web 2 -> 4" or "no change"
	ScaleSucceeded EventType = "scale_succeeded" // every group runs its count; Message as ScaleStarted's
	ScaleFailed    EventType = "scale_failed"    // Err says why; machines launched by the scale were removed
)

// Scale sets how many machines run app's current release, as `fly scale
// count N` does: no new release and no new version. See ScaleGroups; Scale
// scales the default process group (the first of a multi-group release; the
// only one otherwise).
func (d *Deployer) Scale(ctx context.Context, app string, count int) (*Result, error) {
	return d.ScaleGroups(ctx, app, map[string]int{"": count})
}

// ScaleGroups sets how many machines of each process group run app's
// current release: counts maps a group's name ("" for the default group) to
// its count, at least 1; groups left out keep theirs. It takes the app's
// deploy lock, as Deploy does.
//
// Machines are added with the spec of the current release (the newest stable
// release in the Store; without a Store, that of a machine of the group, as
// flyctl clones a machine's config): they start, pass their health checks
// (Deployer.Health; a NoService group's stay running) and then take traffic
// beside the others. Machines are removed after they leave traffic and
// drain: first those that do not run, then those the router sends no
// traffic to, then from the end of the backend's listing (flyctl destroys in
// the Machines API's listing order, without draining). Groups are scaled one
// after another, in the release's order.
//
// Like fly scale count, Scale creates no release. It records the new counts
// in the current release (Release.Count, ReleaseGroup.Count), so that
// Recover and Rollback restore the scaled count. When a group fails (a new
// machine does not pass its checks in time, ctx ends), the machines the
// scale launched in that group are removed, groups scaled before keep their
// new count (recorded), and the returned error says which group and why.
// It is refused with an error wrapping ErrInvalid when machines of another
// version run (a deploy kept half-way), and with ErrNotFound when the app
// has nothing to scale.
func (d *Deployer) ScaleGroups(ctx context.Context, app string, counts map[string]int) (*Result, error) {
	res := &Result{App: app, Strategy: "scale", Started: d.now(), Counts: map[EventType]int{}}
	fail := d.failer(res)
	if err := d.validateFields(); err != nil {
		return fail(fmt.Errorf("scale: %w", err))
	}
	if len(counts) == 0 {
		return fail(fmt.Errorf("scale %s: %w: no count given", app, ErrInvalid))
	}
	for g, n := range counts {
		if n < 1 {
			return fail(fmt.Errorf("scale %s: %w: %s to %d machines: want at least 1", app, ErrInvalid, groupName(g), n))
		}
	}
	unlock, err := d.acquire(ctx, app)
	if err != nil {
		return fail(err)
	}
	defer unlock()

	plan, err := d.scalePlan(ctx, app, counts)
	if err != nil {
		return fail(err)
	}
	res.Version, res.FromVersion = plan.version, plan.version
	if plan.rel != nil {
		res.Release = plan.rel.Version
	}
	log := d.logger().With("app", app)
	emit := d.counted(res, log)
	var change []string
	for _, g := range plan.groups {
		if g.count != len(g.machines) || len(plan.groups) == 1 {
			change = append(change, strings.TrimSpace(fmt.Sprintf("%s %d -> %d", g.name, len(g.machines), g.count)))
		}
	}
	if len(change) == 0 {
		change = []string{"no change"}
	}
	emit(Event{Type: ScaleStarted, App: app, Time: d.now(), Version: plan.version, Message: strings.Join(change, ", ")})

	routes := plan.routes
	wait := waitTimeout(d.WaitTimeout)
	var scaled []scaleGroup
	var machines []Machine // every group's, as the scale leaves them
	for _, g := range plan.groups {
		if g.count == len(g.machines) {
			machines = append(machines, g.machines...)
			continue
		}
		r := d.newRollout(g.spec, g.count, g.machines, d.groupHealth(g.spec), routes, emit)
		r.logger, r.WaitTimeout = log.With("group", g.name), wait
		if err = scaleOne(ctx, r); err != nil {
			if g.name != "" {
				err = fmt.Errorf("group %s: %w", g.name, err)
			}
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) { // say why, not which machine noticed
				err = &cancelledError{op: "scale", cause: context.Cause(ctx), err: ctx.Err()}
			}
			break
		}
		scaled = append(scaled, g)
		routes = r.currentRoutes()
		machines = append(append(machines, r.oldAlive()...), r.createdAlive()...)
	}
	if len(scaled) > 0 && plan.rel != nil {
		d.recordScale(context.WithoutCancel(ctx), *plan.rel, scaled)
	}
	if err != nil {
		after, _ := d.Backend.List(context.WithoutCancel(ctx), app) // what the cleanup left
		res.Machines = ids(appMachines(after))
		res.Status, res.Err, res.Finished = StatusFailed, err, d.now()
		emit(Event{Type: ScaleFailed, App: app, Time: d.now(), Version: plan.version, Err: err})
		return res, err
	}
	res.Status, res.Machines, res.Finished = StatusSucceeded, ids(machines), d.now()
	emit(Event{Type: ScaleSucceeded, App: app, Time: d.now(), Version: plan.version, Message: strings.Join(change, ", ")})
	return res, nil
}

// scaleGroup is one process group of a scale: its machines now, its spec
// and the count it is to run.
type scaleGroup struct {
	name     string
	spec     MachineSpec
	machines []Machine
	count    int
}

// scalePlan is what a scale works from: the current release, its version,
// its groups and the router's targets.
type scalePlan struct {
	rel     *Release // nil without a Store
	version string
	groups  []scaleGroup
	routes  map[string]int
}

func groupName(g string) string {
	if g == "" {
		return "the default group"
	}
	return "group " + g
}

// scalePlan finds app's current release and machines, and the count of each
// group after the scale.
func (d *Deployer) scalePlan(ctx context.Context, app string, counts map[string]int) (*scalePlan, error) {
	p := &scalePlan{}
	if d.Store != nil {
		rels, err := d.Store.List(ctx, app)
		if err != nil {
			return nil, phaseErr(nil, "release history", err)
		}
		if len(rels) > 0 && rels[0].Status == ReleaseRunning {
			return nil, fmt.Errorf("scale %s: %w: v%d is recorded running (a deploy in another process, or one interrupted and not yet recovered)", app, ErrDeployInProgress, rels[0].Version)
		}
		for i := range rels {
			if rels[i].Stable {
				p.rel = &rels[i]
				break
			}
		}
		if p.rel == nil {
			return nil, fmt.Errorf("scale %s: %w: no release to scale: deploy first", app, ErrNotFound)
		}
		p.version = "v" + strconv.Itoa(p.rel.Version)
	}
	all, err := d.Backend.List(ctx, app)
	if err != nil {
		return nil, phaseErr(nil, "list", err)
	}
	all = appMachines(all)
	for _, m := range all {
		v := m.Spec().Version
		if p.version == "" {
			p.version = v
		}
		if v != p.version {
			return nil, fmt.Errorf("scale %s: %w: machine %s runs %s, not the current release %s: deploy or roll back first", app, ErrInvalid, m.ID(), v, p.version)
		}
	}
	if p.version == "" {
		return nil, fmt.Errorf("scale %s: %w: no machine runs and no release is recorded: deploy first", app, ErrNotFound)
	}

	// The groups, in the release's order; a single-group app has one, "".
	var names []string
	specs := map[string]MachineSpec{}
	switch {
	case p.rel != nil && len(p.rel.Groups) > 0:
		for _, g := range p.rel.Groups {
			names = append(names, g.Name)
			specs[g.Name] = g.Spec
		}
	case p.rel != nil:
		names, specs[""] = []string{""}, p.rel.Spec
	default: // the machines say which groups there are
		seen := map[string]bool{}
		for _, m := range all {
			if g := m.Spec().Labels[LabelGroup]; !seen[g] {
				seen[g] = true
				names = append(names, g)
			}
		}
		sort.Strings(names)
	}
	first := names[0]
	by := map[string][]Machine{}
	for _, m := range all {
		g := first // a release without groups has one, whatever its machines' labels
		if len(names) > 1 || p.rel == nil {
			g = groupOf(m, first)
		}
		by[g] = append(by[g], m)
	}
	want := map[string]int{}
	for g, n := range counts {
		if g == "" {
			g = first
		}
		if _, ok := want[g]; ok {
			return nil, fmt.Errorf("scale %s: %w: %s given twice (it is the default group)", app, ErrInvalid, groupName(g))
		}
		want[g] = n
	}
	for g := range want {
		known := slices.Contains(names, g)
		switch {
		case !known && len(names) == 1 && names[0] == "":
			return nil, fmt.Errorf("scale %s: %w: no process group %q: the app has none; give its count alone", app, ErrInvalid, g)
		case !known:
			return nil, fmt.Errorf("scale %s: %w: no process group %q (groups: %s)", app, ErrInvalid, g, strings.Join(names, ", "))
		}
	}
	for _, name := range names {
		g := scaleGroup{name: name, machines: by[name], count: len(by[name])}
		if n, ok := want[name]; ok {
			g.count = n
		}
		spec, ok := specs[name]
		if !ok {
			if len(g.machines) == 0 {
				if g.count == 0 {
					continue
				}
				return nil, fmt.Errorf("scale %s: %w: %s has no machine to copy and no release is recorded", app, ErrNotFound, groupName(name))
			}
			spec = g.machines[0].Spec()
		}
		spec.App, spec.Version = app, p.version
		g.spec = labelled(spec, name)
		p.groups = append(p.groups, g)
	}

	if p.routes = d.targets(); p.routes == nil {
		p.routes = map[string]int{}
		for _, m := range all {
			if !noService(m.Spec()) && m.State() == StateStarted {
				p.routes[m.Addr()] = 1
			}
		}
	}
	return p, nil
}

// scaleOne brings r's machines (r.Old) to r.Count: new machines launched,
// healthy, then routed; or the extra ones out of traffic, drained, stopped
// and destroyed. A failure removes what it launched.
func scaleOne(ctx context.Context, r *Rollout) error {
	if add := r.Count - len(r.Old); add > 0 {
		news, err := r.LaunchNew(ctx, LaunchOptions{Count: add})
		if err == nil {
			err = r.AddRoutes(ctx, 1, news...)
		}
		if err == nil {
			err = r.checkAlive(ctx)
		}
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.undoTimeout())
			defer cancel()
			if uerr := r.Retire(cctx, r.createdAlive()...); uerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", uerr))
			}
		}
		return err
	}
	return r.Retire(ctx, scaleDownOrder(r.Old, r.currentRoutes())[:len(r.Old)-r.Count]...)
}

// scaleDownOrder orders machines for removal: those that do not run first,
// then those routes sends no traffic to (a scale routes a machine last: one
// an interrupted scale launched), then from the end of the backend's listing.
func scaleDownOrder(ms []Machine, routes map[string]int) []Machine {
	var down, unrouted, routed []Machine
	for i := len(ms) - 1; i >= 0; i-- {
		switch {
		case ms[i].State() != StateStarted:
			down = append(down, ms[i])
		case routes[ms[i].Addr()] <= 0:
			unrouted = append(unrouted, ms[i])
		default:
			routed = append(routed, ms[i])
		}
	}
	return slices.Concat(down, unrouted, routed)
}

// recordScale records the new counts of the groups scaled in rel, the
// current release.
func (d *Deployer) recordScale(ctx context.Context, rel Release, scaled []scaleGroup) {
	for _, g := range scaled {
		if len(rel.Groups) == 0 {
			rel.Count = g.count
			continue
		}
		for i := range rel.Groups {
			if rel.Groups[i].Name == g.name {
				rel.Groups[i].Count = g.count
				if i == 0 {
					rel.Count = g.count // Spec and Count are the first group's
				}
			}
		}
	}
	if err := d.Store.Update(ctx, rel); err != nil {
		d.logger().Error("release history: cannot record the scaled count", "app", rel.App, "version", rel.Version, "error", err)
	}
}
