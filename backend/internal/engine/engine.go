// Package engine holds what backend/docker and backend/swarm share about a
// machine kept by a Docker engine: the labels that record its spec, the
// spec's validation and normalization, environment lists, machine IDs (the
// engine's own, in short form), the exit reasons, and the mapping of engine
// errors onto deploy's sentinels; and the engine client calls both make
// alike (Dial, StartWait, Demux).
package engine

import (
	"context"
	"encoding/json"
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
	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
)

// Labels set on every container or service besides deploy.LabelApp,
// deploy.LabelVersion and the spec's own labels (see backend/docker).
const (
	LabelManaged     = "cutover.managed"
	LabelNamespace   = "cutover.namespace"
	LabelPort        = "cutover.port"
	LabelStopSignal  = "cutover.stop_signal"
	LabelStopTimeout = "cutover.stop_timeout"
	LabelCmd         = "cutover.cmd"
	LabelEnvKeys     = "cutover.env_keys"
	LabelPorts       = "cutover.ports"
	LabelEntrypoint  = "cutover.entrypoint"
	LabelCreated     = "cutover.created"
)

// LabelLegacyMachine held a random machine ID that earlier versions
// generated; a machine's ID is now its engine's ID, and the label is no
// longer set. It stays bookkeeping (Internal), so that a container or service
// made by an earlier version and adopted now does not carry it in its spec.
const LabelLegacyMachine = "cutover.machine"

// DefaultPort is the app port used when a spec sets none.
const DefaultPort = 8080

// DefaultNamespace is the namespace used when a backend's is empty.
const DefaultNamespace = "default"

// DefaultNamePrefix starts the names of a backend's containers or services
// when its NamePrefix is empty.
const DefaultNamePrefix = "cutover"

// Defaults fills an empty namespace and name prefix of a backend's options.
func Defaults(namespace, namePrefix *string) {
	if *namespace == "" {
		*namespace = DefaultNamespace
	}
	if *namePrefix == "" {
		*namePrefix = DefaultNamePrefix
	}
}

// Internal reports whether a label is bookkeeping of this package, not part
// of a machine's Spec().Labels.
func Internal(k string) bool {
	switch k {
	case LabelManaged, LabelNamespace, LabelLegacyMachine, LabelPort, LabelStopSignal, LabelStopTimeout,
		LabelCmd, LabelEnvKeys, LabelPorts, LabelEntrypoint, LabelCreated:
		return true
	}
	return false
}

// Validate checks a spec as both backends do; errors wrap deploy.ErrInvalid
// and start with "<name>: spec: ".
func Validate(name string, s deploy.MachineSpec) error {
	switch {
	case s.App == "":
		return fmt.Errorf("%s: spec: %w: app is empty", name, deploy.ErrInvalid)
	case s.Image == "":
		return fmt.Errorf("%s: spec: %w: image is empty", name, deploy.ErrInvalid)
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("%s: spec: %w: port %d out of range", name, deploy.ErrInvalid, s.Port)
	}
	for _, p := range s.Ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%s: spec: %w: port %d out of range", name, deploy.ErrInvalid, p)
		}
	}
	if err := s.Restart.Validate(); err != nil {
		return fmt.Errorf("%s: spec: %w", name, err)
	}
	for k := range s.Env {
		if k == "" || strings.Contains(k, "=") {
			return fmt.Errorf("%s: spec: %w: env key %q", name, deploy.ErrInvalid, k)
		}
	}
	return nil
}

// Normalize copies the spec's maps and slices and fills its defaults: Port,
// the app and version labels, the Restart policy's defaults.
func Normalize(s deploy.MachineSpec) deploy.MachineSpec {
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	labels := make(map[string]string, len(s.Labels)+2)
	maps.Copy(labels, s.Labels)
	labels[deploy.LabelApp] = s.App
	if s.Version != "" {
		labels[deploy.LabelVersion] = s.Version
	}
	s.Labels = labels
	s.Env = maps.Clone(s.Env)
	s.Restart = s.Restart.Normalized()
	if s.Cmd != nil {
		s.Cmd = append([]string(nil), s.Cmd...)
	}
	s.Ports = slices.Clone(s.Ports)
	s.Entrypoint = slices.Clone(s.Entrypoint)
	return s
}

