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
