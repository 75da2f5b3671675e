package docker

import (
	"context"
	"net"
	"strconv"

	"github.com/cutover/deploy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Restarts returns how many times the engine restarted the container under
// its restart policy, as last seen (deploy.RestartReporter). List and State
// bring it up to date.
func (m *Machine) Restarts() int {
	m.c.Mu.Lock()
	defer m.c.Mu.Unlock()
	return m.restarts
}

var _ deploy.RestartReporter = (*Machine)(nil)

// enginePolicy maps a machine's restart policy to the engine's. "always" is
// the engine's "unless-stopped": a container that Stop ended (the engine
// counts a kill as a stop) stays stopped, across engine restarts too.
func enginePolicy(p deploy.RestartPolicy) container.RestartPolicy {
	n := p.Normalized()
	switch n.Policy {
	case deploy.RestartAlways:
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	case deploy.RestartOnFailure:
		return container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: n.MaxRetries}
	}
	return container.RestartPolicy{Name: container.RestartPolicyDisabled}
}

// policyOf maps the engine's restart policy back, for an adopted container.
func policyOf(rp container.RestartPolicy) deploy.RestartPolicy {
	switch rp.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return deploy.RestartPolicy{Policy: deploy.RestartAlways}
	case container.RestartPolicyOnFailure:
		return deploy.RestartPolicy{Policy: deploy.RestartOnFailure, MaxRetries: rp.MaximumRetryCount}
	}
	return deploy.RestartPolicy{Policy: deploy.RestartNever}
}

// summaryAddr picks the loopback binding of port in a container list entry,
// or "" when it has none (a container that is not running, or restarting).
func summaryAddr(ps []container.PortSummary, port int) string {
	for _, p := range ps {
		if int(p.PrivatePort) != port || p.PublicPort == 0 || p.Type != "tcp" {
			continue
		}
		if p.IP == loopback || !p.IP.IsValid() {
			return net.JoinHostPort(loopback.String(), strconv.Itoa(int(p.PublicPort)))
		}
	}
	return ""
}

// newRunLocked forgets the previous run's exit when the engine has restarted
// the container: restarts is the engine's RestartCount, or -1 when unknown
// (a list entry), in which case a container seen running again after it
// exited, with a policy that restarts, counts as restarted once. m.mu is held.
func (m *Machine) newRunLocked(engine deploy.MachineState, restarts int) {
	switch {
	case restarts > m.restarts:
		m.restarts = restarts
	case restarts < 0 && m.c.Exit != nil && !m.c.StopAsked && m.c.State == deploy.StateStopped &&
		(engine == deploy.StateStarted || engine == deploy.StateStarting) &&
		m.spec.Restart.Normalized().Policy != deploy.RestartNever:
		m.restarts++
	default:
		return
	}
	m.c.Exit, m.c.StopAsked, m.c.KillReason = nil, false, ""
}

// Signal sends sig (such as "SIGKILL") to the container's process through the
// engine, as docker kill -s does. The engine counts it as a stop: the restart
// policy does not restart the container when it exits.
func (m *Machine) Signal(ctx context.Context, sig string) error {
	if _, err := m.b.cli.ContainerKill(ctx, m.cid, client.ContainerKillOptions{Signal: sig}); err != nil {
		return wrapErr("signal", m.id, err)
	}
	return nil
}

// PID returns the host's process ID of the container's main process, or 0
// when it does not run. Killing it from the host (as a crash or the OOM
// killer would) lets the restart policy restart the container.
func (m *Machine) PID(ctx context.Context) (int, error) {
	c, err := m.inspect(ctx)
	if err != nil {
		return 0, err
	}
	m.observeInspect(c)
	if c.State == nil {
		return 0, nil
	}
	return c.State.Pid, nil
}
