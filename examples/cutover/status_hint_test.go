package main

import "testing"

// The hint under status names the engine's own commands for a machine's ID.
func TestStatusEngineHint(t *testing.T) {
	for backend, want := range map[string]string{
		"docker": "A machine's ID is its container's ID: docker ps --filter id=0123456789ab, docker logs 0123456789ab",
		"swarm":  "A machine's ID is its service's ID: docker service ps 0123456789ab, docker service logs 0123456789ab",
		"mem":    "",
	} {
		if got := engineHint(backend, "0123456789ab"); got != want {
			t.Errorf("engineHint(%s) = %q, want %q", backend, got, want)
		}
	}
}
