// Package docker is a deploy.Backend that runs machines as Docker containers
// on a local engine, through the Docker SDK (github.com/moby/moby/client),
// which backend/swarm and internal/swarmtest use too.
//
// Each machine is one container created from a local image and labelled with
// its app, version and role, so a new process can adopt the containers an
// earlier one left running (List, Get). A machine's ID is its container's ID
// in the short form docker ps prints (12 hex digits), and the container is
// named "<prefix>-<app>-<ID>": docker ps --filter id=ID, docker logs ID,
// docker inspect ID and docker stop ID all find it, and Get takes the short
// or the full ID. The ID stays the same across restarts of the container. The
// app port is published on 127.0.0.1 with an ephemeral host port; Addr
// returns "127.0.0.1:<port>".
//
// A machine's Restart policy becomes the container's restart policy (always
// as "unless-stopped", on-failure with its retries, never as "no"). The engine
// restarts a container whose process dies on its own (killed from outside the
// engine, crashed); a kill sent through the engine (Stop, docker kill) is a
// stop and is not restarted. A restarted container gets a new ephemeral host
// port: List and State re-read Addr, and Restarts counts the restarts.
//
// No registry is needed: BuildBinaryImage and BuildGoImage make images from a
// static binary with ImageImport.
package docker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutover/deploy"
	eng "github.com/cutover/deploy/backend/internal/engine"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Labels this backend sets on every container besides deploy.LabelApp,
// deploy.LabelVersion and the spec's own labels. They are bookkeeping and are
// not part of a machine's Spec().Labels.
const (
	LabelManaged     = eng.LabelManaged     // always "true"
	LabelNamespace   = eng.LabelNamespace   // Options.Namespace
	LabelPort        = eng.LabelPort        // spec.Port
	LabelStopSignal  = eng.LabelStopSignal  // spec.StopSignal, when set
	LabelStopTimeout = eng.LabelStopTimeout // spec.StopTimeout as a Go duration, when set
	LabelCmd         = eng.LabelCmd         // spec.Cmd as a JSON array, when set
	LabelEnvKeys     = eng.LabelEnvKeys     // the spec's env keys as a JSON array, when set
	LabelPorts       = eng.LabelPorts       // spec.Ports as a JSON array, when set
	LabelEntrypoint  = eng.LabelEntrypoint  // spec.Entrypoint as a JSON array, when set
	LabelCreated     = eng.LabelCreated     // creation time (RFC 3339, nanoseconds), to order List
)

// DefaultPort is the app port used when a spec sets none.
const DefaultPort = eng.DefaultPort

// DefaultNamespace is the namespace used when Options.Namespace is empty.
const DefaultNamespace = eng.DefaultNamespace

// Options configures a Backend. The zero value is valid.
type Options struct {
	// Host is the engine address, such as "unix:///var/run/docker.sock".
	// Empty: DOCKER_HOST, or the platform default.
	Host string
	// APIVersion pins the API version, such as "1.41". Empty: negotiated with
	// the engine on New (DOCKER_API_VERSION, when set, pins it too).
	APIVersion string
	// Namespace isolates backends that share one engine: containers are
	// labelled with it, and List and Get see only their own namespace.
	// Empty: DefaultNamespace.
	Namespace string
	// NamePrefix starts every container name ("<prefix>-<app>-<machine ID>").
	// Empty: "cutover".
	NamePrefix string
}

// Backend runs machines as containers. It is safe for concurrent use.
// Close it when done.
type Backend struct {
	cli  *client.Client
	opts Options

	mu       sync.Mutex
	machines map[string]*Machine // by container ID (full): one handle per container
}

var _ deploy.Backend = (*Backend)(nil)

// New connects to the engine, negotiating the API version, and checks it answers.
// An unreachable engine gives an error wrapping deploy.ErrTransient.
func New(ctx context.Context, opts Options) (*Backend, error) {
	eng.Defaults(&opts.Namespace, &opts.NamePrefix)
	cli, err := eng.Dial(ctx, "docker", opts.Host, opts.APIVersion)
	if err != nil {
		return nil, err
	}
	return &Backend{cli: cli, opts: opts, machines: map[string]*Machine{}}, nil
}

// Close releases the client's connections. Machines stay as they are.
func (b *Backend) Close() error { return b.cli.Close() }

// APIVersion returns the API version in use (negotiated on New).
func (b *Backend) APIVersion() string { return b.cli.ClientVersion() }

