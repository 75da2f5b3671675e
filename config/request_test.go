package config_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/health"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
	"github.com/cutover/deploy/strategy/bluegreen"
)

const requestTOML = `
app = "app"
[build]
  image = "v1"
[deploy]
  strategy = "bluegreen"
  wait_timeout = 30
  release_command = "migrate up"
[env]
  MODE = "one"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    path = "/health"
    interval = "20ms"
    timeout = 500
    grace_period = "10ms"
    headers = { X-Check = "1" }
[checks.tcp]
  type = "tcp"
  interval = "30ms"
`

func TestConfigRequest(t *testing.T) {
	c, err := config.Parse([]byte(requestTOML))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	req, err := p.Request()
	require.NoError(t, err)
	assert.IsType(t, bluegreen.Strategy{}, req.Strategy)
	assert.Equal(t, 30*time.Second, req.WaitTimeout)
	assert.Equal(t, []string{"migrate", "up"}, req.ReleaseCommand)
	assert.Equal(t, 5*time.Minute, req.ReleaseCommandTimeout)
	assert.Equal(t, "v1", req.Spec.Image)
	assert.NotEmpty(t, req.Config)
	all, ok := req.Health.(health.All)
	require.True(t, ok)
	require.Len(t, all, 2)
	h := all[0].(health.HTTP)
	assert.Equal(t, "/health", h.Path)
	assert.Equal(t, 500*time.Millisecond, h.Timeout)
	assert.Equal(t, http.Header{"X-Check": {"1"}}, h.Headers)
	assert.Equal(t, deploy.HealthPolicy{GracePeriod: 10 * time.Millisecond, Interval: 20 * time.Millisecond, Threshold: 1}, deploy.PolicyOf(req.Health))
	assert.IsType(t, health.TCP{}, all[1])
}

// A config deploys; a rollback redeploys a release with the config it was deployed with.
func TestConfigDeployAndRollback(t *testing.T) {
	e := testenv.New(t)
	e.Deployer.Store = release.NewMemory()
	e.Deployer.FromRelease = config.FromRelease
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		c, err := config.Parse([]byte(requestTOML))
		require.NoError(t, err)
		c.Build.Image = v
		c.Env["MODE"] = "mode-" + v
		c.Deploy.ReleaseCommand = ""
		p, err := c.Plan()
		require.NoError(t, err)
		req, err := p.Request()
		require.NoError(t, err)
		req.Count = 2
		res, err := e.Deployer.Deploy(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, "bluegreen", res.Strategy)
	}
	res, err := e.Deployer.Rollback(ctx, testenv.App, 1)
	require.NoError(t, err)
	assert.Equal(t, "bluegreen", res.Strategy, "the stored strategy")
	ms, err := e.Backend.List(ctx, testenv.App)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	for _, m := range ms {
		assert.Equal(t, "v1", m.Spec().Image)
		assert.Equal(t, "mode-v1", m.Spec().Env["MODE"])
	}
	_, err = config.FromRelease(deploy.Release{Version: 3})
	assert.ErrorIs(t, err, deploy.ErrInvalid)
}

// addrMachine is a machine that only has an address.
type addrMachine struct {
	deploy.Machine
	addr string
}

func (m addrMachine) Addr() string { return m.addr }

// tls_skip_verify checks a self-signed https endpoint, and like every check it
// does not follow redirects.
func TestConfigTLSSkipVerify(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/health", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	m := addrMachine{addr: strings.TrimPrefix(srv.URL, "https://")}
	check := func(path string, skip bool) error {
		p := config.Plan{Checks: []config.Check{{Type: config.CheckHTTP, Protocol: "https", Path: path, TLSSkipVerify: skip}}}
		return p.Health().Check(context.Background(), m)
	}
	assert.NoError(t, check("/health", true))
	var unverified *tls.CertificateVerificationError
	assert.ErrorAs(t, check("/health", false), &unverified, "the certificate is verified by default")
	assert.ErrorContains(t, check("/moved", true), "status 302, want 200")
}
