// Package release keeps the release history of apps: an in-memory store for
// tests and examples, and a file store that survives restarts. Both implement
// deploy.Store.
//
// Versions start at 1 per app and are assigned by Create without gaps or
// duplicates. List returns releases newest first, like `fly releases`.
package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	deploy "github.com/cutover/deploy"
)

// ErrCorrupt means a stored release file could not be read back.
// Errors wrapping it also name the file.
var ErrCorrupt = errors.New("corrupt release file")

// appName is what an app name may look like: it must be usable as one path
// element, so it starts with a letter or digit and holds no slash.
var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidApp reports an error wrapping deploy.ErrInvalid when app cannot name an
// app in a store (empty, too long, or with characters other than letters,
// digits, '-', '_' and '.', or not starting with a letter or digit).
func ValidApp(app string) error {
	if !appName.MatchString(app) {
		return fmt.Errorf("release: app name %q: %w (want letters, digits, '-', '_' or '.', starting with a letter or digit)", app, deploy.ErrInvalid)
	}
	return nil
}

func notFound(app string, version int) error {
	return fmt.Errorf("release: %s v%d: %w", app, version, deploy.ErrNotFound)
}

// clone returns a deep copy of rel, so that stored releases share no maps or
// slices with callers.
func clone(rel deploy.Release) deploy.Release {
	rel.Spec.Cmd = slices.Clone(rel.Spec.Cmd)
	rel.Spec.Env = maps.Clone(rel.Spec.Env)
	rel.Spec.Labels = maps.Clone(rel.Spec.Labels)
	rel.Config = json.RawMessage(slices.Clone([]byte(rel.Config)))
	return rel
}

// PreviousStable returns the newest stable release of app with a version below
// before; before <= 0 means any version. It returns an error wrapping
// deploy.ErrNotFound when there is none. A rollback deploys its Spec again.
func PreviousStable(ctx context.Context, store deploy.Store, app string, before int) (deploy.Release, error) {
	rels, err := store.List(ctx, app)
	if err != nil {
		return deploy.Release{}, err
	}
	for _, r := range rels { // newest first
		if r.Stable && (before <= 0 || r.Version < before) {
			return r, nil
		}
	}
	if before > 0 {
		return deploy.Release{}, fmt.Errorf("release: no stable release of %s before v%d: %w", app, before, deploy.ErrNotFound)
	}
	return deploy.Release{}, fmt.Errorf("release: no stable release of %s: %w", app, deploy.ErrNotFound)
}
