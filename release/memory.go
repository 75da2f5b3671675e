package release

import (
	"context"
	"fmt"
	"sync"

	deploy "github.com/cutover/deploy"
)

// Memory is an in-memory deploy.Store. Its zero value is ready to use; it is
// safe for concurrent use. Releases are copied in and out, so callers may
// change what they passed or got back.
type Memory struct {
	mu    sync.RWMutex
	apps  map[string][]deploy.Release // index i holds version i+1
	locks map[string]lockInfo
}

var _ deploy.Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// Create assigns the app's next version to rel, stores it and returns it.
func (m *Memory) Create(ctx context.Context, rel deploy.Release) (deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return deploy.Release{}, err
	}
	if err := ValidApp(rel.App); err != nil {
		return deploy.Release{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.apps == nil {
		m.apps = map[string][]deploy.Release{}
	}
	rel.Version = len(m.apps[rel.App]) + 1
	m.apps[rel.App] = append(m.apps[rel.App], clone(rel))
	return clone(rel), nil
}

// Update replaces the stored release with rel's app and version.
func (m *Memory) Update(ctx context.Context, rel deploy.Release) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rels := m.apps[rel.App]
	if rel.Version < 1 || rel.Version > len(rels) {
		return fmt.Errorf("update: %w", notFound(rel.App, rel.Version))
	}
	rels[rel.Version-1] = clone(rel)
	return nil
}

// Get returns one release, or an error wrapping deploy.ErrNotFound.
func (m *Memory) Get(ctx context.Context, app string, version int) (deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return deploy.Release{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	rels := m.apps[app]
	if version < 1 || version > len(rels) {
		return deploy.Release{}, notFound(app, version)
	}
	return clone(rels[version-1]), nil
}

// List returns the app's releases, newest first; none is an empty list, not an error.
func (m *Memory) List(ctx context.Context, app string) ([]deploy.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	rels := m.apps[app]
	out := make([]deploy.Release, 0, len(rels))
	for i := len(rels) - 1; i >= 0; i-- {
		out = append(out, clone(rels[i]))
	}
	return out, nil
}
