// Package deploy performs zero-downtime deploys of an app's machines, the way
// `fly deploy` does, for programs that build their own platform tooling.
//
// A Deployer moves an app from its current machines to machines of a new
// MachineSpec with a Strategy (rolling, bluegreen, canary, immediate; see the
// strategy packages). It acts through small interfaces:
//
//   - Backend creates and lists Machines (backend/mem in memory, backend/docker on Docker);
//   - Router moves traffic between machine addresses (proxy.Proxy satisfies it);
//   - HealthChecker decides whether a machine may take traffic (package health);
//   - Store keeps the release history (package release), and when it is also a
//     Locker, the per-app deploy lock shared by processes.
//
// Every step is reported as an Event. A release command runs in a temporary
// machine before anything changes. A failed deploy leaves the previous version
// serving and removes what it created; when traffic had already moved, the
// previous version is restored (Result.Status is StatusRolledBack). Rollback
// redeploys a stored release; Scale runs more or fewer machines of the
// current release without a new one, as fly scale count does; Recover
// finishes or undoes a deploy whose process died; Monitor keeps checking routed machines after a deploy,
// readmits those their backend restarted (MachineSpec.Restart) and replaces
// those gone for good.
//
// A Request with Groups deploys several process groups in one release, each
// with the strategy; a spec with NoService (a worker) is never routed and is
// ready once it stays running (StaysRunning). A machine may publish ports
// besides its app port (MachineSpec.Ports, PortAddresser, AddrOf), which
// health checks of those ports dial.
//
// A machine takes traffic only once its app answers. With no HealthChecker
// configured, DefaultCheck decides: for an HTTP service (MachineSpec.Protocol
// "http" or empty) an HTTP request must get a response, of any status; for a
// TCP service the app must keep a connection open (DialCheck). A successful
// dial alone is never enough: Docker's published port accepts connections
// as soon as the container starts, before the app listens, and then closes
// them; DialCheck and health.TCP count such a closed connection as a failure.
//
// This package imports only the standard library and go-hclog, and none of its
// subpackages: strategies, backends and the proxy all point toward it.
package deploy
