package swarme2e

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy/backend/swarm"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
)

// env is one test's deploy environment on the swarm (testenv.Engine): a
// unique app, the proxy on 127.0.0.1:0, and a Deployer wired to both, with
// every service of its app removed by t.Cleanup.
type env struct{ *testenv.Engine }

// workerGone is set once a test stopped the worker: later tests skip.
var workerGone atomic.Bool

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if workerGone.Load() {
		t.Skip("the worker was stopped by an earlier test")
	}
	return &env{testenv.NewEngine(t, sb, testenv.EngineOptions{Image: image,
		WaitTimeout: 45 * time.Second, DeployTimeout: 3 * time.Minute, SweepTimeout: 2 * time.Minute})}
}

// Load starts 16 clients sending the mixed load through the proxy (GETs,
// 200 ms requests, 64 KiB uploads and streams, which examples/app answers),
// bounded to 3 minutes, as the Docker end-to-end tests do.
func (e *env) Load(t *testing.T) *deploytest.Load {
	return testenv.StartLoadWith(t, e.URL, deploytest.LoadOptions{Workers: loadClients, Duration: 3 * time.Minute, Mixed: true})
}

// loadClients is how many clients Load runs.
const loadClients = 16

// Nodes returns, per version, how many of the app's machines run on each
// node ("manager", "worker").
func (e *env) Nodes(t *testing.T) map[string]map[string]int {
	t.Helper()
	ms, err := e.Backend.List(testenv.CtxFor(t, 30*time.Second), e.App)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int{}
	for _, m := range ms {
		v := m.Spec().Version
		if out[v] == nil {
			out[v] = map[string]int{}
		}
		out[v][nodeName(m.(*swarm.Machine).NodeID())]++
	}
	return out
}

func nodeName(id string) string {
	switch id {
	case cluster.ManagerNodeID:
		return "manager"
	case cluster.WorkerNodeID:
		return "worker"
	}
	return id
}

// nodesString formats a node count map in a stable order.
func nodesString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}
