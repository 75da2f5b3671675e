#!/usr/bin/env bash
# Build (up) or tear down (down) the two-node test swarm: this engine as
# manager, a second dockerd in a network namespace as worker.
# See internal/swarmtest. Needs root, iproute2, util-linux (nsenter), dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/swarmtest/swarmctl "${1:?usage: swarm.sh up|down}"
