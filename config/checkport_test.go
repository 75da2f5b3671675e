package config_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/internal/testenv"
)

// A Postgres-like app serves 5432 and answers its checks on 5500: the plan's
// checks dial 5500 (its top-level checks' own port), and the service's tcp
// check the service's port, so the deploy passes only when each probes its own.
func TestCheckPortsDeploy(t *testing.T) {
	e := testenv.New(t)
	checks := http.NewServeMux()
	checks.HandleFunc("/flycheck/", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	e.Backend.Register("pg", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the app port has no checks", http.StatusNotFound)
	}))
	e.Backend.RegisterPort("pg", 5500, checks)

	c, err := config.Load(filepath.Join("testdata", "forms", "check-ports.toml"))
	require.NoError(t, err)
	c.App, c.Build.Image = testenv.App, "pg"
	for name, chk := range c.Checks {
		chk.Interval = 20 * time.Millisecond
		c.Checks[name] = chk
	}
	p, err := c.Plan()
	require.NoError(t, err)
	req, err := p.Request()
	require.NoError(t, err)
	req.WaitTimeout = 10 * time.Second
	res, err := e.Deployer.Deploy(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Machines, 1)
	m, err := e.Backend.Machine(res.Machines[0])
	require.NoError(t, err)
	assert.Equal(t, []int{5500}, m.Spec().Ports)

	// The same checks against the app port fail: the port matters.
	p.Checks[1].Port, p.Checks[2].Port = 5432, 5432
	assert.Error(t, p.Health().Check(context.Background(), m))
}
