package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Labels this backend sets on every service besides those the Docker
// backend sets on its containers (docker.LabelManaged, docker.LabelNamespace,
// ..., the same keys), deploy.LabelApp, deploy.LabelVersion and the spec's
// own labels. They are bookkeeping and are not part of a machine's
// Spec().Labels.
const (
	LabelImage   = "cutover.image"   // spec.Image as given (the task may name the image by ID)
	LabelNode    = "cutover.node"    // the node ID the machine is placed on
	LabelStarted = "cutover.started" // the latest Start's time: replicas 0 then means stopped, not created
)

// NodeLabelPrefix starts the spec labels that name node labels to run on: a
// spec label "cutover.node.disk" = "ssd" places the machine on nodes labelled
// disk=ssd (node.labels.disk==ssd). deploy.LabelRegion maps to the node label
// "region" the same way.
const NodeLabelPrefix = "cutover.node."

// RegionNodeLabel is the node label deploy.LabelRegion (fly.toml's
// primary_region) is matched against.
const RegionNodeLabel = "region"

// DefaultPort is the app port used when a spec sets none.
const DefaultPort = eng.DefaultPort

// DefaultNamespace is the namespace used when Options.Namespace is empty.
const DefaultNamespace = eng.DefaultNamespace

// Options configures a Backend. The zero value is valid.
type Options struct {
	// Host is a swarm manager's engine address, such as
	// "unix:///var/run/docker.sock". Empty: DOCKER_HOST, or the platform default.
	Host string
	// Namespace isolates backends that share one swarm: services are
	// labelled with it, and List and Get see only their own namespace.
	// Empty: DefaultNamespace.
	Namespace string
	// NamePrefix starts every service name ("<prefix>-<app>-<version>-<n>",
	// n the lowest number free). Empty: "cutover".
	NamePrefix string
	// LocalImages makes each task name its image by the ID it has on the
	// manager's engine, so that no node ever pulls it: for images loaded into
	// every node's engine beforehand (docker save | docker load), as on a
	// swarm with no registry. Default false: nodes pull the image by name from
	// its registry, as a real swarm does.
	LocalImages bool
	// NodeEngines maps a node ID to that node's engine address. With it, a
	// Stop cut short by its ctx kills the task's container at once, and a
	// stop's exit code is read from the node's engine. The engine of the
	// manager this backend talks to is always known. Without an entry, a
	// cut-short Stop returns ctx's error while swarm finishes the stop with
	// its grace period, and the exit code of a stop is inferred from how long
	// it took (0 before the stop timeout, 137 after it).
	NodeEngines map[string]string
	// PollInterval is how often task states are polled; 0 means 100ms.
	PollInterval time.Duration
}

// Backend runs machines as swarm services of one replica. It is safe for
// concurrent use. Close it when done.
type Backend struct {
	cli  *client.Client
	opts Options
	self string // the node ID of the engine cli talks to

	placeMu sync.Mutex // held from placing a machine to creating its service, so concurrent Creates spread

	mu       sync.Mutex
	machines map[string]*Machine       // by service ID (full): one handle per service
	engines  map[string]*client.Client // node engines, by node ID
	addrs    map[string]string         // node addresses, by node ID
}

var _ deploy.Backend = (*Backend)(nil)

// New connects to a manager's engine, negotiating the API version, and checks
// that it is a swarm manager. An unreachable engine gives an error wrapping
// deploy.ErrTransient; an engine that is not a manager, deploy.ErrInvalid.
func New(ctx context.Context, opts Options) (*Backend, error) {
	eng.Defaults(&opts.Namespace, &opts.NamePrefix)
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	cli, err := eng.Dial(ctx, "swarm", opts.Host, "")
	if err != nil {
		return nil, err
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		_ = cli.Close()
		return nil, wrapErr("info", "", err)
	}
	if !info.Info.Swarm.ControlAvailable {
		_ = cli.Close()
		return nil, fmt.Errorf("swarm: %w: the engine is not a swarm manager (swarm state %q)", deploy.ErrInvalid, info.Info.Swarm.LocalNodeState)
	}
	b := &Backend{cli: cli, opts: opts, self: info.Info.Swarm.NodeID,
		machines: map[string]*Machine{}, engines: map[string]*client.Client{}, addrs: map[string]string{}}
	for node, host := range opts.NodeEngines {
		if node == b.self {
			continue
		}
		ec, err := client.New(client.WithHost(host))
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("swarm: node %s engine %s: %w: %w", node, host, deploy.ErrInvalid, err)
		}
		b.engines[node] = ec
	}
	return b, nil
}

