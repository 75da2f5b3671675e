package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	deploy "github.com/cutover/deploy"
)

// lockFile is the name of an app's deploy lock in its directory.
const lockFile = "deploy.lock"

// lockInfo is a deploy lock: who holds it and until when.
type lockInfo struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

func heldErr(app string, l lockInfo) error {
	return fmt.Errorf("%w: app %s is locked by %s until %s", deploy.ErrDeployInProgress, app, l.Owner, l.Expires.Format(time.RFC3339))
}

var (
	_ deploy.Locker = (*Memory)(nil)
	_ deploy.Locker = (*File)(nil)
)

// Lock takes or extends app's deploy lock for owner until ttl from now.
func (m *Memory) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if l, ok := m.locks[app]; ok && l.Owner != owner && now.Before(l.Expires) {
		return heldErr(app, l)
	}
	if m.locks == nil {
		m.locks = map[string]lockInfo{}
	}
	m.locks[app] = lockInfo{Owner: owner, Expires: now.Add(ttl)}
	return nil
}

// Unlock releases owner's lock on app.
func (m *Memory) Unlock(ctx context.Context, app, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.locks[app]; ok && l.Owner == owner {
		delete(m.locks, app)
	}
	return nil
}

// Lock takes or extends app's deploy lock for owner until ttl from now. The
// lock is a file, <dir>/<app>/deploy.lock, read and written under flock, so
// processes sharing the directory exclude each other; a lock whose owner
// stopped renewing it expires.
func (f *File) Lock(ctx context.Context, app, owner string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidApp(app); err != nil {
		return err
	}
	return f.exclusive(app, func() error {
		l, err := f.readLock(app)
		if err != nil {
			return err
		}
		now := time.Now()
		if l.Owner != "" && l.Owner != owner && now.Before(l.Expires) {
			return heldErr(app, l)
		}
		data, _ := json.Marshal(lockInfo{Owner: owner, Expires: now.Add(ttl)})
		return writeAtomic(f.appDir(app), lockFile, data)
	})
}

// Unlock releases owner's lock on app.
func (f *File) Unlock(ctx context.Context, app, owner string) error {
	if err := ValidApp(app); err != nil {
		return err
	}
	return f.exclusive(app, func() error {
		l, err := f.readLock(app)
		if err != nil || l.Owner != owner {
			return err
		}
		if err := os.Remove(filepath.Join(f.appDir(app), lockFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("release: unlock %s: %w", app, err)
		}
		return nil
	})
}

func (f *File) readLock(app string) (lockInfo, error) {
	var l lockInfo
	data, err := os.ReadFile(filepath.Join(f.appDir(app), lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("release: read lock of %s: %w", app, err)
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return lockInfo{}, nil // a torn lock file holds nothing
	}
	return l, nil
}

// exclusive runs fn holding an flock on the app's directory, shared by
// processes. It makes the directory, and syncs its parent when it is new.
func (f *File) exclusive(app string, fn func() error) error {
	dir := f.appDir(app)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if err := syncDir(f.dir); err != nil {
			return err
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, ".flock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer lf.Close()
	if err := flock(lf); err != nil {
		return fmt.Errorf("release: lock %s: %w", dir, err)
	}
	defer funlock(lf)
	return fn()
}

// writeAtomic writes data to dir/name through a temporary file in dir that is
// synced and renamed over the final name, then syncs dir: a crash leaves
// either the old or the new file, never a torn one.
func writeAtomic(dir, name string, data []byte) (err error) {
	final := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return fmt.Errorf("release: write %s: %w", final, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("release: write %s: %w", final, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("release: sync %s: %w", final, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("release: close %s: %w", final, err)
	}
	if err = os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("release: rename into %s: %w", final, err)
	}
	return syncDir(dir)
}
