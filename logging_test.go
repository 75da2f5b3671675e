package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/rolling"
)

// logBuffer keeps what an hclog logger writes. hclog serializes the writes
// of a logger and those derived from it; the test reads between deploys,
// once every goroutine that logs has returned.
type logBuffer struct{ b bytes.Buffer }

// take returns the lines written since the last take.
func (l *logBuffer) take() []string {
	s := strings.TrimSpace(l.b.String())
	l.b.Reset()
	return strings.Split(s, "\n")
}

func newLogger(level hclog.Level) (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: &buf.b, Level: level, DisableTime: true}), buf
}

// assertLine checks that one of lines has the level and starts with msg,
// and holds every key=value of kvs.
func assertLine(t *testing.T, lines []string, level, msg string, kvs ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, "["+level+"]") || !strings.HasPrefix(strings.TrimSpace(l[len(level)+2:]), msg+":") {
			continue
		}
		ok := true
		for _, kv := range kvs {
			ok = ok && strings.Contains(l, " "+kv)
		}
		if ok {
			return
		}
	}
	t.Errorf("no line [%s] %s: with %v in:\n%s", level, msg, kvs, strings.Join(lines, "\n"))
}

func TestDeployerLogs(t *testing.T) {
	e, _ := withStore(t)
	ctx := context.Background()
	log, buf := newLogger(hclog.Debug)
	e.Deployer.Logger = log

	_, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v1"), Count: 2, ReleaseCommand: []string{"migrate", "up"}})
	require.NoError(t, err)
	lines := buf.take()
	assertLine(t, lines, "DEBUG", "deploy lock taken", "app=app")
	assertLine(t, lines, "INFO", "deploy started", "app=app", "release=1", "version=v1", `detail="strategy=rolling machines=2 first deploy"`)
	assertLine(t, lines, "INFO", "release command", "app=app", "release=1", `detail="migrate up"`)
	assertLine(t, lines, "INFO", "release command end", "app=app", "release=1", `detail="exit code 0 (exited)"`)
	assertLine(t, lines, "DEBUG", "release output", "app=app", `detail="migration 0 RELEASE_COMMAND=1"`)
	for _, step := range []string{"machine created", "machine started", "machine healthy", "machine routed"} {
		assertLine(t, lines, "DEBUG", step, "app=app", "release=1", "machine=", "version=v1")
	}
	assertLine(t, lines, "INFO", "deploy succeeded", "app=app", "release=1", "version=v1", "strategy=rolling", "machines=2")

	e.Backend.Inject(mem.Fault{Image: "v2", FailStart: true})
	_, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v2")})
	require.Error(t, err)
	lines = buf.take()
	assertLine(t, lines, "INFO", "undo: traffic had not moved; removing the new machines", "app=app", "release=2", "created=")
	assertLine(t, lines, "WARN", "deploy failed", "app=app", "release=2", "version=v2", "machine=", "phase=start", "error=")

	e.MustDeploy(t, rolling.Strategy{}, "v3", 2)
	buf.take()
	_, err = e.Deployer.Rollback(ctx, testenv.App, 0)
	require.NoError(t, err)
	lines = buf.take()
	assertLine(t, lines, "INFO", "rollback started", "app=app", "to_release=1", "image=v1")
	assertLine(t, lines, "INFO", "rollback succeeded", "app=app", "release=4", "version=v4")

	// A machine of the current release gone (as with a process that
	// stopped, on the mem backend): Recover starts another.
	ms, err := e.Backend.List(ctx, testenv.App)
	require.NoError(t, err)
	require.NoError(t, ms[0].Destroy(ctx))
	_, err = e.Deployer.Recover(ctx, testenv.App)
	require.NoError(t, err)
	lines = buf.take()
	assertLine(t, lines, "INFO", "deploy started", "app=app", "version=v4", `detail="restoring 1 of the 2 machines of v4`)
	assertLine(t, lines, "INFO", "recovered", "app=app", "status=succeeded", "version=v4", "machines=2")

	log.SetLevel(hclog.Info)
	e.MustDeploy(t, rolling.Strategy{}, "v5", 2)
	for _, l := range buf.take() {
		assert.NotContains(t, l, "[DEBUG]", "the level is kept")
	}
}

// troubledStore is a release store whose lock cannot be renewed, whose
// releases cannot be finished, and which says when a renewal failed.
type troubledStore struct {
	*release.Memory
	mu      sync.Mutex
	locked  bool
	renewed chan struct{}
}

var errStore = errors.New("the store is unreachable")

func (s *troubledStore) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.locked {
		s.locked = true
		return s.Memory.Lock(ctx, app, owner, ttl)
	}
	select {
	case <-s.renewed:
	default:
		close(s.renewed)
	}
	return errStore
}

func (s *troubledStore) Update(context.Context, deploy.Release) error { return errStore }

// afterRenewal deploys with rolling once the store saw a lock renewal.
type afterRenewal struct{ renewed <-chan struct{} }

func (afterRenewal) Name() string { return "rolling" }
func (a afterRenewal) Deploy(ctx context.Context, r *deploy.Rollout) error {
	<-a.renewed
	return rolling.Strategy{}.Deploy(ctx, r)
}

// TestDeployerLogsTrouble checks the Warn and Error lines: a lock renewal
// that failed (recovered from), a release record left unfinished and an undo
// that could not remove the new machines (both leave something behind).
func TestDeployerLogsTrouble(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	log, buf := newLogger(hclog.Info)
	store := &troubledStore{Memory: release.NewMemory(), renewed: make(chan struct{})}
	e.Deployer.Logger, e.Deployer.Store, e.Deployer.LockTTL = log, store, 30*time.Millisecond

	_, err := e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v1"), Strategy: afterRenewal{store.renewed}})
	require.NoError(t, err)
	lines := buf.take()
	assertLine(t, lines, "WARN", "deploy lock: renewal failed; trying again", "app=app", "error=")
	assertLine(t, lines, "ERROR", "release history: cannot finish the release; it stays running", "app=app", "release=1", "status=complete")

	e.Deployer.Store = nil
	e.Backend.Inject(mem.Fault{Image: "v2", FailStart: true})
	e.Backend.Inject(mem.Fault{Image: "v2", Op: mem.OpDestroy})
	_, err = e.Deployer.Deploy(ctx, deploy.Request{Spec: e.Spec("v2"), Strategy: rolling.Strategy{}})
	require.Error(t, err)
	lines = buf.take()
	assertLine(t, lines, "ERROR", "undo did not complete", "app=app", "error=")
	assertLine(t, lines, "WARN", "deploy failed", "app=app", "version=v2", "phase=start")
}