// Labels returns the labels that record a normalized spec of a machine in
// namespace: the spec's own, and the bookkeeping ones.
func Labels(name, namespace string, spec deploy.MachineSpec) (map[string]string, error) {
	l := make(map[string]string, len(spec.Labels)+12)
	maps.Copy(l, spec.Labels)
	l[LabelManaged] = "true"
	l[LabelNamespace] = namespace
	l[LabelPort] = strconv.Itoa(spec.Port)
	l[LabelCreated] = time.Now().UTC().Format(time.RFC3339Nano)
	if spec.StopSignal != "" {
		l[LabelStopSignal] = spec.StopSignal
	}
	if spec.StopTimeout > 0 {
		l[LabelStopTimeout] = spec.StopTimeout.String()
	}
	if len(spec.Cmd) > 0 {
		js, err := json.Marshal(spec.Cmd)
		if err != nil {
			return nil, fmt.Errorf("%s: create: %w: cmd: %w", name, deploy.ErrInvalid, err)
		}
		l[LabelCmd] = string(js)
	}
	if len(spec.Env) > 0 {
		js, _ := json.Marshal(slices.Sorted(maps.Keys(spec.Env)))
		l[LabelEnvKeys] = string(js)
	}
	if len(spec.Ports) > 0 {
		js, _ := json.Marshal(spec.Ports)
		l[LabelPorts] = string(js)
	}
	if len(spec.Entrypoint) > 0 {
		js, _ := json.Marshal(spec.Entrypoint)
		l[LabelEntrypoint] = string(js)
	}
	return l, nil
}

// SpecOf rebuilds a spec from its labels and the environment and command the
// engine runs: all but Image and Restart, which the backends keep their own
// way. internal says which labels are bookkeeping (Internal and the
// backend's own).
func SpecOf(l map[string]string, env, cmd []string, internal func(string) bool) deploy.MachineSpec {
	spec := deploy.MachineSpec{
		App:        l[deploy.LabelApp],
		Version:    l[deploy.LabelVersion],
		StopSignal: l[LabelStopSignal],
		Labels:     map[string]string{},
	}
	for k, v := range l {
		if !internal(k) {
			spec.Labels[k] = v
		}
	}
	spec.Port, _ = strconv.Atoi(l[LabelPort])
	if spec.Port == 0 {
		spec.Port = DefaultPort
	}
	if d, err := time.ParseDuration(l[LabelStopTimeout]); err == nil {
		spec.StopTimeout = d
	}
	if js := l[LabelCmd]; js != "" {
		if err := json.Unmarshal([]byte(js), &spec.Cmd); err != nil {
			spec.Cmd = cmd
		}
	}
	if js := l[LabelPorts]; js != "" {
		_ = json.Unmarshal([]byte(js), &spec.Ports)
	}
	if js := l[LabelEntrypoint]; js != "" {
		_ = json.Unmarshal([]byte(js), &spec.Entrypoint)
	}
	spec.NoService = l[deploy.LabelNoService] == "true"
	if js := l[LabelEnvKeys]; js != "" {
		var keys []string
		_ = json.Unmarshal([]byte(js), &keys)
		all := EnvMap(env)
		spec.Env = make(map[string]string, len(keys))
		for _, k := range keys {
			if v, ok := all[k]; ok {
				spec.Env[k] = v
			}
		}
	}
	return spec
}

