package deploytest

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cutover/deploy"
)

// Trial is one deploy made under load by DeployUnderLoad: what the deploy
// returned and what the clients saw.
type Trial struct {
	// Result is the deploy's result (its Err says why it failed).
	Result *deploy.Result
	// Count is the number of machines the deploy asked for.
	Count int
	// Load counts every request sent from before the deploy started until
	// the requests of After were answered.
	Load LoadResult
	// After counts the responses, by body (the version that served), to
	// requests sent after the deploy returned.
	After map[string]int64
	// Nodes is how many hosts ran the machines that served after the deploy,
	// for a caller whose machines spread over hosts to set; 0 leaves it out of
	// Print and Summary.
	Nodes int
}

// Summary is a Trial as one JSON object, the last line examples print with -json.
type Summary struct {
	Strategy   string `json:"strategy"`
	From       string `json:"from"`
	To         string `json:"to"`
	Status     string `json:"status"`
	Machines   int    `json:"machines"`
	Requests   int64  `json:"requests"`
	Failed     int64  `json:"failed"` // non-2xx responses plus transport errors
	DurationMS int64  `json:"duration_ms"`
	DowntimeMS int64  `json:"downtime_ms"`
	Nodes      int    `json:"nodes,omitempty"` // Trial.Nodes
	Error      string `json:"error,omitempty"`
}

// DeployUnderLoad deploys req with d while clients (configured by opts) send
// requests to url, the address that serves d's router: it starts the load,
// waits for 100 answered requests, deploys, then waits (up to 10s) for 100
// answers to requests sent after the deploy returned, and stops the load.
// It returns the deploy's error; the Trial is nil only when the deploy did
// not start (ctx ended before the load got going).
func DeployUnderLoad(ctx context.Context, d *deploy.Deployer, req deploy.Request, url string, opts LoadOptions) (*Trial, error) {
	run := StartLoad(ctx, url, opts)
	if err := run.WaitRequests(ctx, 100); err != nil {
		run.Stop()
		return nil, err
	}
	res, err := d.Deploy(ctx, req)
	after := run.Mark()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = run.WaitEpoch(wctx, after, 100) // what arrived by then is what After reports
	cancel()
	t := &Trial{Result: res, Count: req.Count, Load: run.Stop(), After: run.Epoch(after)}
	return t, err
}

// Print writes t for people: the deploy, the requests and failures, who
// served after it, its downtime window and Nodes when they are not zero.
func (t *Trial) Print(w io.Writer) {
	res := t.Result
	fmt.Fprintf(w, "\n%s deploy %s -> %s: %s in %s\n", res.Strategy, res.FromVersion, res.Version, res.Status, res.Duration().Round(time.Millisecond))
	fmt.Fprintf(w, "  machines then: %v\n", res.Machines)
	fmt.Fprintf(w, "  requests: %d, failed: %d, served by: %v\n", t.Load.Requests, t.Load.Failed, t.Load.ByBody)
	fmt.Fprintf(w, "  after the deploy returned, served by: %v\n", t.After)
	if t.Nodes > 0 {
		fmt.Fprintf(w, "  nodes serving: %d\n", t.Nodes)
	}
	if res.Downtime > 0 {
		fmt.Fprintf(w, "  downtime window: %s\n", res.Downtime.Round(time.Millisecond))
	}
	for _, e := range t.Load.Errors {
		fmt.Fprintf(w, "  failure: %s\n", e)
	}
}

// Summary returns t as a Summary.
func (t *Trial) Summary() Summary {
	res := t.Result
	s := Summary{
		Strategy: res.Strategy, From: res.FromVersion, To: res.Version, Status: string(res.Status),
		Machines: t.Count, Requests: t.Load.Requests, Failed: t.Load.Failed,
		DurationMS: res.Duration().Milliseconds(), DowntimeMS: res.Downtime.Milliseconds(), Nodes: t.Nodes,
	}
	if res.Err != nil {
		s.Error = res.Err.Error()
	}
	return s
}