// Namespace returns the backend's namespace.
func (b *Backend) Namespace() string { return b.opts.Namespace }

// Create creates a container from spec, not yet started. spec.Port defaults to
// DefaultPort. The machine's Spec() carries deploy.LabelApp (and
// deploy.LabelVersion when Version is set) in its Labels. The container is
// created under a name of its own, then renamed "<prefix>-<app>-<ID>" once the
// engine has given its ID; when Create fails, no container is left.
func (b *Backend) Create(ctx context.Context, spec deploy.MachineSpec) (deploy.Machine, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	spec = normalize(spec)
	labels, err := eng.Labels("docker", b.opts.Namespace, spec)
	if err != nil {
		return nil, err
	}
	port, ok := network.PortFrom(uint16(spec.Port), network.TCP)
	if !ok {
		return nil, fmt.Errorf("docker: create: %w: port %d", deploy.ErrInvalid, spec.Port)
	}
	cfg := &container.Config{
		Image:        spec.Image,
		Env:          eng.EnvList(spec.Env),
		Cmd:          spec.Cmd,
		Labels:       labels,
		ExposedPorts: network.PortSet{port: {}},
		StopSignal:   spec.StopSignal,
	}
	if spec.StopTimeout > 0 {
		secs := ceilSeconds(spec.StopTimeout)
		cfg.StopTimeout = &secs
	}
	if len(spec.Entrypoint) > 0 {
		cfg.Entrypoint = spec.Entrypoint
	}
	hcfg := &container.HostConfig{
		PortBindings:  network.PortMap{port: {{HostIP: loopback, HostPort: ""}}},
		RestartPolicy: enginePolicy(spec.Restart),
	}
	for _, p := range eng.ExtraPorts(spec) { // published on loopback too, each on an ephemeral host port
		xp, ok := network.PortFrom(uint16(p), network.TCP)
		if !ok {
			return nil, fmt.Errorf("docker: create: %w: port %d", deploy.ErrInvalid, p)
		}
		cfg.ExposedPorts[xp] = struct{}{}
		hcfg.PortBindings[xp] = []network.PortBinding{{HostIP: loopback, HostPort: ""}}
	}
	tmp := b.containerName(spec.App, "new-"+rand.Text()) // unique before the engine gives the ID
	res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hcfg, Name: tmp})
	if err != nil {
		if ctx.Err() != nil {
			// The engine may have created it before the request was cancelled.
			b.removeQuietly(tmp)
		}
		return nil, wrapErr("create", "", err)
	}
	id := eng.ShortID(res.ID)
	if _, err := b.cli.ContainerRename(ctx, res.ID, client.ContainerRenameOptions{NewName: b.containerName(spec.App, id)}); err != nil {
		b.removeQuietly(res.ID)
		return nil, wrapErr("create: rename", id, err)
	}
	m := newMachine(b, res.ID, spec, false)
	b.mu.Lock()
	b.machines[res.ID] = m
	b.mu.Unlock()
	return m, nil
}