// ExtraPorts returns the spec's Ports other than its app port, once each.
func ExtraPorts(s deploy.MachineSpec) []int {
	var out []int
	for _, p := range s.Ports {
		if p != s.Port && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// EnvList returns env as sorted KEY=value entries.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// EnvMap parses KEY=value entries.
func EnvMap(env []string) map[string]string {
	out := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// ShortIDLen is the length of an engine ID's short form, the one docker ps
// and docker service ls print.
const ShortIDLen = 12

// ShortID returns the short form of an engine ID (a container's or a
// service's): its first ShortIDLen characters. A machine's ID is the short
// form of its engine's ID.
func ShortID(id string) string {
	if len(id) > ShortIDLen {
		return id[:ShortIDLen]
	}
	return id
}

// ValidRef reports whether ref can name a machine by its engine's ID: the
// short form, the full ID or a prefix in between, of lower-case letters and
// digits only (so that it is safe in the engine's id filter, which some
// engines read as a regular expression).
func ValidRef(ref string) bool {
	if len(ref) < ShortIDLen || len(ref) > 128 {
		return false
	}
	for _, r := range ref {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

// ExitReason says why a run ended with code: killReason (a kill of ours)
// for 137, "killed after stop timeout" when a stop waited past its timeout,
// "stopped" for a stop, else what the code says.
func ExitReason(code int, killReason string, stopAsked, pastTimeout bool) string {
	switch {
	case killReason != "" && code == 137:
		return killReason
	case stopAsked && code == 137 && pastTimeout:
		return "killed after stop timeout"
	case stopAsked:
		return "stopped"
	case code == 0:
		return "exited"
	case code == 137:
		return "killed"
	}
	return "exited with error"
}

// DestroyedExit is the exit recorded for a machine destroyed in state st
// with no exit seen, or nil.
func DestroyedExit(st deploy.MachineState) *deploy.ExitStatus {
	switch st {
	case deploy.StateCreated:
		return &deploy.ExitStatus{Reason: "never started"}
	case deploy.StateStarting, deploy.StateStarted, deploy.StateStopping:
		return &deploy.ExitStatus{Code: 137, Reason: "destroyed while running"}
	}
	return nil
}

// WrapErr wraps an engine error of op on machine id (may be empty) with
// "<name>: <op> <id>: ", adding the deploy sentinel it maps to (a client
// that could not reach the engine: deploy.ErrTransient).
func WrapErr(name, op, id string, err error) error {
	what := name + ": " + op
	if id != "" {
		what += " " + id
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %w", what, deploy.ErrNotFound, err)
	case cerrdefs.IsInvalidArgument(err):
		return fmt.Errorf("%s: %w: %w", what, deploy.ErrInvalid, err)
	case client.IsErrConnectionFailed(err), cerrdefs.IsUnavailable(err):
		return fmt.Errorf("%s: %w: %w", what, deploy.ErrTransient, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// RefreshTimeout bounds the look-up a machine's State makes while it runs.
const RefreshTimeout = 2 * time.Second

// OwnTimeout bounds the calls made with OwnContext.
const OwnTimeout = 10 * time.Second

// OwnContext returns a context for the calls that finish what a method began
// whatever its ctx does (kill, record the exit): ctx's values, no
// cancellation, OwnTimeout.
func OwnContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), OwnTimeout)
}

// AddrOf is a machine's deploy.PortAddresser answer: addr for its app port
// (appPort) once known, else what ports holds for port, else an error
// wrapping deploy.ErrPortNotPublished.
func AddrOf(name, id string, port, appPort int, addr string, ports map[int]string) (string, error) {
	if port == appPort && addr != "" {
		return addr, nil
	}
	if a := ports[port]; a != "" {
		return a, nil
	}
	return "", fmt.Errorf("%s: machine %s: port %d: %w", name, id, port, deploy.ErrPortNotPublished)
}

// Find is a backend's Get of the item whose engine ID ref names: what
// says what the engine's IDs are ("container"); list lists the namespace's
// items that the engine's id filter matches with ref; forget, when none is
// found, drops what the backend kept of ref. See Pick for the errors.
func Find[T any](ctx context.Context, name, what, ref string, list func(ctx context.Context, ref string) ([]T, error), id func(T) string, forget func(ref string)) (T, error) {
	var zero T
	if !ValidRef(ref) {
		return zero, fmt.Errorf("%s: machine %q: %w: not a %s ID", name, ref, deploy.ErrNotFound, what)
	}
	items, err := list(ctx, ref)
	if err != nil {
		return zero, err
	}
	it, err := Pick(name, ref, items, id)
	if errors.Is(err, deploy.ErrNotFound) {
		forget(ref)
	}
	return it, err
}

// Forget drops from handles, which mu guards, the entries whose key (an
// engine ID) starts with ref: machines removed behind the process's back.
func Forget[M any](mu *sync.Mutex, handles map[string]M, ref string) {
	mu.Lock()
	defer mu.Unlock()
	maps.DeleteFunc(handles, func(id string, _ M) bool { return strings.HasPrefix(id, ref) })
}

// Pick returns the one item whose engine ID (id) ref names (see ValidRef),
// for a backend's Get: an error wrapping deploy.ErrNotFound when none does,
// or deploy.ErrInvalid when ref is a prefix of more than one.
func Pick[T any](name, ref string, items []T, id func(T) string) (T, error) {
	var zero T
	var found []T
	for _, it := range items {
		switch full := id(it); {
		case full == ref:
			return it, nil
		case strings.HasPrefix(full, ref):
			found = append(found, it)
		}
	}
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("%s: machine %s: %w", name, ref, deploy.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return zero, fmt.Errorf("%s: machine %s: %w: the id names %d machines", name, ref, deploy.ErrInvalid, len(found))
}

// SortByCreated orders an engine's listing oldest first: by the LabelCreated
// label (labels), which has the grain the engine's own creation time
// (created) lacks, then by that time, then by ID.
func SortByCreated[T any](items []T, labels func(T) map[string]string, created func(T) time.Time, id func(T) string) {
	at := func(it T) time.Time {
		if t, err := time.Parse(time.RFC3339Nano, labels(it)[LabelCreated]); err == nil {
			return t
		}
		return created(it)
	}
	sort.SliceStable(items, func(i, j int) bool {
		ti, tj := at(items[i]), at(items[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return id(items[i]) < id(items[j])
	})
}
