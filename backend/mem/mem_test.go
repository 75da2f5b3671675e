package mem_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func newBackend(t *testing.T) *mem.Backend {
	b := mem.New()
	b.Register("app:v1", deploytest.App("v1"))
	t.Cleanup(func() { b.Close() })
	return b
}

func launch(t *testing.T, b *mem.Backend, spec deploy.MachineSpec) *mem.Machine {
	t.Helper()
	ctx := context.Background()
	m, err := b.Create(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	mm, err := b.Machine(m.ID())
	require.NoError(t, err)
	return mm
}

func TestMemServesAndStopsGracefully(t *testing.T) {
	b := newBackend(t)
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
	assert.Equal(t, deploy.StateStarted, m.State())
	code, body := get(t, m.Addr(), "/")
	assert.Equal(t, 200, code)
	assert.Equal(t, "v1", body)

	// A slow request in flight when Stop is called completes.
	entered := make(chan struct{})
	b.Register("app:slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond) // the request's own work
		w.Write([]byte("slow done"))
	}))
	m = launch(t, b, deploy.MachineSpec{App: "a", Image: "app:slow"})
	var wg sync.WaitGroup
	wg.Add(1)
	var slowCode int
	var slowBody string
	go func() {
		defer wg.Done()
		resp, err := client.Get("http://" + m.Addr() + "/")
		if err != nil {
			slowBody = err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slowCode, slowBody = resp.StatusCode, string(b)
	}()
	<-entered
	require.NoError(t, m.Stop(context.Background()))
	wg.Wait()
	assert.Equal(t, 200, slowCode, slowBody)
	assert.Equal(t, "slow done", slowBody)
	st, err := m.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, st.Code)
	assert.Equal(t, deploy.StateStopped, m.State())

	require.NoError(t, m.Destroy(context.Background()))
	require.NoError(t, m.Destroy(context.Background()), "destroy twice")
	_, err = b.Get(context.Background(), m.ID())
	assert.ErrorIs(t, err, deploy.ErrNotFound)
}

func TestMemIgnoredStopIsKilled(t *testing.T) {
	b := newBackend(t)
	b.Inject(mem.Fault{Image: "app:v1", IgnoreStopFor: time.Hour})
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", StopTimeout: 100 * time.Millisecond})
	// The app ignores the stop for an hour: the stop timeout, not the app,
	// ends it (the killed exit says so).
	require.NoError(t, m.Stop(context.Background()))
	st, _ := m.Wait(context.Background())
	assert.Equal(t, mem.ExitKilled, st.Code)
	assert.Contains(t, st.Reason, "stop timeout")
}

func TestMemCommandOverride(t *testing.T) {
	b := newBackend(t)
	b.RegisterCommand("migrate", func(ctx context.Context, args []string, env map[string]string, out *mem.Output) int {
		io.WriteString(out, "migrating "+strings.Join(args, ",")+" release="+env["RELEASE_COMMAND"]+"\n")
		return 3
	})
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Cmd: []string{"migrate", "up"}, Env: map[string]string{"RELEASE_COMMAND": "1"}})
	st, err := m.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, st.Code)
	rc, err := m.Logs(context.Background(), false)
	require.NoError(t, err)
	out, _ := io.ReadAll(rc)
	rc.Close()
	assert.Equal(t, "migrating up release=1\n", string(out))
}

func TestMemCommandStoppedByCtx(t *testing.T) {
	b := newBackend(t)
	b.RegisterCommand("forever", func(ctx context.Context, _ []string, _ map[string]string, out *mem.Output) int {
		io.WriteString(out, "waiting\n")
		<-ctx.Done()
		return 143
	})
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Cmd: []string{"forever"}})
	rc, err := m.Logs(context.Background(), true)
	require.NoError(t, err)
	buf := make([]byte, 8)
	n, err := io.ReadFull(rc, buf)
	require.NoError(t, err)
	assert.Equal(t, "waiting\n", string(buf[:n]))
	require.NoError(t, m.Stop(context.Background()))
	_, err = rc.Read(buf)
	assert.ErrorIs(t, err, io.EOF, "a followed log ends when the machine exits")
	rc.Close()
	st, _ := m.Wait(context.Background())
	assert.Equal(t, 143, st.Code)
}

func TestMemFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("fail start", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", FailStart: true})
		m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "app:v1"})
		require.NoError(t, err)
		assert.ErrorIs(t, m.Start(ctx), mem.ErrInjected)
	})
	t.Run("crash after", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", CrashAfter: 50 * time.Millisecond})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		st, err := m.Wait(ctx)
		require.NoError(t, err)
		assert.Equal(t, mem.ExitCrashed, st.Code)
		assert.Contains(t, st.Reason, "crashed")
	})
	t.Run("listen after", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", ListenAfter: 200 * time.Millisecond})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		_, err := client.Get("http://" + m.Addr() + "/")
		assert.ErrorIs(t, err, syscall.ECONNREFUSED, "not listening during boot")
		// The port is held meanwhile: nothing else can take it.
		if ln, err := net.Listen("tcp", m.Addr()); err == nil {
			ln.Close()
			t.Fatalf("%s could be taken before the app listens", m.Addr())
		}
		require.Eventually(t, func() bool {
			resp, err := client.Get("http://" + m.Addr() + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 5*time.Second, 20*time.Millisecond)
	})
	t.Run("stopped during boot", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", ListenAfter: time.Minute})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		require.NoError(t, m.Stop(ctx))
		_, err := m.Wait(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Destroy(ctx))
		ln, err := net.Listen("tcp", m.Addr())
		require.NoError(t, err, "the reserved port is given back")
		ln.Close()
	})
	t.Run("unhealthy nth", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", Nth: 2, Unhealthy: true})
		m1 := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		m2 := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		c1, _ := get(t, m1.Addr(), "/health")
		c2, _ := get(t, m2.Addr(), "/health")
		assert.Equal(t, 200, c1)
		assert.Equal(t, 503, c2)
		c2, _ = get(t, m2.Addr(), "/")
		assert.Equal(t, 200, c2, "only the health endpoint fails")
		m1.SetHealthy(false)
		c1, _ = get(t, m1.Addr(), "/health")
		assert.Equal(t, 503, c1)
	})
	t.Run("injected after create", func(t *testing.T) {
		b := newBackend(t)
		m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "app:v1"})
		require.NoError(t, err)
		b.Inject(mem.Fault{Machine: m.ID(), Unhealthy: true}) // read when the machine starts
		require.NoError(t, m.Start(ctx))
		c, _ := get(t, m.Addr(), "/health")
		assert.Equal(t, 503, c)
	})
	t.Run("transient op error", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Op: mem.OpCreate, Transient: true, Times: 2})
		for range 2 {
			_, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "app:v1"})
			assert.ErrorIs(t, err, deploy.ErrTransient)
			assert.ErrorIs(t, err, mem.ErrInjected)
		}
		_, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "app:v1"})
		assert.NoError(t, err)
	})
	t.Run("permanent op error", func(t *testing.T) {
		b := newBackend(t)
		boom := errors.New("boom")
		b.Inject(mem.Fault{Op: mem.OpStop, Err: boom})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		err := m.Stop(ctx)
		assert.ErrorIs(t, err, boom)
		assert.NotErrorIs(t, err, deploy.ErrTransient)
	})
	t.Run("unregistered image", func(t *testing.T) {
		b := newBackend(t)
		m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "nope"})
		require.NoError(t, err)
		assert.ErrorIs(t, m.Start(ctx), deploy.ErrNotFound)
	})
}

func TestMemCloseIgnoresFaults(t *testing.T) {
	b := newBackend(t)
	b.Inject(mem.Fault{Op: mem.OpDestroy}) // every Destroy fails
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
	require.ErrorIs(t, m.Destroy(context.Background()), mem.ErrInjected)
	require.NoError(t, b.Close())
	assert.Equal(t, deploy.StateDestroyed, m.State(), "Close destroys the machine whatever the faults")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := m.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, mem.ExitKilled, st.Code)
	assert.Zero(t, b.Count())
}

func TestMemList(t *testing.T) {
	b := newBackend(t)
	launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
	launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
	launch(t, b, deploy.MachineSpec{App: "b", Image: "app:v1"})
	ms, err := b.List(context.Background(), "a")
	require.NoError(t, err)
	assert.Len(t, ms, 2)
}
