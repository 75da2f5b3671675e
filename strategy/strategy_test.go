package strategy_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestByName(t *testing.T) {
	for _, n := range strategy.Names {
		s, err := strategy.ByName(n, strategy.Options{})
		assert.NoError(t, err)
		assert.Equal(t, n, s.Name())
	}
	s, err := strategy.ByName("", strategy.Options{})
	assert.NoError(t, err)
	assert.Equal(t, "rolling", s.Name(), "the default")
	_, err = strategy.ByName("blue-green", strategy.Options{})
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	assert.ErrorContains(t, err, `unknown strategy "blue-green" (want rolling, bluegreen, canary or immediate)`)
}

func TestByNameOptions(t *testing.T) {
	opts := strategy.Options{
		Rolling:   rolling.Strategy{MaxUnavailable: 2},
		BlueGreen: bluegreen.Strategy{Parallel: 3},
		Canary:    canary.Strategy{Steps: []canary.Step{{Percent: 20}}, Bake: time.Second},
	}
	for name, want := range map[string]deploy.Strategy{"rolling": opts.Rolling, "bluegreen": opts.BlueGreen, "canary": opts.Canary} {
		s, err := strategy.ByName(name, opts)
		require.NoError(t, err, name)
		assert.Equal(t, want, s, "%s takes its own settings", name)
	}

	for name, opts := range map[string]strategy.Options{
		"rolling":   {Rolling: rolling.Strategy{MaxUnavailable: math.NaN()}},
		"bluegreen": {BlueGreen: bluegreen.Strategy{Parallel: -1}},
		"canary":    {Canary: canary.Strategy{Steps: []canary.Step{{Percent: 100}}}},
	} {
		_, err := strategy.ByName(name, opts)
		assert.ErrorIs(t, err, deploy.ErrInvalid, name)
		_, err = strategy.ByName("immediate", opts)
		assert.NoError(t, err, "another strategy's settings are ignored")
	}
}

// TestValidate checks that each strategy's Validate names the setting it refuses.
func TestValidate(t *testing.T) {
	for want, v := range map[string]deploy.Validator{
		"max_unavailable -1":                         rolling.Strategy{MaxUnavailable: -1},
		"max_unavailable 1.5: a count must be whole": rolling.Strategy{MaxUnavailable: 1.5},
		"Parallel -2":                                bluegreen.Strategy{Parallel: -2},
		"HoldTimeout -1s":                            bluegreen.Strategy{HoldTimeout: -time.Second},
		"Steps[1].Percent 0: want 1..99":             canary.Strategy{Steps: []canary.Step{{Percent: 10}, {}}},
		"Steps[0].Machines -1":                       canary.Strategy{Steps: []canary.Step{{Percent: 10, Machines: -1}}},
		"Steps[0].Bake -1s":                          canary.Strategy{Steps: []canary.Step{{Percent: 10, Bake: -time.Second}}},
		"Bake -1s":                                   canary.Strategy{Bake: -time.Second},
		"MaxBake -1s":                                canary.Strategy{MaxBake: -time.Second},
		"Parallel -1":                                canary.Strategy{Parallel: -1},
		"Analysis.MaxErrorRateIncrease NaN":          canary.Strategy{Analysis: canary.Analysis{MaxErrorRateIncrease: math.NaN()}},
		"Analysis.MaxLatencyRatio -2":                canary.Strategy{Analysis: canary.Analysis{MaxLatencyRatio: -2}},
		"Analysis.LatencySlack -1ms":                 canary.Strategy{Analysis: canary.Analysis{LatencySlack: -time.Millisecond}},
		"Analysis.Interval -1ms":                     canary.Strategy{Analysis: canary.Analysis{Interval: -time.Millisecond}},
	} {
		err := v.Validate()
		assert.ErrorIs(t, err, deploy.ErrInvalid, want)
		assert.ErrorContains(t, err, want)
	}
	for _, v := range []deploy.Validator{rolling.Strategy{}, rolling.Strategy{MaxUnavailable: 0.33}, rolling.Strategy{MaxUnavailable: 1e9}, bluegreen.Strategy{}, canary.Strategy{}} {
		assert.NoError(t, v.Validate(), "%#v", v)
	}
}
