package mem_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
)

// counter is an app with state of its own: it counts the requests it served
// and answers its spec's GREETING and version with the count.
type counter struct {
	greeting, version string
	served            atomic.Int64
}

func newCounter(spec deploy.MachineSpec) http.Handler {
	return &counter{greeting: spec.Env["GREETING"], version: spec.Version}
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s %s #%d", c.greeting, c.version, c.served.Add(1))
}

// Two machines of an image registered with a constructor run an app each,
// made from their own spec: their state is not shared.
func TestPerMachineAppsAreDistinct(t *testing.T) {
	b := newBackend(t)
	b.RegisterPerMachine("counter", newCounter)
	spec := func(greeting string) deploy.MachineSpec {
		return deploy.MachineSpec{App: "a", Image: "counter", Version: "v7", Env: map[string]string{"GREETING": greeting}}
	}
	m1 := launch(t, b, spec("hello"))
	m2 := launch(t, b, spec("hi"))

	for _, want := range []string{"hello v7 #1", "hello v7 #2"} {
		_, body := get(t, m1.Addr(), "/")
		assert.Equal(t, want, body)
	}
	_, body := get(t, m2.Addr(), "/")
	assert.Equal(t, "hi v7 #1", body, "the second machine counts its own requests")

	c1, ok := m1.Handler().(*counter)
	require.True(t, ok, "Handler returns the instance the constructor made")
	c2 := m2.Handler().(*counter)
	assert.NotSame(t, c1, c2)
	assert.Equal(t, int64(2), c1.served.Load())
	assert.Equal(t, int64(1), c2.served.Load())
}

// A handler registered with Register is one app shared by every machine.
func TestRegisteredHandlerIsShared(t *testing.T) {
	b := newBackend(t)
	shared := &counter{greeting: "shared", version: "v1"}
	b.Register("shared", shared)
	m1 := launch(t, b, deploy.MachineSpec{App: "a", Image: "shared"})
	m2 := launch(t, b, deploy.MachineSpec{App: "a", Image: "shared"})
	get(t, m1.Addr(), "/")
	_, body := get(t, m2.Addr(), "/")
	assert.Equal(t, "shared v1 #2", body)
	assert.Same(t, shared, m1.Handler())
	assert.Same(t, shared, m2.Handler())
}

// A restart by the restart policy is a new process: the constructor makes a
// new app, which serves the app port and the spec's other ports alike.
func TestRestartMakesNewApp(t *testing.T) {
	b := newBackend(t)
	b.RegisterPerMachine("counter", newCounter)
	m := launch(t, b, deploy.MachineSpec{App: "a", Image: "counter", Version: "v1", Ports: []int{9100}})
	first := m.Handler()
	_, body := get(t, m.Addr(), "/")
	assert.Equal(t, " v1 #1", body)
	require.Eventually(t, func() bool { _, err := m.AddrOf(9100); return err == nil }, 10*time.Second, 5*time.Millisecond)
	extra, _ := m.AddrOf(9100)
	_, body = get(t, extra, "/")
	assert.Equal(t, " v1 #2", body, "the other port serves the machine's own app")

	m.Kill()
	waitRestarts(t, m, 1)
	assert.NotSame(t, first, m.Handler())
	_, body = get(t, m.Addr(), "/")
	assert.Equal(t, " v1 #1", body, "the restarted app starts afresh")
	require.Eventually(t, func() bool { a, err := m.AddrOf(9100); return err == nil && a != extra }, 10*time.Second, 5*time.Millisecond)
	extra, _ = m.AddrOf(9100)
	_, body = get(t, extra, "/")
	assert.Equal(t, " v1 #2", body, "the other port serves the restarted app")
}

// A constructor that returns nil fails the start.
func TestNilAppFailsStart(t *testing.T) {
	b := newBackend(t)
	b.RegisterPerMachine("nil", func(deploy.MachineSpec) http.Handler { return nil })
	m, err := b.Create(context.Background(), deploy.MachineSpec{App: "a", Image: "nil"})
	require.NoError(t, err)
	assert.ErrorContains(t, m.Start(context.Background()), "nil handler")
	mm, err := b.Machine(m.ID())
	require.NoError(t, err)
	assert.Nil(t, mm.Handler())
}
