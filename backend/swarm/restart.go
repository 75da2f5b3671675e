package swarm

import (
	"time"

	"github.com/cutover/deploy"
	"github.com/moby/moby/api/types/swarm"
)

// RestartDelay is how long the swarm waits before it replaces the task of a
// machine whose process exited, when the machine's Restart policy says so.
const RestartDelay = time.Second

// taskPolicy maps a machine's restart policy onto the service's task restart
// policy: always is condition "any" (a clean exit is restarted too),
// on-failure is "on-failure" with MaxAttempts its retries, never is "none".
// A stop (replicas 0) or Destroy is never restarted.
func taskPolicy(p deploy.RestartPolicy) *swarm.RestartPolicy {
	n := p.Normalized()
	delay := RestartDelay
	switch n.Policy {
	case deploy.RestartAlways:
		return &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay}
	case deploy.RestartOnFailure:
		max := uint64(n.MaxRetries)
		return &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure, Delay: &delay, MaxAttempts: &max}
	}
	return &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone}
}

// policyOf maps a service's task restart policy back, for an adopted machine.
// A service with no policy gets swarm's default, condition "any".
func policyOf(rp *swarm.RestartPolicy) deploy.RestartPolicy {
	if rp == nil {
		return deploy.RestartPolicy{Policy: deploy.RestartAlways}
	}
	switch rp.Condition {
	case swarm.RestartPolicyConditionNone:
		return deploy.RestartPolicy{Policy: deploy.RestartNever}
	case swarm.RestartPolicyConditionOnFailure:
		p := deploy.RestartPolicy{Policy: deploy.RestartOnFailure}
		if rp.MaxAttempts != nil {
			p.MaxRetries = int(*rp.MaxAttempts)
		}
		if p.MaxRetries == 0 { // swarm's 0 is unbounded; the closest policy is always
			return deploy.RestartPolicy{Policy: deploy.RestartAlways}
		}
		return p
	}
	return deploy.RestartPolicy{Policy: deploy.RestartAlways}
}

// Restarts returns how many times the swarm replaced the machine's task
// after its process exited, since the machine's latest Start
// (deploy.RestartReporter). Each restart is a new task, with a new container
// and a new published port that Addr and AddrOf follow. A handle that
// adopted a running machine counts the restarts the swarm's task history
// still holds (5 tasks per service by default).
func (m *Machine) Restarts() int {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.restarts
}

var (
	_ deploy.RestartReporter = (*Machine)(nil)
	_ deploy.PortAddresser   = (*Machine)(nil)
)

// countRestarts counts the tasks that ran and exited, created since the
// service's latest Start (started), other than the newest task.
func countRestarts(tasks []swarm.Task, started time.Time, newest string) int {
	n := 0
	for _, t := range tasks {
		if t.ID != newest && !t.CreatedAt.Before(started) && ranAndExited(t) {
			n++
		}
	}
	return n
}
