// Package strategy chooses a deploy strategy by name. The strategies
// themselves live in its subpackages.
package strategy

import (
	"fmt"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/strategy/immediate"
	"github.com/cutover/deploy/strategy/rolling"
)

// Names lists the strategies ByName knows, the default first.
var Names = []string{"rolling", "immediate"}

// ByName returns the strategy named name with its defaults; "" means rolling.
// maxUnavailable is used by rolling only.
func ByName(name string, maxUnavailable float64) (deploy.Strategy, error) {
	switch name {
	case "", "rolling":
		return rolling.Strategy{MaxUnavailable: maxUnavailable}, nil
	case "immediate":
		return immediate.Strategy{}, nil
	}
	return nil, fmt.Errorf("%w: unknown strategy %q (want one of %v)", deploy.ErrInvalid, name, Names)
}
