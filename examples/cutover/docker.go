package main

import (
	"context"
	"fmt"
)

func newDockerKit(ctx context.Context, app string) (*backendKit, error) {
	return nil, fmt.Errorf("the docker backend is not in this build yet: pass --backend mem")
}