// List returns the app's machines that are not destroyed (running, created or
// exited containers), oldest first. Containers made by another process are adopted.
func (b *Backend) List(ctx context.Context, app string) ([]deploy.Machine, error) {
	sums, err := b.list(ctx, make(client.Filters).Add("label", appFilter(app)))
	if err != nil {
		return nil, err
	}
	out := make([]deploy.Machine, 0, len(sums))
	for _, s := range sums {
		m, err := b.handle(ctx, s)
		if errors.Is(err, deploy.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if m.State() == deploy.StateDestroyed {
			continue // destroyed by this process after the engine listed it
		}
		out = append(out, m)
	}
	return out, nil
}

// Get returns the machine with the given ID: its container's ID, in the
// short form Machine.ID returns, in full, or a prefix in between. It returns
// an error wrapping deploy.ErrNotFound when no container of the namespace
// has that ID.
func (b *Backend) Get(ctx context.Context, id string) (deploy.Machine, error) {
	s, err := eng.Find(ctx, "docker", "container", id,
		func(ctx context.Context, ref string) ([]container.Summary, error) {
			return b.list(ctx, make(client.Filters).Add("id", ref))
		},
		func(s container.Summary) string { return s.ID },
		func(ref string) { eng.Forget(&b.mu, b.machines, ref) })
	if err != nil {
		return nil, err
	}
	return b.handle(ctx, s)
}

// DestroyAll force-removes every container of the namespace, or of one app
// when app is not empty, and returns how many it removed.
func (b *Backend) DestroyAll(ctx context.Context, app string) (int, error) {
	f := make(client.Filters)
	if app != "" {
		f.Add("label", appFilter(app))
	}
	sums, err := b.list(ctx, f)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, s := range sums {
		if err := b.remove(ctx, s.ID); err != nil {
			errs = append(errs, wrapErr("remove", eng.ShortID(s.ID), err))
			continue
		}
		n++
		b.mu.Lock()
		m := b.machines[s.ID]
		b.mu.Unlock()
		if m != nil {
			m.markDestroyed() // also forgets it
		}
	}
	return n, errors.Join(errs...)
}

// appFilter returns the label filter ("key=value") that selects an app's containers.
func appFilter(app string) string { return deploy.LabelApp + "=" + app }

// list lists the namespace's containers (all states) that match the filters
// f adds, oldest first.
func (b *Backend) list(ctx context.Context, f client.Filters) ([]container.Summary, error) {
	if f == nil {
		f = make(client.Filters)
	}
	f.Add("label", LabelManaged+"=true", LabelNamespace+"="+b.opts.Namespace)
	res, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, wrapErr("list", "", err)
	}
	eng.SortByCreated(res.Items,
		func(s container.Summary) map[string]string { return s.Labels },
		func(s container.Summary) time.Time { return time.Unix(s.Created, 0) }, // a one-second grain
		func(s container.Summary) string { return s.ID })
	return res.Items, nil
}

// handle returns the one handle for a listed container, adopting it when needed.
func (b *Backend) handle(ctx context.Context, s container.Summary) (*Machine, error) {
	b.mu.Lock()
	m := b.machines[s.ID]
	b.mu.Unlock()
	if m != nil {
		m.observe(stateOf(s.State), summaryAddr(s.Ports, m.spec.Port), -1)
		return m, nil
	}
	res, err := b.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, wrapErr("inspect", eng.ShortID(s.ID), err)
	}
	m, err = adopt(b, res.Container)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.machines[s.ID]; old != nil {
		return old, nil // adopted concurrently
	}
	b.machines[s.ID] = m
	return m, nil
}

func (b *Backend) containerName(app, id string) string {
	return b.opts.NamePrefix + "-" + sanitize(app) + "-" + id
}

// remove force-removes a container. A missing container is not an error, and
// a removal already in progress elsewhere is waited for.
func (b *Backend) remove(ctx context.Context, cid string) error {
	_, err := b.cli.ContainerRemove(ctx, cid, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		w := b.startWait(ctx, cid, container.WaitConditionRemoved)
		defer w.Close()
		if _, werr := w.Result(ctx, nil); werr != nil && !cerrdefs.IsNotFound(werr) {
			return fmt.Errorf("%w (waiting for removal: %w)", err, werr)
		}
		return nil
	}
	return err
}

// removeQuietly force-removes a container by name or ID, ignoring errors, with
// a context of its own (used to clean up after a cancelled call).
func (b *Backend) removeQuietly(ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = b.cli.ContainerRemove(ctx, ref, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// adopt rebuilds a machine handle and its spec from an inspected container.
func adopt(b *Backend, c container.InspectResponse) (*Machine, error) {
	if c.Config == nil {
		return nil, fmt.Errorf("docker: adopt %s: no config in inspect response", c.ID)
	}
	l := c.Config.Labels
	spec := eng.SpecOf(l, c.Config.Env, c.Config.Cmd, eng.Internal)
	spec.Image = c.Config.Image
	if c.HostConfig != nil {
		spec.Restart = policyOf(c.HostConfig.RestartPolicy)
	}
	m := newMachine(b, c.ID, spec, c.Config.Tty)
	m.observeInspect(c)
	return m, nil
}

func validate(s deploy.MachineSpec) error { return eng.Validate("docker", s) }

func normalize(s deploy.MachineSpec) deploy.MachineSpec { return eng.Normalize(s) }

// sanitize keeps a name usable in a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
func sanitize(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
		if sb.Len() >= 40 {
			break
		}
	}
	if sb.Len() == 0 {
		return "app"
	}
	return sb.String()
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// wrapErr wraps an engine error, adding the deploy sentinel it maps to.
func wrapErr(op, id string, err error) error {
	return eng.WrapErr("docker", op, id, err)
}
