package mem_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/deploytest"
)

// With PortForwarder, a machine's address accepts connections from the start,
// as Docker's published port does, and closes them while the app boots; once
// the app listens, requests pass through; once it stopped, nothing accepts.
func TestPortForwarder(t *testing.T) {
	b := mem.New()
	b.PortForwarder = true
	defer b.Close()
	b.Register("v1", deploytest.App("v1"))
	b.Inject(mem.Fault{Image: "v1", ListenAfter: 500 * time.Millisecond})
	ctx := context.Background()
	m, err := b.Create(ctx, deploy.MachineSpec{App: "a", Image: "v1"})
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))

	c, err := net.Dial("tcp", m.Addr())
	require.NoError(t, err, "the forwarder accepts while the app boots")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "and closes the connection")
	c.Close()
	assert.ErrorIs(t, deploy.DialCheck{}.Check(ctx, m), deploy.ErrClosedAtOnce)

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, deploy.WaitHealthy(wctx, m, deploy.DefaultCheck{}))
	code, body := get(t, m.Addr(), "/")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "v1")

	require.NoError(t, m.Stop(ctx))
	_, err = net.Dial("tcp", m.Addr())
	assert.Error(t, err, "a stopped machine's port is not published")
}
