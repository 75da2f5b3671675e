// Package swarmtest builds a real two-node Docker swarm on one machine, for
// tests and examples, and always tears it down.
//
// The machine's engine becomes the manager (swarm init, advertising the host
// side of a veth pair); a second dockerd runs in a network namespace made with
// `ip netns add` (started with nsenter --net=..., not `ip netns exec`, which
// remounts /sys and hides the cgroups) with its own config file, data root,
// exec root, pidfile and socket, the main engine's storage driver and its
// default bridge, and joins as a worker. Both addresses are private
// (10.213.0.1 on the host side, 10.213.0.2 in the namespace); nothing is
// routed beyond the pair. Images reach the worker with save | load
// (LoadImage): there is no registry.
//
// Down undoes it in reverse: services removed, the worker leaves, its dockerd
// stopped by PID, the namespace deleted, the manager leaves the swarm, so
// plain Docker tests on the same engine run unchanged. A second Down does
// nothing. Up and Down hold a
// file lock, so test packages running at once take turns; a swarm left by a
// process that died is torn down by the next Up (its state is in StateDir).
//
// It needs root, ip (iproute2), nsenter (util-linux) and dockerd.
package swarmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Fixed names and addresses. One swarm per machine at a time (the lock).
const (
	NetNS       = "cutover-swarm" // the worker's network namespace
	hostVeth    = "cswarm-h"      // host side of the veth pair
	nsVeth      = "cswarm-w"      // namespace side
	ManagerAddr = "10.213.0.1"    // host side: the manager advertises it
	WorkerAddr  = "10.213.0.2"    // namespace side: the worker advertises it
	prefixLen   = "/30"           // the two addresses only
	StateDir    = "/run/cutover-swarm"
	dataRoot    = "/var/lib/cutover-swarm/worker"
	lockFile    = "/run/cutover-swarm.lock"
	stateFile   = StateDir + "/state.json"
	gwBridge    = "docker_gwbridge"
	labelPrefix = "cutover.swarmtest"
)

// EngineLabel is the node label that names a node's engine address (the
// worker's: "unix:///run/cutover-swarm/docker.sock"), as examples/swarm reads it.
const EngineLabel = "cutover.engine"

// ErrUnavailable means this machine cannot build the swarm (not root, a tool
// missing, no engine). Tests skip on it, or fail under CI=true.
var ErrUnavailable = errors.New("swarmtest: cannot build a swarm here")

// Swarm is a running two-node swarm.
type Swarm struct {
	// Manager is a client of this machine's engine (the manager).
	Manager *client.Client
	// Worker is a client of the worker's engine.
	Worker *client.Client
	// WorkerHost is the worker engine's address ("unix:///run/cutover-swarm/docker.sock").
	WorkerHost    string
	ManagerNodeID string
	WorkerNodeID  string

	st   state
	lock *os.File
	log  io.Writer
}

// state is what Down needs, kept in StateDir so that another process can tear down.
type state struct {
	PID              int    `json:"pid"` // the worker dockerd
	CreatedBridge    bool   `json:"created_gwbridge"`
	ManagerJoined    bool   `json:"manager_joined"`
	WorkerHost       string `json:"worker_host"`
	ManagerNodeID    string `json:"manager_node_id"`
	WorkerNodeID     string `json:"worker_node_id"`
	StartedAtRFC3339 string `json:"started_at"`
}

// Options configure Up. The zero value is valid.
type Options struct {
	// Log receives one line per step; nil: discarded.
	Log io.Writer
	// ManagerHost is the main engine's address; empty: DOCKER_HOST or the default socket.
	ManagerHost string
}

// Check says why this machine cannot build the swarm (wrapping
// ErrUnavailable), or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root (network namespaces and a second dockerd need it)", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "nsenter", "dockerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install iproute2 util-linux docker.io)", ErrUnavailable, tool)
		}
	}
	return nil
}

