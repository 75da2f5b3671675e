package main

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/cutover/deploy/control"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An upgrade uses a handed-over socket when it listens on the port the new
// flags ask for (0: any); the others are closed, and the log says so.
func TestHandedSocketsTake(t *testing.T) {
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return l
	}
	pub, https, metrics := listen(), listen(), listen()
	h := handedSockets{sockHTTP: pub, sockHTTPS: https, sockMetrics: metrics}
	assert.Regexp(t, `^https on 127\.0\.0\.1:\d+, metrics on 127\.0\.0\.1:\d+, public on 127\.0\.0\.1:\d+$`, h.String())

	assert.Same(t, pub, h.take(sockHTTP, addrPort(pub.Addr().String())))
	assert.Nil(t, h.take(sockHTTP, 1), "taken already")
	assert.Nil(t, h.take(sockHTTPS, addrPort(https.Addr().String())+1), "another port: listen anew")
	assert.Same(t, metrics, h.take(sockMetrics, 0), "any port")
	logs := newLogRing(10, io.Discard)
	h.closeUnused(logs)
	assert.Empty(t, h)
	kept, _, _ := logs.subscribe(control.LogOptions{})
	require.Len(t, kept, 1)
	assert.Contains(t, kept[0], "upgrade: the old daemon's https socket on 127.0.0.1:"+strconv.Itoa(addrPort(https.Addr().String()))+" is not served here")
	_, err := https.Accept()
	assert.Error(t, err, "closed")
	pub.Close()
	metrics.Close()
}
