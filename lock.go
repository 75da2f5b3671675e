package deploy

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"time"
)

// Locker is implemented by stores that hold a per-app deploy lock shared by
// processes. A lock expires at its ttl unless its owner extends it, so a
// crashed process blocks the next deploy for one ttl at most.
type Locker interface {
	// Lock takes or extends app's lock for owner until ttl from now. While
	// another owner holds an unexpired lock it fails with an error wrapping
	// ErrDeployInProgress.
	Lock(ctx context.Context, app, owner string, ttl time.Duration) error
	// Unlock releases owner's lock; releasing a lock not held is not an error.
	Unlock(ctx context.Context, app, owner string) error
}

// DefaultLockTTL is how long a deploy lock lasts without renewal.
const DefaultLockTTL = 30 * time.Second

// acquire takes app's deploy lock in this process and, when the Store is a
// Locker, across processes, renewing it until the returned func is called.
func (d *Deployer) acquire(ctx context.Context, app string) (func(), error) {
	d.mu.Lock()
	if d.running[app] {
		d.mu.Unlock()
		return nil, fmt.Errorf("app %q: %w", app, ErrDeployInProgress)
	}
	if d.running == nil {
		d.running = map[string]bool{}
	}
	d.running[app] = true
	if d.owner == "" {
		d.owner = d.Owner
	}
	if d.owner == "" {
		d.owner = newOwner()
	}
	owner := d.owner
	d.mu.Unlock()
	local := func() {
		d.mu.Lock()
		delete(d.running, app)
		d.mu.Unlock()
	}
	lk, ok := d.Store.(Locker)
	if !ok {
		return local, nil
	}
	ttl := d.LockTTL
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	if err := lk.Lock(ctx, app, owner, ttl); err != nil {
		local()
		return nil, fmt.Errorf("app %q: %w", app, err)
	}
	d.logger().Debug("deploy lock taken", "app", app, "owner", owner, "ttl", ttl)
	// Renew every third of the ttl, on the clock, until released. A renewal
	// holds mu, so the release waits for one under way: none follows the Unlock.
	var (
		mu       sync.Mutex
		released bool
		t        Timer
		every    = max(ttl/3, time.Millisecond)
	)
	renew := func() {
		mu.Lock()
		defer mu.Unlock()
		if released {
			return
		}
		if err := lk.Lock(context.Background(), app, owner, ttl); err != nil {
			d.logger().Warn("deploy lock: renewal failed; trying again", "app", app, "owner", owner, "ttl", ttl, "error", err)
		}
		t.Reset(every)
	}
	mu.Lock()
	t = d.clock().AfterFunc(every, renew)
	mu.Unlock()
	return func() {
		mu.Lock()
		released = true
		t.Stop()
		mu.Unlock()
		if err := lk.Unlock(context.Background(), app, owner); err != nil {
			d.logger().Warn("deploy lock: release failed; it expires after its ttl", "app", app, "owner", owner, "ttl", ttl, "error", err)
		}
		local()
	}, nil
}

// Lock takes app's deploy lock, as Deploy does, and returns its release.
// While a deploy of app runs it fails with an error wrapping
// ErrDeployInProgress, and while the lock is held Deploy does. A Monitor
// holds it while it replaces a machine (Monitor.Lock).
func (d *Deployer) Lock(ctx context.Context, app string) (unlock func(), err error) {
	return d.acquire(ctx, app)
}

func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}
