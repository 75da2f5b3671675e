package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/docker"
)

// DockerNamespace is the namespace of the daemon's containers on the engine.
const DockerNamespace = "cutover"

// newDockerKit connects to the local engine. Images must exist locally (no
// registry is used): a deploy of a missing image is refused before it starts.
func newDockerKit(ctx context.Context, app string) (*backendKit, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := docker.New(pctx, docker.Options{Namespace: DockerNamespace})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Docker engine: is dockerd running? (%v); or pass --backend mem to run the demo app without Docker", oneLine(err))
	}
	return &backendKit{
		name:    "docker",
		backend: b,
		prepare: func(ctx context.Context, image string, _ []string) error {
			return probeImage(ctx, b, app, image)
		},
		close: b.Close,
		note:  "the containers keep running; the next cutover serve adopts them",
	}, nil
}

// probeImage checks that image exists locally by creating (not starting) a
// container of it, then removing it: the backend has no image lookup, and
// this is what a deploy would do first.
func probeImage(ctx context.Context, b deploy.Backend, app, image string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := b.Create(ctx, deploy.MachineSpec{App: app, Image: image, Labels: map[string]string{deploy.LabelRole: "probe"}})
	if errors.Is(err, deploy.ErrNotFound) {
		return &invalidError{fmt.Sprintf("image %s not found locally; build or load it (docker build -t %s ., or docker load; docker images lists the local ones; no registry is used)", image, image)}
	}
	if err != nil {
		return fmt.Errorf("cannot check image %s: %w", image, err)
	}
	if err := m.Destroy(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("remove the probe container of %s: %w", image, err)
	}
	return nil
}

// invalidError is a refusal that says what to do; it is deploy.ErrInvalid
// without the "invalid: " prefix.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return deploy.ErrInvalid }
