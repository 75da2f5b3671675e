package mem_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
)

// waitRestarts waits until m has been restarted n times and serves again.
func waitRestarts(t *testing.T, m *mem.Machine, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return m.Restarts() >= n && m.State() == deploy.StateStarted
	}, 10*time.Second, 5*time.Millisecond, "restart %d", n)
}

// A killed machine comes back on a new port under the default policy
// (on-failure); Wait returns the killed run's exit, then waits for the next.
func TestKilledMachineRestarts(t *testing.T) {
	b := newBackend(t)
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
	before := m.Addr()
	m.Kill()
	st, err := m.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, mem.ExitKilled, st.Code)
	waitRestarts(t, m, 1)
	assert.NotEqual(t, before, m.Addr(), "a restart listens on a new port")
	code, body := get(t, m.Addr(), "/")
	assert.Equal(t, 200, code)
	assert.Equal(t, "v1", body)

	waited := make(chan deploy.ExitStatus, 1)
	go func() {
		st, _ := m.Wait(context.Background())
		waited <- st
	}()
	select {
	case st := <-waited:
		t.Fatalf("Wait returned %v for the running restart", st)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, m.Stop(context.Background()))
	assert.Equal(t, 0, (<-waited).Code)
	// The restart decision is made as the run ends: Stopped (not Starting,
	// which a pending restart is) means none will come.
	assert.Equal(t, deploy.StateStopped, m.State(), "a stop is never restarted")
	assert.Equal(t, 1, m.Restarts())
}

func TestRestartPolicies(t *testing.T) {
	ctx := context.Background()
	t.Run("never", func(t *testing.T) {
		b := newBackend(t)
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Restart: deploy.RestartPolicy{Policy: deploy.RestartNever}})
		m.Kill()
		assert.Equal(t, deploy.StateStopped, m.State(), "stopped, no restart pending")
		assert.Zero(t, m.Restarts())
	})
	t.Run("on-failure gives up after its retries", func(t *testing.T) {
		b := newBackend(t)
		b.RestartDelay = 10 * time.Millisecond
		b.Inject(mem.Fault{Image: "app:v1", CrashAfter: 30 * time.Millisecond})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Restart: deploy.RestartPolicy{MaxRetries: 2}})
		require.Eventually(t, func() bool { return m.Restarts() == 2 && m.State() == deploy.StateStopped }, 10*time.Second, 5*time.Millisecond)
		assert.Equal(t, 2, m.Restarts(), "no third restart: stopped, none pending")
	})
	t.Run("on-failure leaves a clean exit", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", ExitAfter: 20 * time.Millisecond, ExitCode: 0})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		_, err := m.Wait(ctx)
		require.NoError(t, err)
		assert.Equal(t, deploy.StateStopped, m.State(), "stopped, no restart pending")
	})
	t.Run("always restarts a clean exit", func(t *testing.T) {
		b := newBackend(t)
		b.Inject(mem.Fault{Image: "app:v1", ExitAfter: 50 * time.Millisecond, ExitCode: 0})
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Restart: deploy.RestartPolicy{Policy: deploy.RestartAlways}})
		waitRestarts(t, m, 1)
	})
	t.Run("stop while down cancels the restart", func(t *testing.T) {
		b := newBackend(t)
		b.RestartDelay = time.Hour
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		m.Kill()
		assert.Equal(t, deploy.StateStarting, m.State(), "down, restart pending")
		require.NoError(t, m.Stop(ctx))
		assert.Equal(t, deploy.StateStopped, m.State())
	})
	t.Run("destroy while down cancels the restart", func(t *testing.T) {
		b := newBackend(t)
		b.RestartDelay = 50 * time.Millisecond
		m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1"})
		m.Kill()
		require.NoError(t, m.Destroy(ctx))
		assert.Equal(t, deploy.StateDestroyed, m.State())
		assert.Zero(t, m.Restarts())
	})
}

// A command override, given as Cmd or as Entrypoint, runs once: a killed one
// is not restarted, whatever the policy.
func TestKilledCommandNotRestarted(t *testing.T) {
	for name, spec := range map[string]deploy.MachineSpec{
		"cmd":        {Cmd: []string{"forever"}},
		"entrypoint": {Entrypoint: []string{"forever"}},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBackend(t)
			b.RestartDelay = time.Hour // a pending restart shows as StateStarting
			b.RegisterCommand("forever", func(ctx context.Context, _ []string, _ map[string]string, _ *mem.Output) int {
				<-ctx.Done()
				return 143
			})
			spec.App, spec.Image = "a", "app:v1"
			spec.Restart = deploy.RestartPolicy{Policy: deploy.RestartAlways}
			m := launch(t, b, spec)
			m.Kill()
			_, err := m.Wait(context.Background())
			require.NoError(t, err)
			assert.Equal(t, deploy.StateStopped, m.State(), "stopped, no restart pending")
		})
	}
}
