package deploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cutover/deploy"
)

// Summary is the JSON line PrintReport writes: the deploy and what the clients saw.
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
	Nodes      int    `json:"nodes,omitempty"` // hosts whose machines served after the deploy (examples/swarm)
	Error      string `json:"error,omitempty"`
}

// PrintReport writes the deploy res of machines machines, the load lr sent during
// it, who served after it returned (after), and, with asJSON, the Summary line.
func PrintReport(w io.Writer, res *deploy.Result, machines int, lr LoadResult, after map[string]int64, derr error, asJSON bool) {
	PrintNodesReport(w, res, machines, 0, lr, after, derr, asJSON)
}

// PrintNodesReport is PrintReport for machines spread over hosts: nodes is how many hosts
// ran the machines that served after the deploy (0 leaves it out).
func PrintNodesReport(w io.Writer, res *deploy.Result, machines, nodes int, lr LoadResult, after map[string]int64, derr error, asJSON bool) {
	fmt.Fprintf(w, "\n%s deploy %s -> %s: %s in %s\n", res.Strategy, res.FromVersion, res.Version, res.Status, res.Duration().Round(time.Millisecond))
	fmt.Fprintf(w, "  machines then: %v\n", res.Machines)
	fmt.Fprintf(w, "  requests: %d, failed: %d, served by: %v\n", lr.Requests, lr.Failed, lr.ByBody)
	fmt.Fprintf(w, "  after the deploy returned, served by: %v\n", after)
	if nodes > 0 {
		fmt.Fprintf(w, "  nodes serving: %d\n", nodes)
	}
	if res.Downtime > 0 {
		fmt.Fprintf(w, "  downtime window: %s\n", res.Downtime.Round(time.Millisecond))
	}
	for _, e := range lr.Errors {
		fmt.Fprintf(w, "  failure: %s\n", e)
	}
	if !asJSON {
		return
	}
	sum := Summary{
		Strategy: res.Strategy, From: res.FromVersion, To: res.Version, Status: string(res.Status),
		Machines: machines, Requests: lr.Requests, Failed: lr.Failed,
		DurationMS: res.Duration().Milliseconds(), DowntimeMS: res.Downtime.Milliseconds(), Nodes: nodes,
	}
	if derr != nil {
		sum.Error = derr.Error()
	}
	b, _ := json.Marshal(sum)
	fmt.Fprintln(w, string(b))
}
