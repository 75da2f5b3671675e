package deploy

import (
	"context"
	"sort"
	"time"
)

// MachineStatus is one line of Deployer.Status, like `fly status`.
type MachineStatus struct {
	ID      string
	Group   string // process group (LabelGroup); "" for a single-group app
	Version string
	Image   string
	Addr    string
	State   MachineState
	Health  string // "passing", "critical: <reason>", or "" when not started
	Weight  int    // traffic weight; -1 when the router cannot say
}

// Status lists an app's machines with their version, state, health (checked now)
// and traffic weight, sorted by ID. The weight is the innermost router's: with
// a Monitor, a machine held out of traffic shows 0.
func (d *Deployer) Status(ctx context.Context, app string) ([]MachineStatus, error) {
	ms, err := d.Backend.List(ctx, app)
	if err != nil {
		return nil, err
	}
	var weights map[string]int // what the router carrying traffic does, under any wrappers
	for rt := range RouterChain(d.Router) {
		if wr, ok := rt.(WeightReporter); ok {
			weights = wr.Targets()
		}
	}
	hc := d.Health
	if hc == nil {
		hc = DefaultCheck{}
	}
	out := make([]MachineStatus, 0, len(ms))
	for _, m := range ms {
		st := MachineStatus{ID: m.ID(), Group: m.Spec().Labels[LabelGroup], Version: m.Spec().Version, Image: m.Spec().Image, Addr: m.Addr(), State: m.State(), Weight: -1}
		if weights != nil {
			st.Weight = weights[m.Addr()]
		}
		if st.State == StateStarted {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			mhc := hc
			if noService(m.Spec()) {
				mhc = StaysRunning{}
			}
			if err := mhc.Check(cctx, m); err != nil {
				st.Health = "critical: " + err.Error()
			} else {
				st.Health = "passing"
			}
			cancel()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
