package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/config"
)

func TestCanaryExtension(t *testing.T) {
	c, err := config.Parse([]byte("app = \"a\"\n[deploy]\nstrategy = \"canary\"\ncanary_steps = [5, 25, 60]\ncanary_step_duration = 30\n"))
	require.NoError(t, err)
	can, err := c.Canary()
	require.NoError(t, err)
	assert.Equal(t, config.Canary{Steps: []int{5, 25, 60}, StepDuration: 30 * time.Second}, can)
	for _, k := range c.Unknown {
		assert.True(t, config.IsExtension(k), "only the extension keys are unknown: %s", k)
	}

	c, err = config.Parse([]byte("app = \"a\"\n[deploy]\ncanary_step_duration = \"2m\"\n"))
	require.NoError(t, err)
	can, err = c.Canary()
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, can.StepDuration)

	for _, bad := range []string{"canary_steps = [50, 10]", "canary_steps = [0]", "canary_steps = \"x\"", "canary_step_duration = \"soon\"", "canary_step_duration = -3"} {
		c, err := config.Parse([]byte("app = \"a\"\n[deploy]\n" + bad + "\n"))
		require.NoError(t, err, bad)
		_, err = c.Canary()
		assert.ErrorIs(t, err, config.ErrInvalid, bad)
	}
	steps, err := config.CanarySteps("10, 50%")
	require.NoError(t, err)
	assert.Equal(t, []int{10, 50}, steps)
}

func TestMaxBodyBytesExtension(t *testing.T) {
	c, err := config.Parse([]byte("app = \"a\"\n[http_service]\ninternal_port = 8080\nmax_body_bytes = 1048576\n"))
	require.NoError(t, err)
	n, set, err := c.MaxBodyBytes()
	require.NoError(t, err)
	assert.True(t, set)
	assert.Equal(t, int64(1<<20), n)
	assert.Equal(t, []string{config.KeyMaxBodyBytes}, c.Unknown, "listed as unknown, known as an extension")
	assert.True(t, config.IsExtension(c.Unknown[0]))

	c, err = config.Parse([]byte("app = \"a\"\n[http_service]\ninternal_port = 8080\n"))
	require.NoError(t, err)
	_, set, err = c.MaxBodyBytes()
	require.NoError(t, err)
	assert.False(t, set)

	for _, bad := range []string{"max_body_bytes = -1", "max_body_bytes = \"1MB\""} {
		c, err := config.Parse([]byte("app = \"a\"\n[http_service]\n" + bad + "\n"))
		require.NoError(t, err, bad)
		_, _, err = c.MaxBodyBytes()
		assert.ErrorIs(t, err, config.ErrInvalid, bad)
	}
}
