package deploytest

import (
	"context"

	"github.com/cutover/deploy"
)

// RoutedVersions returns the versions of app's machines on b that rt routes
// traffic to, summed by weight; an address that is no machine of app counts
// as "unknown:ADDR". A deploy that ends with {"v2": 3} moved every target.
func RoutedVersions(ctx context.Context, b deploy.Backend, app string, rt deploy.WeightReporter) (map[string]int, error) {
	ms, err := b.List(ctx, app)
	if err != nil {
		return nil, err
	}
	byAddr := map[string]string{}
	for _, m := range ms {
		byAddr[m.Addr()] = m.Spec().Version
	}
	out := map[string]int{}
	for addr, w := range rt.Targets() {
		if w <= 0 {
			continue
		}
		v, ok := byAddr[addr]
		if !ok {
			v = "unknown:" + addr
		}
		out[v] += w
	}
	return out, nil
}

// Versions returns how many of app's machines on b run each version.
func Versions(ctx context.Context, b deploy.Backend, app string) (map[string]int, error) {
	ms, err := b.List(ctx, app)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, m := range ms {
		out[m.Spec().Version]++
	}
	return out, nil
}