// Close releases the clients' connections. Machines stay as they are.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.engines {
		_ = c.Close()
	}
	b.engines = map[string]*client.Client{}
	return b.cli.Close()
}

// Namespace returns the backend's namespace.
func (b *Backend) Namespace() string { return b.opts.Namespace }

// Client returns the manager's client (for images, nodes and anything else
// the backend does not do).
func (b *Backend) Client() *client.Client { return b.cli }

// engine returns the client of a node's engine, or nil when none is known.
func (b *Backend) engine(node string) *client.Client {
	if node == "" {
		return nil
	}
	if node == b.self {
		return b.cli
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.engines[node]
}

// Create creates a service of zero replicas from spec: a machine not yet
// started, whose ID is the service's ID in short form. spec.Port defaults to
// DefaultPort. The machine is placed on the ready node (among those its node
// labels allow) that runs fewest of the app's machines, so an app's machines
// spread over the nodes. The service is named "<prefix>-<app>-<version>-<n>"
// with the lowest n free (a swarm cannot rename a service, so the name cannot
// hold its ID).
func (b *Backend) Create(ctx context.Context, spec deploy.MachineSpec) (deploy.Machine, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	spec = normalize(spec)
	labels, err := b.labels(spec)
	if err != nil {
		return nil, err
	}
	b.placeMu.Lock()
	defer b.placeMu.Unlock()
	svcs, err := b.list(ctx, nil)
	if err != nil {
		return nil, err
	}
	node, err := b.place(ctx, spec, svcs)
	if err != nil {
		return nil, err
	}
	labels[LabelNode] = node
	image := spec.Image
	if b.opts.LocalImages {
		img, err := b.cli.ImageInspect(ctx, spec.Image)
		if err != nil {
			return nil, wrapErr("create: image", "", err)
		}
		image = img.ID
	}
	grace := spec.StopTimeoutOrDefault()
	sig := spec.StopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	replicas := uint64(0)
	constraints := []string{"node.id==" + node}
	constraints = append(constraints, nodeConstraints(spec.Labels)...)
	ports := []swarm.PortConfig{{Protocol: network.TCP, TargetPort: uint32(spec.Port), PublishMode: swarm.PortConfigPublishModeHost}}
	for _, p := range eng.ExtraPorts(spec) { // published in host mode too, each on an ephemeral port
		ports = append(ports, swarm.PortConfig{Protocol: network.TCP, TargetPort: uint32(p), PublishMode: swarm.PortConfigPublishModeHost})
	}
	svc := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           image,
				Command:         spec.Entrypoint,
				Args:            spec.Cmd,
				Env:             eng.EnvList(spec.Env),
				Labels:          map[string]string{eng.LabelManaged: "true", eng.LabelNamespace: b.opts.Namespace, deploy.LabelApp: spec.App},
				StopSignal:      sig,
				StopGracePeriod: &grace,
			},
			RestartPolicy: taskPolicy(spec.Restart),
			Placement:     &swarm.Placement{Constraints: constraints},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Ports: ports},
	}
	taken := map[string]bool{}
	for _, s := range svcs {
		taken[s.Spec.Name] = true
	}
	var res client.ServiceCreateResult
	for n := 1; ; n++ {
		if svc.Name = b.serviceName(spec.App, spec.Version, n); taken[svc.Name] {
			continue
		}
		res, err = b.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: svc})
		if err != nil && n < 100 && isNameConflict(err) {
			continue // a service of another namespace or process has the name
		}
		break
	}
	if err != nil {
		if ctx.Err() != nil {
			b.removeQuietly(svc.Name) // the manager may have created it before the request was cancelled
		}
		return nil, wrapErr("create", "", err)
	}
	m := newMachine(b, res.ID, spec, node)
	b.mu.Lock()
	b.machines[res.ID] = m
	b.mu.Unlock()
	return m, nil
}

