package strategy_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/strategy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestByName(t *testing.T) {
	for _, n := range strategy.Names {
		s, err := strategy.ByName(n, 0)
		assert.NoError(t, err)
		assert.Equal(t, n, s.Name())
	}
	s, err := strategy.ByName("", 0)
	assert.NoError(t, err)
	assert.Equal(t, "rolling", s.Name(), "the default")
	_, err = strategy.ByName("blue-green", 0)
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, `unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)`)
	_, err = strategy.ByName("rolling", math.NaN())
	assert.ErrorIs(t, err, deploy.ErrInvalid)
}