// Up builds the swarm. It waits for the lock (another package's swarm) until
// ctx ends. On error it has torn down what it built.
func Up(ctx context.Context, opts Options) (_ *Swarm, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	copts := []client.Opt{client.FromEnv}
	if opts.ManagerHost != "" {
		copts = append(copts, client.WithHost(opts.ManagerHost))
	}
	mgr, err := client.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: manager client: %w", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	_, perr := mgr.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	pcancel()
	if perr != nil {
		_ = mgr.Close()
		return nil, fmt.Errorf("%w: engine unreachable: %w", ErrUnavailable, perr)
	}
	lock, err := acquire(ctx)
	if err != nil {
		_ = mgr.Close()
		return nil, err
	}
	s := &Swarm{Manager: mgr, lock: lock, log: logw}
	// A swarm a dead process left: tear it down first.
	if _, statErr := os.Stat(stateFile); statErr == nil {
		s.logf("a previous swarm was left behind; tearing it down")
		if derr := s.down(ctx, true); derr != nil {
			s.release()
			return nil, fmt.Errorf("swarmtest: tearing down the previous swarm: %w", derr)
		}
	}
	defer func() {
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if derr := s.down(dctx, false); derr != nil {
				err = errors.Join(err, fmt.Errorf("tearing down: %w", derr))
			}
			s.release()
		}
	}()
	start := time.Now()
	info, err := mgr.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: info: %w", err)
	}
	if ls := info.Info.Swarm.LocalNodeState; ls != swarm.LocalNodeStateInactive {
		return nil, fmt.Errorf("swarmtest: the engine is already in swarm mode (%s), not by this package: leave it first (docker swarm leave --force)", ls)
	}
	driver := info.Info.Driver
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	nets, err := mgr.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", gwBridge)})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: network list: %w", err)
	}
	s.st.CreatedBridge = true
	for _, n := range nets.Items {
		if n.Name == gwBridge {
			s.st.CreatedBridge = false
		}
	}
	s.st.StartedAtRFC3339 = time.Now().UTC().Format(time.RFC3339)
	if err := s.save(); err != nil {
		return nil, err
	}

	// The namespace and the veth pair.
	steps := [][]string{
		{"netns", "add", NetNS},
		{"link", "add", hostVeth, "type", "veth", "peer", "name", nsVeth},
		{"link", "set", nsVeth, "netns", NetNS},
		{"addr", "add", ManagerAddr + prefixLen, "dev", hostVeth},
		{"link", "set", hostVeth, "up"},
		{"-n", NetNS, "addr", "add", WorkerAddr + prefixLen, "dev", nsVeth},
		{"-n", NetNS, "link", "set", nsVeth, "up"},
		{"-n", NetNS, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if err := run(ctx, "ip", args...); err != nil {
			return nil, err
		}
	}
	s.logf("namespace %s: %s (host) <-> %s (namespace)", NetNS, ManagerAddr, WorkerAddr)

	// The worker's engine.
	if err := os.MkdirAll(dataRoot, 0o700); err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	cfg := filepath.Join(StateDir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o600); err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(StateDir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	sock := filepath.Join(StateDir, "docker.sock")
	pidfile := filepath.Join(StateDir, "dockerd.pid")
	args := []string{"--net=/var/run/netns/" + NetNS, "dockerd",
		"--config-file", cfg,
		"--data-root", dataRoot,
		"--exec-root", filepath.Join(StateDir, "exec"),
		"--pidfile", pidfile,
		"-H", "unix://" + sock,
	}
	if driver != "" {
		args = append(args, "--storage-driver", driver)
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a signal to the test's process group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Never pull: the images are loaded (the manager's tasks name images by ID).
	cmd.Env = append(os.Environ(), "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1")
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("swarmtest: start dockerd: %w", err)
	}
	s.st.PID = cmd.Process.Pid // nsenter execs dockerd: the same process
	_ = cmd.Process.Release()
	s.st.WorkerHost = "unix://" + sock
	if err := s.save(); err != nil {
		return nil, err
	}
	wk, err := client.New(client.WithHost(s.st.WorkerHost))
	if err != nil {
		return nil, fmt.Errorf("swarmtest: worker client: %w", err)
	}
	s.Worker = wk
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		if !alive(s.st.PID) {
			return backoffStop{fmt.Errorf("dockerd exited; see %s", filepath.Join(StateDir, "dockerd.log"))}
		}
		_, err := wk.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		return err
	}); err != nil {
		return nil, fmt.Errorf("swarmtest: worker engine: %w", err)
	}
	s.logf("worker dockerd (pid %d) answers on %s", s.st.PID, s.st.WorkerHost)

	// The swarm.
	s.st.ManagerJoined = true // from here on, Down makes the manager leave
	if err := s.save(); err != nil {
		return nil, err
	}
	res, err := mgr.SwarmInit(ctx, client.SwarmInitOptions{
		ListenAddr:    ManagerAddr + ":2377",
		AdvertiseAddr: ManagerAddr,
		Spec:          swarm.Spec{Annotations: swarm.Annotations{Labels: map[string]string{labelPrefix: "true"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: swarm init: %w", err)
	}
	s.st.ManagerNodeID = res.NodeID
	insp, err := mgr.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: swarm inspect: %w", err)
	}
	if _, err := wk.SwarmJoin(ctx, client.SwarmJoinOptions{
		ListenAddr:    WorkerAddr + ":2377",
		AdvertiseAddr: WorkerAddr,
		RemoteAddrs:   []string{ManagerAddr + ":2377"},
		JoinToken:     insp.Swarm.JoinTokens.Worker,
	}); err != nil {
		return nil, fmt.Errorf("swarmtest: swarm join: %w", err)
	}
	winfo, err := wk.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: worker info: %w", err)
	}
	s.st.WorkerNodeID = winfo.Info.Swarm.NodeID
	if err := s.save(); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		n, err := mgr.NodeInspect(ctx, s.st.WorkerNodeID, client.NodeInspectOptions{})
		if err != nil {
			return err
		}
		if n.Node.Status.State != swarm.NodeStateReady {
			return fmt.Errorf("worker node is %s", n.Node.Status.State)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	// The worker names its engine, so that a program given only the manager
	// (examples/swarm) can load images into it.
	n, err := mgr.NodeInspect(ctx, s.st.WorkerNodeID, client.NodeInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("swarmtest: %w", err)
	}
	spec := n.Node.Spec
	spec.Labels = map[string]string{EngineLabel: s.st.WorkerHost}
	if _, err := mgr.NodeUpdate(ctx, s.st.WorkerNodeID, client.NodeUpdateOptions{Version: n.Node.Version, Spec: spec}); err != nil {
		return nil, fmt.Errorf("swarmtest: label the worker node: %w", err)
	}
	s.WorkerHost, s.ManagerNodeID, s.WorkerNodeID = s.st.WorkerHost, s.st.ManagerNodeID, s.st.WorkerNodeID
	s.logf("swarm up in %v: manager %s (%s), worker %s (%s)", time.Since(start).Round(time.Millisecond),
		s.ManagerNodeID, ManagerAddr, s.WorkerNodeID, WorkerAddr)
	return s, nil
}

// Down tears the swarm down in reverse and releases the lock. It goes on
// past errors and returns them all.
func (s *Swarm) Down(ctx context.Context) error {
	if s.Manager == nil {
		return nil // down already (or released)
	}
	err := s.down(ctx, false)
	s.release()
	return err
}

// Release releases the lock and the clients but leaves the swarm running
// (for `swarmctl up`); a later Down or Up tears it down.
func (s *Swarm) Release() { s.release() }

// DownLeftover tears down a swarm that an earlier process (swarmctl up, or a
// test that died) left, if any. It returns false when there was none.
func DownLeftover(ctx context.Context, opts Options) (bool, error) {
	if err := Check(); err != nil {
		return false, err
	}
	if _, err := os.Stat(stateFile); err != nil {
		return false, nil
	}
	copts := []client.Opt{client.FromEnv}
	if opts.ManagerHost != "" {
		copts = append(copts, client.WithHost(opts.ManagerHost))
	}
	mgr, err := client.New(copts...)
	if err != nil {
		return false, fmt.Errorf("swarmtest: manager client: %w", err)
	}
	lock, err := acquire(ctx)
	if err != nil {
		_ = mgr.Close()
		return false, err
	}
	s := &Swarm{Manager: mgr, lock: lock, log: opts.Log}
	if s.log == nil {
		s.log = io.Discard
	}
	err = s.down(ctx, true)
	s.release()
	return true, err
}

// StopWorker stops the worker's dockerd (SIGTERM, then SIGKILL after 10s):
// the node goes away as a crashed host would. Down still cleans up after it.
func (s *Swarm) StopWorker(ctx context.Context) error {
	return stopPID(ctx, s.st.PID, 10*time.Second)
}

// LoadImage copies an image of the manager's engine into the worker's
// (docker save | docker load), as a registry would deliver it.
func (s *Swarm) LoadImage(ctx context.Context, image string) error {
	rc, err := s.Manager.ImageSave(ctx, []string{image})
	if err != nil {
		return fmt.Errorf("swarmtest: save %s: %w", image, err)
	}
	defer rc.Close()
	res, err := s.Worker.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("swarmtest: load %s: %w", image, err)
	}
	defer res.Close()
	body, err := io.ReadAll(res)
	if err != nil {
		return fmt.Errorf("swarmtest: load %s: %w", image, err)
	}
	if strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("swarmtest: load %s: %s", image, strings.TrimSpace(string(body)))
	}
	return nil
}