// isNameConflict says whether a service create failed because the name is taken.
func isNameConflict(err error) bool {
	return cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists") ||
		strings.Contains(err.Error(), "name conflicts")
}

// place picks the node for a new machine: the ready, active node allowed by
// the spec's node labels that runs fewest machines of the app's version, then
// of the app, then of the namespace, so that each version spreads evenly.
// svcs are the namespace's services.
func (b *Backend) place(ctx context.Context, spec deploy.MachineSpec, svcs []swarm.Service) (string, error) {
	nodes, err := b.cli.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return "", wrapErr("create: list nodes", "", err)
	}
	want := nodeLabels(spec.Labels)
	var ok []swarm.Node
	for _, n := range nodes.Items {
		if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive {
			continue
		}
		match := true
		for k, v := range want {
			if n.Spec.Labels[k] != v {
				match = false
			}
		}
		if match {
			ok = append(ok, n)
		}
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("swarm: create: %w: no ready node with labels %v", deploy.ErrTransient, want)
	}
	version, app, all := map[string]int{}, map[string]int{}, map[string]int{}
	for _, s := range svcs {
		n := s.Spec.Labels[LabelNode]
		all[n]++
		if s.Spec.Labels[deploy.LabelApp] == spec.App {
			app[n]++
			if s.Spec.Labels[deploy.LabelVersion] == spec.Version {
				version[n]++
			}
		}
	}
	sort.Slice(ok, func(i, j int) bool {
		a, c := ok[i].ID, ok[j].ID
		if version[a] != version[c] {
			return version[a] < version[c]
		}
		if app[a] != app[c] {
			return app[a] < app[c]
		}
		if all[a] != all[c] {
			return all[a] < all[c]
		}
		return a < c
	})
	b.mu.Lock()
	for _, n := range ok {
		b.addrs[n.ID] = nodeAddr(n)
	}
	b.mu.Unlock()
	return ok[0].ID, nil
}

// List returns the app's machines that are not destroyed, oldest first.
// Services made by another process are adopted.
func (b *Backend) List(ctx context.Context, app string) ([]deploy.Machine, error) {
	svcs, err := b.list(ctx, appFilter(app))
	if err != nil {
		return nil, err
	}
	ms, err := b.handles(ctx, svcs)
	if err != nil {
		return nil, err
	}
	out := make([]deploy.Machine, 0, len(ms))
	for _, m := range ms {
		// Leave out a machine this process destroyed after the engine listed
		// it. The cached state is fresh: handles just read it from the tasks.
		if m.c.Now() != deploy.StateDestroyed {
			out = append(out, m)
		}
	}
	return out, nil
}

