// Package strategy chooses a deploy strategy by name. The strategies
// themselves live in its subpackages.
package strategy

import (
	"fmt"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/strategy/bluegreen"
	"github.com/cutover/deploy/strategy/canary"
	"github.com/cutover/deploy/strategy/immediate"
	"github.com/cutover/deploy/strategy/rolling"
)

// Names lists the strategies ByName knows, the default first.
var Names = []string{"rolling", "bluegreen", "canary", "immediate"}

// Options are the settings of the strategy ByName returns: the named
// strategy's field is used and the others are ignored (immediate has no
// settings). The zero value gives every strategy its defaults, which each
// package documents: rolling replaces one machine at a time, bluegreen
// starts up to 8 at once and switches when all are healthy, canary runs
// canary.DefaultSteps for canary.DefaultBake each.
type Options struct {
	Rolling   rolling.Strategy
	BlueGreen bluegreen.Strategy
	Canary    canary.Strategy
}

// ByName returns the strategy named name ("" means rolling) with its settings
// from opts. An unknown name, or settings the strategy's Validate refuses,
// is an error wrapping deploy.ErrInvalid.
func ByName(name string, opts Options) (deploy.Strategy, error) {
	var s deploy.Strategy
	switch name {
	case "", "rolling":
		s = opts.Rolling
	case "bluegreen":
		s = opts.BlueGreen
	case "canary":
		s = opts.Canary
	case "immediate":
		s = immediate.Strategy{}
	default:
		return nil, fmt.Errorf("%w: unknown strategy %q (want rolling, bluegreen, canary or immediate)", deploy.ErrInvalid, name)
	}
	if v, ok := s.(deploy.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return s, nil
}
