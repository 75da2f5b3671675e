package release_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/release"
)

func testReleaseLock(t *testing.T, a, b deploy.Locker) {
	ctx := context.Background()
	require.NoError(t, a.Lock(ctx, "web", "A", time.Hour))
	err := b.Lock(ctx, "web", "B", time.Hour)
	assert.ErrorIs(t, err, deploy.ErrDeployInProgress)
	assert.ErrorContains(t, err, "locked by A")
	require.NoError(t, b.Lock(ctx, "api", "B", time.Hour), "another app is free")
	require.NoError(t, a.Lock(ctx, "web", "A", time.Hour), "the owner extends")
	require.NoError(t, b.Unlock(ctx, "web", "B"), "unlocking a lock not held changes nothing")
	assert.ErrorIs(t, b.Lock(ctx, "web", "B", time.Hour), deploy.ErrDeployInProgress)
	require.NoError(t, a.Unlock(ctx, "web", "A"))
	require.NoError(t, b.Lock(ctx, "web", "B", time.Millisecond))
	// B crashed: its lock expires without renewal.
	deadline := time.Now().Add(5 * time.Second)
	for a.Lock(ctx, "web", "A", time.Hour) != nil {
		require.True(t, time.Now().Before(deadline), "an expired lock is taken over")
		time.Sleep(time.Millisecond) // waiting out the 1ms ttl is the point
	}
}

func TestReleaseLockMemory(t *testing.T) {
	m := release.NewMemory()
	testReleaseLock(t, m, m)
}

func TestReleaseLockFileAcrossInstances(t *testing.T) {
	dir := t.TempDir()
	a, err := release.OpenFile(dir)
	require.NoError(t, err)
	b, err := release.OpenFile(dir) // another process's view of the same directory
	require.NoError(t, err)
	testReleaseLock(t, a, b)
}

// Two stores on one directory (two processes) never assign a version twice.
func TestReleaseFileCreateAcrossInstances(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var stores []*release.File
	for range 2 {
		s, err := release.OpenFile(dir)
		require.NoError(t, err)
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i%2].Create(ctx, deploy.Release{App: "web", Image: "img"})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	rels, err := stores[0].List(ctx, "web")
	require.NoError(t, err)
	require.Len(t, rels, 20)
	for i, r := range rels {
		assert.Equal(t, 20-i, r.Version)
	}
}
