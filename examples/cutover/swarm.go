package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cutover/deploy/backend/swarm"
)

// newSwarmKit connects to the local engine, which must be a swarm manager:
// machines run as services of one replica across the swarm's nodes. With
// localImages, tasks name images by their local ID (images loaded into every
// node, no registry); otherwise nodes pull them from their registry.
func newSwarmKit(ctx context.Context, app string, localImages bool) (*backendKit, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := swarm.New(pctx, swarm.Options{Namespace: DockerNamespace, LocalImages: localImages})
	if err != nil {
		return nil, fmt.Errorf("cannot use the local engine as a swarm manager (docker swarm init makes it one; .ci/swarm.sh up builds a two-node test swarm): %v", oneLine(err))
	}
	return &backendKit{
		name:    "swarm",
		backend: b,
		prepare: func(ctx context.Context, image string, _ []string) error {
			if !localImages {
				return nil // the nodes pull it; a missing image fails the machine's start
			}
			return probeImage(ctx, b, app, image)
		},
		close: b.Close,
		note:  "the services keep running; the next cutover serve adopts them",
	}, nil
}
