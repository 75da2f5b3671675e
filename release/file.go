package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	deploy "github.com/cutover/deploy"
)

// tmpPrefix starts the names of files being written. Files with it are never
// read as releases, and OpenFile removes them: they are what a crash in the
// middle of a write leaves behind.
const tmpPrefix = ".tmp-"

// File is a deploy.Store that keeps one JSON file per release in a directory:
// <dir>/<app>/v<N>.json. Each write goes to a temporary file in the same
// directory, is synced, renamed over the final name and the directory synced,
// so a crash leaves either the old or the new release, never a torn one.
//
// A File is safe for concurrent use, also by processes sharing the directory:
// versions are assigned under an flock, and it is a deploy.Locker.
//
// The release's Config (raw JSON) is stored compacted, so its whitespace may
// differ when read back.
type File struct {
	dir string

	mu sync.RWMutex
}

var _ deploy.Store = (*File)(nil)

// OpenFile opens (creating it if needed) a file store in dir, and removes
// temporary files left by interrupted writes.
func OpenFile(dir string) (*File, error) {
	if dir == "" {
		return nil, fmt.Errorf("release: open file store: %w: empty directory", deploy.ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: open file store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("release: open file store: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || ValidApp(e.Name()) != nil {
			continue
		}
		appDir := filepath.Join(dir, e.Name())
		files, err := os.ReadDir(appDir)
		if err != nil {
			return nil, fmt.Errorf("release: open file store: %w", err)
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), tmpPrefix) {
				// Best effort: a leftover temp file is ignored anyway.
				_ = os.Remove(filepath.Join(appDir, f.Name()))
			}
		}
	}
	return &File{dir: dir}, nil
}

// Dir returns the store's directory.
func (f *File) Dir() string { return f.dir }

func (f *File) appDir(app string) string { return filepath.Join(f.dir, app) }

// fileName is the name of a release's file in its app's directory.
func fileName(version int) string { return "v" + strconv.Itoa(version) + ".json" }

func (f *File) path(app string, version int) string {
	return filepath.Join(f.appDir(app), fileName(version))
}

// versions returns the app's stored versions, ascending. Temp files and
// files not named v<N>.json are ignored.
func (f *File) versions(app string) ([]int, error) {
	entries, err := os.ReadDir(f.appDir(app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release: list %s: %w", app, err)
	}
	var vs []int
	for _, e := range entries {
		if v, ok := parseName(e.Name()); ok && e.Type().IsRegular() {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// parseName parses "v<N>.json" with N >= 1 written without leading zeros.
func parseName(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "v")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".json")
	if !ok || s == "" || s[0] == '0' {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, false
	}
	return v, true
}

// Create assigns the app's next version to rel, stores it and returns it.
func (f *File) Create(ctx context.Context, rel deploy.Release) (deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return deploy.Release{}, err
	}
	if err := ValidApp(rel.App); err != nil {
		return deploy.Release{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Versions come from the directory under an flock, so that processes
	// sharing it never assign one version twice.
	err := f.exclusive(rel.App, func() error {
		vs, err := f.versions(rel.App)
		if err != nil {
			return err
		}
		rel.Version = 1
		if len(vs) > 0 {
			rel.Version = vs[len(vs)-1] + 1
		}
		return f.write(rel)
	})
	if err != nil {
		return deploy.Release{}, err
	}
	return clone(rel), nil
}

// Update replaces the stored release with rel's app and version.
func (f *File) Update(ctx context.Context, rel deploy.Release) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ValidApp(rel.App) != nil || rel.Version < 1 {
		return fmt.Errorf("update: %w", notFound(rel.App, rel.Version))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := os.Stat(f.path(rel.App, rel.Version)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("update: %w", notFound(rel.App, rel.Version))
		}
		return fmt.Errorf("release: update %s v%d: %w", rel.App, rel.Version, err)
	}
	return f.write(rel)
}

// write stores rel with writeAtomic. The caller holds f.mu, and the app's
// directory exists (exclusive makes it).
func (f *File) write(rel deploy.Release) error {
	data, err := json.Marshal(rel)
	if err != nil {
		return fmt.Errorf("release: encode %s v%d: %w", rel.App, rel.Version, err)
	}
	return writeAtomic(f.appDir(rel.App), fileName(rel.Version), append(data, '\n'))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("release: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("release: sync dir %s: %w", dir, err)
	}
	return nil
}

// read reads one release file. A file that does not decode, or that holds
// another release than its name says, gives an error wrapping ErrCorrupt.
func (f *File) read(app string, version int) (deploy.Release, error) {
	p := f.path(app, version)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return deploy.Release{}, notFound(app, version)
	}
	if err != nil {
		return deploy.Release{}, fmt.Errorf("release: read %s: %w", p, err)
	}
	var rel deploy.Release
	if err := json.Unmarshal(data, &rel); err != nil {
		return deploy.Release{}, fmt.Errorf("release: %s: %w: %v", p, ErrCorrupt, err)
	}
	if rel.App != app || rel.Version != version {
		return deploy.Release{}, fmt.Errorf("release: %s: %w: holds %s v%d", p, ErrCorrupt, rel.App, rel.Version)
	}
	return rel, nil
}

// Get returns one release, or an error wrapping deploy.ErrNotFound. A file
// that cannot be decoded gives an error wrapping ErrCorrupt.
func (f *File) Get(ctx context.Context, app string, version int) (deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return deploy.Release{}, err
	}
	if ValidApp(app) != nil || version < 1 {
		return deploy.Release{}, notFound(app, version)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.read(app, version)
}

// List returns the app's releases, newest first; none is an empty list, not an
// error. A release file that cannot be decoded fails the whole list with an
// error wrapping ErrCorrupt that names the file.
func (f *File) List(ctx context.Context, app string) ([]deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ValidApp(app) != nil {
		return []deploy.Release{}, nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	vs, err := f.versions(app)
	if err != nil {
		return nil, err
	}
	out := make([]deploy.Release, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rel, err := f.read(app, vs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, rel)
	}
	return out, nil
}
