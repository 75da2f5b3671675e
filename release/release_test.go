package release_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/release"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)

func sample(app string, i int) deploy.Release {
	return deploy.Release{
		App:         app,
		Status:      deploy.ReleaseRunning,
		Strategy:    "rolling",
		Description: "deploy " + app,
		User:        "ana@example.com",
		Image:       "registry/app:" + string(rune('a'+i%26)),
		Started:     t0.Add(time.Duration(i) * time.Minute),
		Spec: deploy.MachineSpec{
			App:   app,
			Image: "registry/app",
			Cmd:   []string{"serve", "--port", "8080"},
			Env:   map[string]string{"PORT": "8080"},
			Port:  8080,
		},
		Count:  2,
		Config: json.RawMessage(`{"strategy":"rolling"}`),
	}
}

// testStore is the behaviour every deploy.Store in this package shares.
func testStore(t *testing.T, newStore func(t *testing.T) deploy.Store) {
	ctx := context.Background()

	t.Run("CreateGetList", func(t *testing.T) {
		s := newStore(t)
		for i := 1; i <= 3; i++ {
			got, err := s.Create(ctx, sample("web", i))
			require.NoError(t, err)
			assert.Equal(t, i, got.Version)
		}
		other, err := s.Create(ctx, sample("worker", 0))
		require.NoError(t, err)
		assert.Equal(t, 1, other.Version, "versions are per app")

		got, err := s.Get(ctx, "web", 2)
		require.NoError(t, err)
		want := sample("web", 2)
		want.Version = 2
		assert.Equal(t, want, got)

		list, err := s.List(ctx, "web")
		require.NoError(t, err)
		require.Len(t, list, 3)
		for i, r := range list {
			assert.Equal(t, 3-i, r.Version, "newest first")
			assert.Equal(t, "web", r.App)
		}

		empty, err := s.List(ctx, "nothing")
		require.NoError(t, err)
		assert.Empty(t, empty)
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		rel, err := s.Create(ctx, sample("web", 1))
		require.NoError(t, err)
		rel.Status, rel.Stable, rel.Finished = deploy.ReleaseComplete, true, t0.Add(time.Hour)
		require.NoError(t, s.Update(ctx, rel))
		got, err := s.Get(ctx, "web", rel.Version)
		require.NoError(t, err)
		assert.Equal(t, rel, got)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Create(ctx, sample("web", 1))
		require.NoError(t, err)
		for _, c := range []struct {
			app     string
			version int
		}{{"web", 2}, {"web", 0}, {"web", -1}, {"nope", 1}, {"../web", 1}} {
			_, err := s.Get(ctx, c.app, c.version)
			assert.ErrorIs(t, err, deploy.ErrNotFound, "Get(%q, %d)", c.app, c.version)
			err = s.Update(ctx, deploy.Release{App: c.app, Version: c.version})
			assert.ErrorIs(t, err, deploy.ErrNotFound, "Update(%q, %d)", c.app, c.version)
		}
	})

	t.Run("InvalidApp", func(t *testing.T) {
		s := newStore(t)
		for _, app := range []string{"", "..", ".", "../x", "a/b", `a\b`, ".hidden", "x\x00"} {
			_, err := s.Create(ctx, sample(app, 1))
			assert.ErrorIs(t, err, deploy.ErrInvalid, "Create(%q)", app)
		}
	})

	t.Run("CopiesValues", func(t *testing.T) {
		s := newStore(t)
		in := sample("web", 1)
		rel, err := s.Create(ctx, in)
		require.NoError(t, err)
		in.Spec.Env["PORT"] = "changed"
		rel.Spec.Cmd[0] = "changed"
		got, err := s.Get(ctx, "web", 1)
		require.NoError(t, err)
		assert.Equal(t, "8080", got.Spec.Env["PORT"])
		assert.Equal(t, "serve", got.Spec.Cmd[0])
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		const n = 40
		var wg sync.WaitGroup
		versions := make(chan int, n)
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rel, err := s.Create(ctx, sample("web", i))
				if err != nil {
					errs <- err
					return
				}
				versions <- rel.Version
				// Readers run alongside writers.
				if _, err := s.List(ctx, "web"); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(versions)
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		var got []int
		for v := range versions {
			got = append(got, v)
		}
		sort.Ints(got)
		want := make([]int, n)
		for i := range want {
			want[i] = i + 1
		}
		assert.Equal(t, want, got, "versions 1..N without gaps or duplicates")
		list, err := s.List(ctx, "web")
		require.NoError(t, err)
		require.Len(t, list, n)
		assert.Equal(t, n, list[0].Version)
		assert.Equal(t, 1, list[n-1].Version)
	})

	t.Run("PreviousStable", func(t *testing.T) {
		s := newStore(t)
		_, err := release.PreviousStable(ctx, s, "web", 0)
		assert.ErrorIs(t, err, deploy.ErrNotFound)
		// v1 stable, v2 failed, v3 stable, v4 running
		for i, stable := range []bool{true, false, true, false} {
			r := sample("web", i)
			r.Stable = stable
			_, err := s.Create(ctx, r)
			require.NoError(t, err)
		}
		for _, c := range []struct{ before, want int }{{0, 3}, {4, 3}, {5, 3}, {3, 1}, {2, 1}} {
			got, err := release.PreviousStable(ctx, s, "web", c.before)
			require.NoError(t, err, "before %d", c.before)
			assert.Equal(t, c.want, got.Version, "before %d", c.before)
		}
		_, err = release.PreviousStable(ctx, s, "web", 1)
		assert.ErrorIs(t, err, deploy.ErrNotFound)
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Create(cctx, sample("web", 1))
		assert.ErrorIs(t, err, context.Canceled)
		_, err = s.List(cctx, "web")
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestReleaseMemoryStore(t *testing.T) {
	testStore(t, func(*testing.T) deploy.Store { return release.NewMemory() })
}

func TestReleaseFileStore(t *testing.T) {
	testStore(t, func(t *testing.T) deploy.Store {
		s, err := release.OpenFile(t.TempDir())
		require.NoError(t, err)
		return s
	})
}

// fileStore opens a file store in a new directory and creates n releases of
// "web" in it.
func fileStore(t *testing.T, n int) (string, *release.File) {
	t.Helper()
	dir := t.TempDir()
	s, err := release.OpenFile(dir)
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err := s.Create(context.Background(), sample("web", i))
		require.NoError(t, err)
	}
	return dir, s
}

func TestReleaseFileStoreReopen(t *testing.T) {
	ctx := context.Background()
	dir, s := fileStore(t, 3)
	r2, err := s.Get(ctx, "web", 2)
	require.NoError(t, err)
	r2.Stable, r2.Status = true, deploy.ReleaseComplete
	require.NoError(t, s.Update(ctx, r2))

	// A new store on the same directory, as after a process restart.
	s2, err := release.OpenFile(dir)
	require.NoError(t, err)
	list, err := s2.List(ctx, "web")
	require.NoError(t, err)
	require.Len(t, list, 3)
	assert.Equal(t, r2, list[1])
	next, err := s2.Create(ctx, sample("web", 4))
	require.NoError(t, err)
	assert.Equal(t, 4, next.Version, "numbering continues after reopen")
	assert.FileExists(t, filepath.Join(dir, "web", "v4.json"))
}

func TestReleaseFileStoreTornWrite(t *testing.T) {
	ctx := context.Background()
	dir, s := fileStore(t, 2)
	// What a crash mid-write leaves: a truncated temp file for v3, plus stray
	// garbage that is not a release file.
	full, err := os.ReadFile(filepath.Join(dir, "web", "v2.json"))
	require.NoError(t, err)
	tmp := filepath.Join(dir, "web", ".tmp-v3.json-123456")
	require.NoError(t, os.WriteFile(tmp, full[:len(full)/2], 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "web", "garbage"), []byte("\x00\xff{not json"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "web", "v3.json.bak"), []byte("{"), 0o644))

	// The running store ignores the leftovers.
	list, err := s.List(ctx, "web")
	require.NoError(t, err)
	require.Len(t, list, 2)

	// A reopened store too, and it cleans the temp file.
	s2, err := release.OpenFile(dir)
	require.NoError(t, err)
	assert.NoFileExists(t, tmp)
	list, err = s2.List(ctx, "web")
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, 2, list[0].Version)
	rel, err := s2.Create(ctx, sample("web", 3))
	require.NoError(t, err)
	assert.Equal(t, 3, rel.Version)
	_, err = s2.Get(ctx, "web", 3)
	require.NoError(t, err)
}

func TestReleaseFileStoreCorruptFile(t *testing.T) {
	ctx := context.Background()
	dir, s := fileStore(t, 2)
	bad := filepath.Join(dir, "web", "v2.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"app":"web","vers`), 0o644))

	_, err := s.Get(ctx, "web", 2)
	require.ErrorIs(t, err, release.ErrCorrupt)
	assert.Contains(t, err.Error(), bad, "the error names the file")
	_, err = s.List(ctx, "web")
	require.ErrorIs(t, err, release.ErrCorrupt)
	_, err = s.Get(ctx, "web", 1)
	require.NoError(t, err, "other releases stay readable")

	// A valid file under the wrong name is corrupt too.
	good, err := os.ReadFile(filepath.Join(dir, "web", "v1.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, good, 0o644))
	_, err = s.Get(ctx, "web", 2)
	require.ErrorIs(t, err, release.ErrCorrupt)
}

func TestReleaseFileStoreOpenErrors(t *testing.T) {
	_, err := release.OpenFile("")
	assert.ErrorIs(t, err, deploy.ErrInvalid)
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	_, err = release.OpenFile(f)
	assert.Error(t, err)
	assert.False(t, errors.Is(err, deploy.ErrNotFound))
}
