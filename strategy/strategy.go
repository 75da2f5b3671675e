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

// ByName returns the strategy named name with its defaults; "" means rolling.
// maxUnavailable is used by rolling only (see rolling.Strategy).
func ByName(name string, maxUnavailable float64) (deploy.Strategy, error) {
	switch name {
	case "", "rolling":
		s := rolling.Strategy{MaxUnavailable: maxUnavailable}
		if _, err := s.BatchSize(1 << 30); err != nil {
			return nil, err
		}
		return s, nil
	case "bluegreen":
		return bluegreen.Strategy{}, nil
	case "canary":
		return canary.Strategy{}, nil
	case "immediate":
		return immediate.Strategy{}, nil
	}
	return nil, fmt.Errorf("%w: unknown strategy %q (want rolling, bluegreen, canary or immediate)", deploy.ErrInvalid, name)
}
