package mem_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/health"
)

// A machine serves its spec's other ports too, once its app listens, and a
// health check with a Port dials that port, not the app's.
func TestMemExtraPorts(t *testing.T) {
	b := newBackend(t)
	b.RegisterPort("app:v1", 5500, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("check port"))
	}))
	b.Inject(mem.Fault{Image: "app:v1", ListenAfter: 300 * time.Millisecond})
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Port: 5432, Ports: []int{5500, 9100}})

	_, err := m.AddrOf(5500)
	assert.ErrorIs(t, err, deploy.ErrPortNotPublished, "not before the app listens")
	ctx := context.Background()
	hc := health.HTTP{Port: 5500, Path: "/flycheck", Interval: 20 * time.Millisecond}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, deploy.WaitHealthy(wctx, m, hc))

	a5500, err := deploy.AddrOf(m, 5500)
	require.NoError(t, err)
	assert.NotEqual(t, m.Addr(), a5500)
	code, body := get(t, a5500, "/")
	assert.Equal(t, 200, code)
	assert.Equal(t, "check port", body, "the handler registered for the port")
	a9100, err := m.AddrOf(9100)
	require.NoError(t, err)
	code, body = get(t, a9100, "/")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "v1", "no handler registered: the image's")
	_, err = deploy.AddrOf(m, 7000)
	assert.ErrorIs(t, err, deploy.ErrPortNotPublished)
	assert.Error(t, health.TCP{Port: 7000}.Check(ctx, m))
	assert.NoError(t, health.TCP{Port: 9100}.Check(ctx, m))
	addr, err := deploy.AddrOf(m, 5432)
	require.NoError(t, err)
	assert.Equal(t, m.Addr(), addr, "the app port is the machine's address")

	require.NoError(t, m.Stop(ctx))
	assert.Error(t, health.TCP{Port: 9100, Timeout: time.Second}.Check(ctx, m), "closed with the app")
}

// An entrypoint override comes before the command: the registered command is
// the entrypoint's first word, and gets the rest.
func TestMemEntrypoint(t *testing.T) {
	b := newBackend(t)
	got := make(chan []string, 1)
	b.RegisterCommand("/bin/sh", func(_ context.Context, args []string, _ map[string]string, _ *mem.Output) int {
		got <- args
		return 4
	})
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "app:v1", Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"run it"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := m.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, st.Code)
	assert.Equal(t, []string{"-c", "run it"}, <-got)
}
