// Package load is deploytest's load generator under its former names, for the
// library's own tests.
package load

import (
	"context"

	"github.com/cutover/deploy/deploytest"
)

type (
	// Options is deploytest.LoadOptions.
	Options = deploytest.LoadOptions
	// Run is deploytest.Load.
	Run = deploytest.Load
	// Result is deploytest.LoadResult.
	Result = deploytest.LoadResult
)

// Start is deploytest.StartLoad.
func Start(ctx context.Context, baseURL string, opts Options) *Run {
	return deploytest.StartLoad(ctx, baseURL, opts)
}