func (s *Swarm) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "swarmtest: "+format+"\n", args...)
}

func (s *Swarm) save() error {
	js, _ := json.MarshalIndent(s.st, "", "  ")
	if err := os.WriteFile(stateFile, js, 0o600); err != nil {
		return fmt.Errorf("swarmtest: save state: %w", err)
	}
	return nil
}

func (s *Swarm) release() {
	if s.Worker != nil {
		_ = s.Worker.Close()
		s.Worker = nil
	}
	if s.Manager != nil {
		_ = s.Manager.Close()
		s.Manager = nil
	}
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		_ = s.lock.Close()
		s.lock = nil
	}
}

// down tears down in reverse. With fromFile it reads the state a previous
// process left. Every step runs whatever the previous ones gave.
func (s *Swarm) down(ctx context.Context, fromFile bool) error {
	if fromFile {
		js, err := os.ReadFile(stateFile)
		if err != nil {
			return fmt.Errorf("swarmtest: read state: %w", err)
		}
		if err := json.Unmarshal(js, &s.st); err != nil {
			return fmt.Errorf("swarmtest: read state: %w", err)
		}
	}
	start := time.Now()
	var errs []error
	mgr := s.Manager
	// 1. Services (all of them: the swarm is ours), and their containers on the manager.
	if s.st.ManagerJoined {
		if svcs, err := mgr.ServiceList(ctx, client.ServiceListOptions{}); err == nil {
			for _, svc := range svcs.Items {
				// As backend/swarm's removeService: not while the reaper
				// deletes tasks marked for removal (a swarmkit panic in
				// Docker 20.10 takes the engine down).
				_ = waitFor(ctx, 5*time.Second, func(ctx context.Context) error {
					ts, err := mgr.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svc.ID)})
					if err == nil && slices.ContainsFunc(ts.Items, func(t swarm.Task) bool { return t.DesiredState == swarm.TaskStateRemove }) {
						return errors.New("tasks marked for removal remain")
					}
					return nil
				})
				if _, err := mgr.ServiceRemove(ctx, svc.ID, client.ServiceRemoveOptions{}); err != nil {
					errs = append(errs, fmt.Errorf("remove service %s: %w", svc.Spec.Name, err))
				}
			}
			if len(svcs.Items) > 0 {
				s.logf("removed %d services", len(svcs.Items))
			}
		}
		f := make(client.Filters).Add("label", "com.docker.swarm.service.id")
		if err := waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
			cs, err := mgr.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
			if err != nil {
				return err
			}
			if n := len(cs.Items); n > 0 {
				return fmt.Errorf("%d task containers remain on the manager", n)
			}
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
	}
	// 2. The worker leaves; 3. its dockerd stops.
	if s.st.WorkerHost != "" && alive(s.st.PID) {
		wk := s.Worker
		if wk == nil {
			wk, _ = client.New(client.WithHost(s.st.WorkerHost))
			if wk != nil {
				defer wk.Close()
			}
		}
		if wk != nil {
			lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if _, err := wk.SwarmLeave(lctx, client.SwarmLeaveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "not part of a swarm") {
				s.logf("worker leave: %v", err)
			}
			cancel()
		}
	}
	if s.st.PID > 0 {
		if err := stopPID(ctx, s.st.PID, 20*time.Second); err != nil {
			errs = append(errs, err)
		} else {
			s.logf("worker dockerd (pid %d) stopped", s.st.PID)
		}
	}
	// 4. The namespace (its end of the veth goes with it; the host end too).
	if _, err := os.Stat("/var/run/netns/" + NetNS); err == nil {
		if err := run(ctx, "ip", "netns", "del", NetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + hostVeth); err == nil {
		if err := run(ctx, "ip", "link", "del", hostVeth); err != nil {
			errs = append(errs, err)
		}
	}
	// 5. The manager leaves the swarm.
	if s.st.ManagerJoined {
		info, err := mgr.Info(ctx, client.InfoOptions{})
		if err == nil && info.Info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive {
			if _, err := mgr.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
				errs = append(errs, fmt.Errorf("manager leave: %w", err))
			} else {
				s.logf("manager left the swarm")
			}
		} else if err != nil {
			errs = append(errs, fmt.Errorf("manager info: %w", err))
		}
	}
	if s.st.CreatedBridge {
		// Leaving may take a moment to free the bridge's endpoints.
		_ = waitFor(ctx, 15*time.Second, func(ctx context.Context) error {
			_, err := mgr.NetworkRemove(ctx, gwBridge, client.NetworkRemoveOptions{})
			if err != nil && !strings.Contains(strings.ToLower(err.Error()), "not found") {
				return err
			}
			return nil
		})
	}
	// 6. The worker's files, unless something is still mounted there.
	if !mountedUnder(dataRoot) {
		if err := os.RemoveAll(dataRoot); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, fmt.Errorf("swarmtest: %s still has mounts; left in place", dataRoot))
	}
	if len(errs) == 0 {
		_ = os.RemoveAll(filepath.Join(StateDir, "exec"))
		_ = os.Remove(stateFile)
	}
	s.logf("swarm down in %v", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

func acquire(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("swarmtest: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("swarmtest: waiting for another process's swarm (%s): %w", lockFile, ctx.Err())
		case <-time.After(250 * time.Millisecond): // the holder's swarm is up; poll the lock
		}
	}
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("swarmtest: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// backoffStop ends waitFor at once.
type backoffStop struct{ error }

// waitFor calls f until it returns nil, a backoffStop, ctx ends or limit passes.
func waitFor(ctx context.Context, limit time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		var stop backoffStop
		if errors.As(err, &stop) {
			return stop.error
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond): // poll the condition again
		}
	}
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	st := string(b)
	if i := strings.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) {
		return st[i+2] != 'Z'
	}
	return true
}