// Get returns the machine with the given ID: its service's ID, in the short
// form Machine.ID returns, in full, or a prefix in between. It returns an
// error wrapping deploy.ErrNotFound when no service of the namespace has that
// ID.
func (b *Backend) Get(ctx context.Context, id string) (deploy.Machine, error) {
	s, err := eng.Find(ctx, "swarm", "service", id,
		func(ctx context.Context, ref string) ([]swarm.Service, error) {
			return b.list(ctx, make(client.Filters).Add("id", ref))
		},
		func(s swarm.Service) string { return s.ID },
		func(ref string) { eng.Forget(&b.mu, b.machines, ref) })
	if err != nil {
		return nil, err
	}
	ms, err := b.handles(ctx, []swarm.Service{s})
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// DestroyAll removes every service of the namespace, or of one app when app
// is not empty, and returns how many it removed.
func (b *Backend) DestroyAll(ctx context.Context, app string) (int, error) {
	var f client.Filters
	if app != "" {
		f = appFilter(app)
	}
	svcs, err := b.list(ctx, f)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, s := range svcs {
		b.mu.Lock()
		m := b.machines[s.ID]
		b.mu.Unlock()
		if m == nil {
			m = newMachine(b, s.ID, deploy.MachineSpec{}, s.Spec.Labels[LabelNode])
		}
		if err := m.Destroy(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// handles returns the one handle per listed service, adopting them when
// needed, with their state from one task listing.
func (b *Backend) handles(ctx context.Context, svcs []swarm.Service) ([]*Machine, error) {
	if len(svcs) == 0 {
		return nil, nil
	}
	f := make(client.Filters)
	for _, s := range svcs {
		f.Add("service", s.ID)
	}
	tasks, err := b.cli.TaskList(ctx, client.TaskListOptions{Filters: f})
	if err != nil {
		return nil, wrapErr("list tasks", "", err)
	}
	byService := map[string][]swarm.Task{}
	for _, t := range tasks.Items {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	out := make([]*Machine, 0, len(svcs))
	for _, s := range svcs {
		b.mu.Lock()
		m := b.machines[s.ID]
		if m == nil {
			m = adopt(b, s)
			b.machines[s.ID] = m
		}
		b.mu.Unlock()
		m.observeTasks(ctx, s, byService[s.ID])
		out = append(out, m)
	}
	return out, nil
}

// appFilter returns the filter that selects an app's services.
func appFilter(app string) client.Filters {
	return make(client.Filters).Add("label", deploy.LabelApp+"="+app)
}

// list lists the namespace's services that match the filters f adds, oldest first.
func (b *Backend) list(ctx context.Context, f client.Filters) ([]swarm.Service, error) {
	if f == nil {
		f = make(client.Filters)
	}
	f.Add("label", eng.LabelManaged+"=true", eng.LabelNamespace+"="+b.opts.Namespace)
	res, err := b.cli.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, wrapErr("list", "", err)
	}
	eng.SortByCreated(res.Items,
		func(s swarm.Service) map[string]string { return s.Spec.Labels },
		func(s swarm.Service) time.Time { return s.CreatedAt },
		func(s swarm.Service) string { return s.ID })
	return res.Items, nil
}

// nodeAddress returns a node's address, asking the manager once per node.
func (b *Backend) nodeAddress(ctx context.Context, node string) (string, error) {
	b.mu.Lock()
	addr := b.addrs[node]
	b.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	n, err := b.cli.NodeInspect(ctx, node, client.NodeInspectOptions{})
	if err != nil {
		return "", wrapErr("inspect node", node, err)
	}
	addr = nodeAddr(n.Node)
	if addr == "" {
		return "", fmt.Errorf("swarm: node %s has no address", node)
	}
	b.mu.Lock()
	b.addrs[node] = addr
	b.mu.Unlock()
	return addr, nil
}

// nodeAddr is the address a node's host-mode ports answer on. A manager
// that listens on 0.0.0.0 reports that as its Status.Addr; its manager
// address is the one to use then.
func nodeAddr(n swarm.Node) string {
	addr := n.Status.Addr
	if (addr == "" || addr == "0.0.0.0") && n.ManagerStatus != nil {
		if h, _, ok := strings.Cut(n.ManagerStatus.Addr, ":"); ok {
			addr = h
		}
	}
	if addr == "0.0.0.0" {
		return ""
	}
	return addr
}

// serviceName is the name of the app's nth service of a version.
func (b *Backend) serviceName(app, version string, n int) string {
	name := b.opts.NamePrefix + "-" + sanitize(app, 40)
	if v := sanitize(version, 16); version != "" && v != "" {
		name += "-" + v
	}
	return name + "-" + strconv.Itoa(n)
}

// removeQuietly removes a service by name or ID, ignoring errors, with a
// context of its own (used to clean up after a cancelled call).
func (b *Backend) removeQuietly(ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.removeService(ctx, ref)
}

// reapWait bounds how long removeService waits for the swarm to reap the
// tasks a scale-down marked for removal.
const reapWait = 5 * time.Second

// removeService removes a service once none of its tasks is marked for
// removal. A swarm manager without swarmkit's fix for it (moby/swarmkit#3222;
// Docker 20.10, the engine of Debian 12, among them) can panic, and the whole
// engine with it, when a service is removed while its task reaper deletes one
// of the service's tasks: the tasks that a scale to 0 replicas (Stop) marked
// for removal are deleted once they have shut down. So the removal waits, up
// to reapWait, until those are gone (a task on a node that is down is never
// reaped: after reapWait the removal goes ahead).
func (b *Backend) removeService(ctx context.Context, ref string) error {
	deadline := time.Now().Add(reapWait)
	for time.Now().Before(deadline) {
		res, err := b.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", ref)})
		if err != nil || !slices.ContainsFunc(res.Items, func(t swarm.Task) bool {
			return t.DesiredState == swarm.TaskStateRemove
		}) {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	_, err := b.cli.ServiceRemove(ctx, ref, client.ServiceRemoveOptions{})
	return err
}

func (b *Backend) labels(spec deploy.MachineSpec) (map[string]string, error) {
	l, err := eng.Labels("swarm", b.opts.Namespace, spec)
	if err != nil {
		return nil, err
	}
	l[LabelImage] = spec.Image
	return l, nil
}

// internal reports the labels that are bookkeeping, not part of a machine's Spec().Labels.
func internal(k string) bool {
	return eng.Internal(k) || k == LabelImage || k == LabelNode || k == LabelStarted
}

// specOf rebuilds a machine's spec from its service.
func specOf(s swarm.Service) deploy.MachineSpec {
	l := s.Spec.Labels
	var env, args, command []string
	cs := s.Spec.TaskTemplate.ContainerSpec
	image := ""
	if cs != nil {
		env, args, command, image = cs.Env, cs.Args, cs.Command, cs.Image
	}
	spec := eng.SpecOf(l, env, args, internal)
	spec.Image = l[LabelImage]
	if spec.Image == "" {
		spec.Image = image
	}
	if l[eng.LabelEntrypoint] == "" && len(command) > 0 {
		spec.Entrypoint = command
	}
	spec.Restart = policyOf(s.Spec.TaskTemplate.RestartPolicy)
	return spec
}

// nodeLabels returns the node labels a spec asks for.
func nodeLabels(l map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		if name, ok := strings.CutPrefix(k, NodeLabelPrefix); ok && name != "" {
			out[name] = v
		}
	}
	if r := l[deploy.LabelRegion]; r != "" {
		out[RegionNodeLabel] = r
	}
	return out
}

// nodeConstraints returns the placement constraints for the node labels a spec asks for.
func nodeConstraints(l map[string]string) []string {
	want := nodeLabels(l)
	out := make([]string, 0, len(want))
	for _, k := range slices.Sorted(maps.Keys(want)) {
		out = append(out, "node.labels."+k+"=="+want[k])
	}
	return out
}

func validate(s deploy.MachineSpec) error { return eng.Validate("swarm", s) }

func normalize(s deploy.MachineSpec) deploy.MachineSpec { return eng.Normalize(s) }

// sanitize keeps a name usable in a service name ([a-zA-Z0-9-], at most n characters).
func sanitize(s string, n int) string {
	var sb strings.Builder
	for _, r := range s {
		if sb.Len() >= n {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('-')
		}
	}
	if sb.Len() == 0 {
		return "app"
	}
	return strings.Trim(sb.String(), "-")
}

// wrapErr wraps an engine error, adding the deploy sentinel it maps to.
func wrapErr(op, id string, err error) error {
	return eng.WrapErr("swarm", op, id, err)
}
