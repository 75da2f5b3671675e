package deploytest

import (
	"context"
	"testing"
	"time"

	"github.com/cutover/deploy"
)

// OnlyVersion waits (up to 10s) for n requests of run sent from now on, then
// checks in one snapshot that version answered all of them, and fails t if
// not. Waiting for n requests of any outcome, not n of version, makes a
// wrong version fail at once instead of hiding behind the wait.
func OnlyVersion(t testing.TB, run *Load, version string, n int64) {
	t.Helper()
	epoch := run.Mark()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run.WaitEpoch(ctx, epoch, n); err != nil {
		t.Fatal(err)
	}
	if got := run.Epoch(epoch); len(got) != 1 || got[version] == 0 {
		t.Errorf("requests answered by %v, want only %s", got, version)
	}
}

// AssertNoFailures logs res and fails t when res has a failed request
// (listing the first ones) or no request at all.
func AssertNoFailures(t testing.TB, res LoadResult) {
	t.Helper()
	t.Logf("load: %s in %v", res, res.Duration.Round(time.Millisecond))
	if res.Failed != 0 {
		t.Errorf("%d of %d requests failed; first: %v", res.Failed, res.Requests, res.Errors)
	}
	if res.Requests == 0 {
		t.Errorf("no request was sent")
	}
}

// RunMonitor runs m until the test ends (its cleanup stops m and waits for
// it), as a daemon runs its Monitor beside the deploys.
func RunMonitor(t testing.TB, m *deploy.Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}
