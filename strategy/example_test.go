package strategy_test

import (
	"errors"
	"fmt"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/strategy"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/rolling"
)

// A strategy chosen by name, as from a configuration file, with its
// settings; settings it cannot run with are refused at once.
func ExampleByName() {
	s, err := strategy.ByName("rolling", strategy.Options{Rolling: rolling.Strategy{MaxUnavailable: 0.5}})
	fmt.Println(s.Name(), s.(rolling.Strategy).MaxUnavailable, err)

	_, err = strategy.ByName("canary", strategy.Options{Canary: canary.Strategy{Steps: []canary.Step{{Percent: 150}}}})
	fmt.Println(errors.Is(err, deploy.ErrInvalid), err)
	// Output:
	// rolling 0.5 <nil>
	// true canary: invalid: Steps[0].Percent 150: want 1..99
}
