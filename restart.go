package deploy

import (
	"fmt"
	"strings"
)

// Restart policies, as Fly machines and Docker containers name them.
const (
	// RestartOnFailure restarts a machine whose process exits with a non-zero
	// code (a crash, a SIGKILL), up to MaxRetries times. A clean exit (code 0)
	// or a stop asked for with Stop is not restarted.
	RestartOnFailure = "on-failure"
	// RestartAlways restarts a machine whenever its process exits on its own,
	// whatever the code. A stop asked for with Stop is not restarted.
	RestartAlways = "always"
	// RestartNever leaves an exited machine stopped.
	RestartNever = "never"
)

// DefaultRestartRetries is the number of restarts RestartOnFailure allows
// when MaxRetries is 0, as on Fly.
const DefaultRestartRetries = 10

// RestartPolicy says whether the backend restarts a machine whose process
// exits on its own (crashes, is killed by something other than Stop).
//
// The zero value is Fly's default for the machines of a deployed app:
// on-failure, with up to 10 restarts. Release command machines are never
// restarted, whatever their spec says.
type RestartPolicy struct {
	// Policy is RestartOnFailure, RestartAlways or RestartNever ("no" is
	// taken for "never"); empty means RestartOnFailure.
	Policy string
	// MaxRetries bounds the restarts of RestartOnFailure; 0 means
	// DefaultRestartRetries. Negative is invalid. RestartAlways has no bound.
	MaxRetries int
}

// Normalized returns p with its defaults filled in: an explicit policy name,
// and MaxRetries set for RestartOnFailure (0 for the others).
func (p RestartPolicy) Normalized() RestartPolicy {
	switch strings.ToLower(p.Policy) {
	case "", RestartOnFailure, "on-fail":
		p.Policy = RestartOnFailure
		if p.MaxRetries == 0 {
			p.MaxRetries = DefaultRestartRetries
		}
	case RestartAlways:
		p.Policy, p.MaxRetries = RestartAlways, 0
	case RestartNever, "no":
		p.Policy, p.MaxRetries = RestartNever, 0
	}
	return p
}

// Validate returns an error wrapping ErrInvalid for an unknown policy or a
// negative MaxRetries.
func (p RestartPolicy) Validate() error {
	n := p.Normalized()
	switch n.Policy {
	case RestartOnFailure, RestartAlways, RestartNever:
	default:
		return fmt.Errorf("restart policy: %w: %q is not one of always, on-failure, never", ErrInvalid, p.Policy)
	}
	if p.MaxRetries < 0 {
		return fmt.Errorf("restart policy: %w: retries %d is negative", ErrInvalid, p.MaxRetries)
	}
	return nil
}

// Restarts reports whether a machine that exited with code, after restarts
// restarts already, is to be restarted under p.
func (p RestartPolicy) Restarts(code, restarts int) bool {
	n := p.Normalized()
	switch n.Policy {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return code != 0 && restarts < n.MaxRetries
	}
	return false
}

// String describes the policy, such as "on-failure (10 retries)".
func (p RestartPolicy) String() string {
	n := p.Normalized()
	if n.Policy == RestartOnFailure {
		return fmt.Sprintf("%s (%d retries)", n.Policy, n.MaxRetries)
	}
	return n.Policy
}

// RestartReporter is implemented by machines whose backend restarts them
// after their process exits on its own, as their spec's Restart policy says.
// A restarted machine keeps its ID; its Addr may change (re-read it).
type RestartReporter interface {
	// Restarts returns how many times the backend restarted the machine.
	Restarts() int
}

// RestartsOf returns m's restart count, or 0 when neither m nor a machine it
// wraps (an Unwrap() Machine method, as backend/retry's) reports one.
func RestartsOf(m Machine) int {
	if r, ok := machineAs[RestartReporter](m); ok {
		return r.Restarts()
	}
	return 0
}
