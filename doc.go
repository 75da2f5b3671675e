// Package deploy performs zero-downtime deploys of an app's machines, the way
// `fly deploy` does, for programs that build their own platform tooling.
//
// A Deployer moves an app from its current machines to machines of a new
// MachineSpec with a Strategy (rolling, bluegreen, canary, immediate; see the
// strategy packages). It acts through three small interfaces:
//
//   - Backend creates and lists Machines (backend/mem in memory, backend/docker on Docker);
//   - Router moves traffic between machine addresses (proxy.Proxy satisfies it);
//   - HealthChecker decides whether a machine may take traffic (package health).
//
// Every step is reported as an Event. A failed deploy leaves the previous version
// serving and removes what it created; when traffic had already moved, the previous
// version is restored (Result.Status is StatusRolledBack).
//
// This package imports only the standard library and go-hclog, and none of its
// subpackages: strategies, backends and the proxy all point toward it.
package deploy