// stopPID sends SIGTERM, waits up to grace, then SIGKILL, and waits for the exit.
func stopPID(ctx context.Context, pid int, grace time.Duration) error {
	if !alive(pid) {
		reap(pid)
		return nil
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) != "dockerd" {
		return fmt.Errorf("swarmtest: pid %d is %q, not dockerd; not stopping it", pid, strings.TrimSpace(string(comm)))
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitFor(ctx, grace, func(context.Context) error {
		reap(pid)
		if alive(pid) {
			return errors.New("running")
		}
		return nil
	}) == nil {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return waitFor(ctx, 10*time.Second, func(context.Context) error {
		reap(pid)
		if alive(pid) {
			return fmt.Errorf("dockerd pid %d survives SIGKILL", pid)
		}
		return nil
	})
}

// reap collects pid's exit if it is this process's child.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

func mountedUnder(dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			return true
		}
	}
	return false
}

// NodeEngines maps the worker's node ID to its engine address, for
// backend/swarm's Options.NodeEngines (the manager's engine is known to it).
func (s *Swarm) NodeEngines() map[string]string {
	return map[string]string{s.WorkerNodeID: s.WorkerHost}
}

// SkipOrFail is what a test package does when Up fails: under CI=true it
// fails (returns a message for a FAIL line and true), otherwise it skips.
func SkipOrFail(err error) (msg string, fail bool) {
	if os.Getenv("CI") == "true" {
		return fmt.Sprintf("FAIL: cannot build the two-node swarm and CI=true: %v", err), true
	}
	return fmt.Sprintf("SKIP: cannot build the two-node swarm (set CI=true to make this a failure): %v", err), false
}
