package deploy

import (
	"fmt"
	"time"
)

// EventType names one step of a deploy's progress.
type EventType string

// Event types, roughly in the order a deploy emits them.
const (
	DeployStarted     EventType = "deploy_started"
	ReleaseCommand    EventType = "release_command"     // the release command started
	ReleaseOutput     EventType = "release_output"      // one line of release command output, in Message
	ReleaseCommandEnd EventType = "release_command_end" // the release command exited
	MachineCreated    EventType = "machine_created"
	MachineStarted    EventType = "machine_started"
	MachineHealthy    EventType = "machine_healthy"
	MachineUnhealthy  EventType = "machine_unhealthy"
	MachineRouted     EventType = "machine_routed"   // the machine receives traffic (Weight says how much)
	MachineDraining   EventType = "machine_draining" // the machine left traffic; in-flight requests finish
	MachineStopped    EventType = "machine_stopped"
	MachineDestroyed  EventType = "machine_destroyed"
	MachineRestarted  EventType = "machine_restarted" // the backend restarted a machine that exited on its own (Monitor)
	MachineReplaced   EventType = "machine_replaced"  // a new machine took the place of one gone for good (Monitor; Message names the old one)
	DeployHeld        EventType = "deploy_held"       // new machines are healthy; waiting for Promote or Abort
	CanaryStep        EventType = "canary_step"       // a canary step began (Weight is the canary's share in percent)
	CanaryAnalysis    EventType = "canary_analysis"   // a canary step was analysed (Message has the figures)
	DeploySucceeded   EventType = "deploy_succeeded"
	DeployFailed      EventType = "deploy_failed"
	DeployRolledBack  EventType = "deploy_rolled_back"
)

// Event is one step of a deploy's progress.
type Event struct {
	Type    EventType
	Time    time.Time
	App     string
	Version string // version of the machine or deploy the event is about
	Machine string // machine ID, when the event is about one machine
	Addr    string // machine address, when known
	Weight  int    // traffic weight, for MachineRouted
	Message string // free text: a reason, a line of output
	Err     error  // the error, for failures
}

// String formats the event as one log line.
func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Time.Format("15:04:05.000"), e.Type)
	if e.Machine != "" {
		s += " machine=" + e.Machine
	}
	if e.Version != "" {
		s += " version=" + e.Version
	}
	if e.Type == MachineRouted {
		s += fmt.Sprintf(" weight=%d", e.Weight)
	}
	if e.Message != "" {
		s += " " + e.Message
	}
	if e.Err != nil {
		s += " error=" + e.Err.Error()
	}
	return s
}
