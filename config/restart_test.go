package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/config"
)

func TestRestartSections(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "restart.toml"))
	require.NoError(t, err)
	assert.Equal(t, []config.Restart{
		{Policy: "on-failure", MaxRetries: 3, Processes: []string{"app"}},
		{Policy: "always", Processes: []string{"worker"}},
		{Policy: "never"},
	}, c.Restart)
	assert.NotContains(t, c.Unknown, "restart")
	assert.Equal(t, deploy.RestartPolicy{Policy: "on-failure", MaxRetries: 3}, c.RestartPolicy("app"))
	assert.Equal(t, deploy.RestartPolicy{Policy: "always"}, c.RestartPolicy("worker"))
	assert.Equal(t, deploy.RestartPolicy{Policy: "never"}, c.RestartPolicy("cron"), "the section without processes")

	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, deploy.RestartPolicy{Policy: "on-failure", MaxRetries: 3}, p.Spec.Restart, "the app group's policy")
}

func TestRestartDefault(t *testing.T) {
	c, err := config.Parse([]byte("app = \"x\"\n"))
	require.NoError(t, err)
	p, err := c.Plan()
	require.NoError(t, err)
	assert.Equal(t, deploy.RestartPolicy{}, p.Spec.Restart)
	assert.Equal(t, "on-failure (10 retries)", p.Spec.Restart.String(), "fly's default for deployed machines")

	// One table, not an array, is taken as an array of one.
	c, err = config.Parse([]byte("app = \"x\"\n[restart]\npolicy = \"ALWAYS\"\n"))
	require.NoError(t, err)
	assert.Equal(t, deploy.RestartPolicy{Policy: "always"}, c.RestartPolicy(config.DefaultProcessGroup))
}

func TestRestartErrors(t *testing.T) {
	for _, c := range []struct{ name, toml, key, msg string }{
		{"unknown policy", "[[restart]]\npolicy = \"sometimes\"\n", "restart[0].policy", "want always, on-failure or never"},
		{"negative retries", "[[restart]]\nretries = -1\n", "restart[0].retries", "want 0 or more"},
		{"retries not a number", "[[restart]]\nretries = \"3\"\n", "restart[0].retries", "integer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte("app = \"x\"\n" + c.toml))
			require.Error(t, err)
			assert.ErrorIs(t, err, config.ErrInvalid)
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, c.key, ce.Key)
			assert.Contains(t, err.Error(), c.msg)
			assert.Equal(t, 3, ce.Line, "line of the key: %v", err)
		})
	}
}

// The shared corpus has real fly.toml files with [[restart]]; skipped, with
// one line, when it is absent (a user's clone).
func TestRestartInCorpus(t *testing.T) {
	path := filepath.Join("..", "..", "shared", "testdata", "flytoml", "chrhansen__shred-day__fly.worker.toml")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared corpus missing: %v", err)
		}
		t.Skip("shared fly.toml corpus not present beside the module")
	}
	c, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, deploy.RestartPolicy{Policy: "on-failure", MaxRetries: 3}, c.RestartPolicy(config.DefaultProcessGroup))
}
