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
// Optional abilities are found by type assertion: a Router may report its
// targets (WeightReporter) and traffic (StatsReporter), or wrap another
// (RouterWrapper; RouterChain walks the wrapped routers); a Strategy or
// HealthChecker that is a Validator has its settings checked before Deploy
// takes the app's lock or records a release. Given a Logger (go-hclog), the
// Deployer logs each deploy's start and outcome at Info, every step at Debug.
//
// # Time
//
// Every wait reads time through one Clock (Deployer.Clock, reached by
// strategies as Rollout.Clock; Monitor.Clock; retry.Options.Clock): health
// grace periods and intervals, wait and deploy timeouts (WithTimeout: a
// context that ends with context.DeadlineExceeded when the clock passes the
// deadline), canary steps and analysis, bluegreen's hold, Monitor rounds,
// the lock's renewal and backend retries. Nil means real time. A test sets a
// deploytest.Clock and runs a deploy with a 5-minute wait timeout and
// 1-minute canary steps in milliseconds. One health check's own timeout
// stays on real time: it bounds real network I/O.
//
// Why a Clock rather than testing/synctest: synctest advances its fake time
// only while every goroutine of its bubble is durably blocked, and a goroutine
// waiting on a socket is not; the mem backend's machines and the proxy serve
// real HTTP on loopback, and a user's proxy or listeners made outside the
// bubble cannot join it. Why an interface of our own rather than
// github.com/jonboulle/clockwork: this package imports only the standard
// library and go-hclog, so a clockwork clock would need an adapter anyway;
// our WithTimeout keeps context.Cause and leaves real deadlines to real
// I/O; and clockwork's fake clock cannot tell when a deploy waits for time
// rather than for a machine, which deploytest.Clock.Drive needs to jump from
// one deadline to the next without cutting real work short.
//
// This package imports only the standard library and go-hclog, and none of its
// subpackages: strategies, backends and the proxy all point toward it.
package deploy
