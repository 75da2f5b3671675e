package deploy

import (
	"context"
	"encoding/json"
	"time"
)

// ReleaseStatus is where a release's deploy stands.
type ReleaseStatus string

// Release statuses, as `fly releases` shows them.
const (
	ReleaseRunning     ReleaseStatus = "running"
	ReleaseComplete    ReleaseStatus = "complete"
	ReleaseFailed      ReleaseStatus = "failed"
	ReleaseRolledBack  ReleaseStatus = "rolled_back"
	ReleaseInterrupted ReleaseStatus = "interrupted"
)

// Release is one deploy of an app, kept in a Store.
type Release struct {
	App         string          `json:"app"`
	Version     int             `json:"version"` // 1, 2, ... per app; shown as "v1"
	Stable      bool            `json:"stable"`  // the deploy completed and the version served
	Status      ReleaseStatus   `json:"status"`
	Strategy    string          `json:"strategy"`
	Description string          `json:"description"`
	User        string          `json:"user"`
	Image       string          `json:"image"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished,omitzero"`
	Reason      string          `json:"reason,omitempty"` // why it failed or was rolled back
	Spec        MachineSpec     `json:"spec"`
	Count       int             `json:"count"`
	Config      json.RawMessage `json:"config,omitempty"` // the deploy configuration used, for rollback
	// Groups are the process groups of a multi-group release (Spec is the first's).
	Groups []ReleaseGroup `json:"groups,omitempty"`
}

// ReleaseGroup is one process group of a release: its spec and count.
type ReleaseGroup struct {
	Name  string      `json:"name"`
	Spec  MachineSpec `json:"spec"`
	Count int         `json:"count"`
}

// Store keeps the release history of apps. Implementations are safe for concurrent use.
type Store interface {
	// Create assigns the app's next version to rel, stores it and returns it.
	Create(ctx context.Context, rel Release) (Release, error)
	// Update replaces the stored release with the same app and version.
	Update(ctx context.Context, rel Release) error
	// Get returns one release, or an error wrapping ErrNotFound.
	Get(ctx context.Context, app string, version int) (Release, error)
	// List returns the app's releases, newest first.
	List(ctx context.Context, app string) ([]Release, error)
}
