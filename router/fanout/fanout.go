// Package fanout is a deploy.Router that sets one target set on several
// routers at once: the proxies of an app that has one on each edge host (the
// proxy in-process, and others driven over control.Client).
//
// SetTargets calls every router concurrently and returns once all of them
// have returned, that is once every removed target has drained on every
// proxy; it fails, and so fails the strategy's step, if any router fails.
// The routers that succeeded keep the new set: the strategy's rollback sets
// the old set again on all of them.
//
// The first router is the primary: Targets reports its set, and Unwrap
// returns it, so a canary analyses the primary proxy's statistics (the
// traffic of one edge host, a sample of the whole).
package fanout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/cutover/deploy"
)

// Router fans SetTargets out to several routers. Its zero value has no
// routers, and SetTargets on it does nothing.
type Router struct {
	// Routers receive every target set; the first is the primary.
	Routers []deploy.Router
	// Names label the routers in errors ("router 1 (edge-b): ..."); optional.
	Names []string
}

var (
	_ deploy.Router         = (*Router)(nil)
	_ deploy.WeightReporter = (*Router)(nil)
	_ deploy.RouterWrapper  = (*Router)(nil)
)

// New returns a Router over routers, the first being the primary.
func New(routers ...deploy.Router) *Router { return &Router{Routers: routers} }

// SetTargets sets targets on every router at once and returns once all have
// drained their removed targets. The error joins each failed router's,
// naming it.
func (r *Router) SetTargets(ctx context.Context, targets map[string]int) error {
	errs := make([]error, len(r.Routers))
	var wg sync.WaitGroup
	for i, rt := range r.Routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.SetTargets(ctx, maps.Clone(targets)); err != nil {
				errs[i] = fmt.Errorf("fanout: %s: %w", r.name(i), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Targets returns the primary router's targets when it reports them, else nil.
func (r *Router) Targets() map[string]int {
	if len(r.Routers) == 0 {
		return nil
	}
	if wr, ok := r.Routers[0].(deploy.WeightReporter); ok {
		return wr.Targets()
	}
	return nil
}

// Unwrap returns the primary router (nil without routers), so that what
// looks for an ability through wrapped routers (deploy.RouterChain: the
// canary's statistics, deploy.Monitor) finds the primary's.
func (r *Router) Unwrap() deploy.Router {
	if len(r.Routers) == 0 {
		return nil
	}
	return r.Routers[0]
}

func (r *Router) name(i int) string {
	if i < len(r.Names) && r.Names[i] != "" {
		return fmt.Sprintf("router %d (%s)", i, r.Names[i])
	}
	return fmt.Sprintf("router %d", i)
}
