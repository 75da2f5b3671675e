// Package swarm is a deploy.Backend on Docker's swarm mode: machines across
// the nodes of a swarm, through a manager's engine API (services, tasks,
// nodes of github.com/moby/moby/client).
//
// # Mapping
//
// One machine is one swarm service with one replica, named
// "<prefix>-<app>-<version>-<n>" and labelled like the Docker backend's
// containers (cutover.managed, cutover.namespace, cutover.app,
// cutover.version, cutover.role, ...), so List and Get in a new process
// adopt what an earlier one left, and deploy.Recover works unchanged. A
// machine's ID is its service's ID in the short form docker service ls
// prints (12 characters): docker service ps ID, docker service logs ID and
// docker service inspect ID find it, Get takes it or the full ID, and it
// stays the same when the swarm restarts the machine with a new task. Create makes the service with zero replicas; Start sets one
// replica and returns once the task runs; Stop sets zero replicas (the swarm
// sends the spec's stop signal, waits its StopGracePeriod, then kills); Wait
// follows the task's state; Destroy removes the service; Logs reads the
// service's logs.
//
// # Restarts
//
// A machine's Restart policy becomes the service's task restart policy:
// always is condition "any" (a clean exit is restarted too), on-failure is
// condition "on-failure" with MaxAttempts its retries, never is "none"; the
// swarm replaces the task RestartDelay after its process exits. A Stop
// (replicas 0) or Destroy is never restarted. A restart is a new task, with
// a new container and new published ports on the machine's node: Addr and
// AddrOf follow the running task, Wait returns the exit of the run that
// ended, and Restarts (deploy.RestartReporter) counts the replacements since
// the latest Start.
//
// # Addresses and ports
//
// The app port is published in host mode (the ingress routing mesh is not
// used: it balances on its own and hides which machine served), and Addr is
// "<node address>:<published port>", the node's Status.Addr and the task's
// Status.PortStatus. The spec's other Ports are published in host mode too,
// each on its own ephemeral port; AddrOf (deploy.PortAddresser) returns
// "<node address>:<published port>" for one. Host-mode ports listen on every interface of their node:
// swarm has no host IP for them (unlike the Docker backend, which publishes
// on 127.0.0.1). Keep them private by putting the nodes on a private network
// that only the proxies reach, and by a firewall rule on each node that
// admits the ephemeral port range (32768-60999 by default) only from the
// proxies' addresses, for example:
//
//	iptables -I DOCKER-USER -p tcp --dport 32768:60999 ! -s 10.0.0.0/24 -j DROP
//
// # Placement
//
// Swarm's spread preference works within one service, and every machine is
// a service of its own, so the backend spreads an app itself: Create places a
// machine on the ready, active node that runs fewest machines of the app's
// version (then of the app, then of the namespace), pinned with a node.id constraint, so a
// machine stays where it started as a Fly machine does. A spec names node
// labels to run on with labels "cutover.node.<label>" (constraint
// node.labels.<label>==value). deploy.LabelRegion, which config sets from
// fly.toml's primary_region, is the node label "region": a fly.toml works
// unchanged on a swarm whose nodes are labelled by region
// (docker node update --label-add region=ams <node>).
//
// # Images
//
// In real use, nodes pull the spec's image from a registry by name (push it
// first; pass registry credentials to the engines with docker login). With no
// registry, load the image into every node's engine first
// (docker save | docker load) and set Options.LocalImages: tasks then name
// the image by its ID, which the engines never try to pull. The tests do
// that on a two-node swarm built by internal/swarmtest.
//
// # Stopping and exit codes
//
// Swarm removes a scaled-down task soon after it stops, and it has no API to
// signal a task. With a node's engine known (Options.NodeEngines; the
// manager's own always is), a stop's exit code is read from that engine and a
// stop cut short by its ctx kills at once. Without it, the exit code of a
// stop is inferred (0 within the stop timeout, 137 after it), and a cut-short
// stop returns while the swarm finishes the stop within its grace. Wait, too,
// waits for a running container on its node's engine when that is known,
// and polls the manager (a service inspect and a TaskList per poll interval)
// only when it is not, or for the manager to report the end.
//
// # At 100 nodes and 10,000 machines
//
// Swarm's Raft store holds every service and task in memory on each
// manager, and every write goes through the Raft leader. Docker documents no
// hard limit; community scale tests (swarm2k, swarm3k) ran a few thousand
// nodes, so 100 nodes with 3 or 5 managers are ordinary. 10,000 machines are
// 10,000 services here, plus up to the task history retention limit
// (default 5) of old tasks per service: within reach, but heavy for the
// manager's list calls, since ServiceList and TaskList return whole objects.
// The proxies are not the limit: a target set of 10,000 addresses is one
// SetTargets per step.
//
// API calls per deploy of n machines, today: Create is 3 calls (nodes,
// services, create; 4 with LocalImages), Start 2 (inspect, update) plus a
// TaskList per poll interval (100ms) until the task runs (2-5s here), Stop 4
// (inspect and tasks, inspect and update) plus polls, Destroy 2 (node,
// remove) plus polls until the task is gone, and health checks talk to the
// machine directly. So a rolling deploy of n machines costs about 12n calls
// plus some 50n polls: on the order of 600k requests for 10,000 machines,
// most of them TaskList polls, and all of them served by the managers (the
// leader for writes). Placement also lists the namespace's services on
// every Create, which grows with n: at 10,000 machines that is the call to
// remove first. What to batch at that scale: one TaskList per app per poll
// for all the machines a strategy waits on (List already does this), one
// NodeList and one ServiceList per deploy instead of per Create (placement
// counts kept in the backend), and an event subscription (service and node
// events) in place of polling. The other mapping, one service per version
// with n replicas, cuts the service count by the machine count, but a
// service's replicas are not individually addressable to stop or drain,
// which the strategies need; it fits only a backend that gives up per-machine
// control.
//
// # A Kubernetes backend
//
// The same interface maps onto Kubernetes without a scheduler of our own:
// a machine is a Pod (created with a readiness gate the deployer sets once
// the health checks pass, so Kubernetes' own Endpoints agree with the
// proxy), labelled as here; Start is the Pod's creation (Kubernetes has no
// stopped Pods: Create only records the spec), Stop deletes the Pod with
// gracePeriodSeconds = the stop timeout and the spec's stop signal in its
// lifecycle, Wait watches the Pod's container status for the exit code,
// Logs reads the Pod's log, and Addr is the Pod IP and container port, which
// the proxy reaches on the cluster network. Placement is topology spread
// constraints on the app label, and primary_region a nodeAffinity on
// topology.kubernetes.io/region. Alternatively a ReplicaSet per version,
// scaled by the strategy, gives Kubernetes the restart of crashed Pods, with
// the proxy still choosing weights per Pod. The proxy's role stays the same
// in both: it is the traffic switch a Service cannot be (weights, draining,
// retries), fed by the Router; a Kubernetes Service in front would only add
// a second balancer.
package swarm
