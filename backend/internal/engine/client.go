package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"

	"github.com/cutover/deploy"
)

// Dial connects to the engine at host (empty: DOCKER_HOST, or the platform
// default), pinning apiVersion when not empty (else negotiating it), and
// checks that the engine answers. Its errors start with "<name>: "; an
// unreachable engine gives one wrapping deploy.ErrTransient.
func Dial(ctx context.Context, name, host, apiVersion string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	if apiVersion != "" {
		opts = append(opts, client.WithAPIVersion(apiVersion))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: new client: %w: %w", name, deploy.ErrInvalid, err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = cli.Close()
		return nil, WrapErr(name, "ping", "", err)
	}
	return cli, nil
}
