package deploy

import (
	"context"
	"fmt"
)

// Rollback redeploys release version of app (its image and its stored spec
// and configuration) as a new release whose description names the version.
// Version 0 means the newest stable release before the newest stable one.
// Releases that did not complete are refused with ErrInvalid.
func (d *Deployer) Rollback(ctx context.Context, app string, version int) (*Result, error) {
	if d.Store == nil {
		return nil, fmt.Errorf("rollback: %w: the Deployer has no release Store", ErrInvalid)
	}
	rels, err := d.Store.List(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	var target *Release
	if version == 0 {
		current := 0
		for i := range rels { // newest first
			if !rels[i].Stable {
				continue
			}
			if current == 0 {
				current = rels[i].Version
				continue
			}
			target = &rels[i]
			break
		}
		if target == nil {
			return nil, fmt.Errorf("rollback %s: %w: no stable release before the current one", app, ErrNotFound)
		}
	} else {
		for i := range rels {
			if rels[i].Version == version {
				target = &rels[i]
			}
		}
		if target == nil {
			return nil, fmt.Errorf("rollback %s to v%d: %w", app, version, ErrNotFound)
		}
		if !target.Stable {
			return nil, fmt.Errorf("rollback %s to v%d: %w: that release is %s, not a stable release (%s)", app, version, ErrInvalid, target.Status, target.Reason)
		}
	}
	req := groupsRequest(*target)
	if d.FromRelease != nil {
		if req, err = d.FromRelease(*target); err != nil {
			return nil, fmt.Errorf("rollback %s to v%d: %w", app, target.Version, err)
		}
	}
	req.Spec.Version = ""
	for i := range req.Groups {
		req.Groups[i].Spec.Version = ""
	}
	req.Description = fmt.Sprintf("rollback to v%d", target.Version)
	d.logger().Info("rollback started", "app", app, "to_release", target.Version, "image", target.Image)
	return d.deployAs(ctx, "rollback", req)
}

// undo returns the app to its previous version after a failed strategy:
// previous machines serve, every machine the deploy created is gone. It reports
// whether traffic had moved and had to be restored.
