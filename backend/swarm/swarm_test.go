package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/internal/enginetest"
	"github.com/cutover/deploy/backend/swarm"
	"github.com/moby/moby/client"
)

var appSeq atomic.Int64

// newApp returns a unique app name and removes its services when the test ends.
func newApp(t *testing.T, b *swarm.Backend) string {
	t.Helper()
	app := fmt.Sprintf("%s-%d", strings.ToLower(t.Name()), appSeq.Add(1))
	t.Cleanup(func() {
		if _, err := b.DestroyAll(ctxFor(t, time.Minute), app); err != nil {
			t.Errorf("cleanup of %s: %v", app, err)
		}
	})
	return app
}

func launch(t *testing.T, b *swarm.Backend, s deploy.MachineSpec) *swarm.Machine {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	m, err := b.Create(ctx, s)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", m.ID(), err)
	}
	return m.(*swarm.Machine)
}

// An app's machines spread over both nodes, each answering on its node's
// address; a second backend (as another process would) adopts them with
// the same addresses and specs.
func TestSpreadAndAdopt(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	var ms []*swarm.Machine
	for range 4 {
		ms = append(ms, launch(t, b, spec(app, "v1")))
	}
	nodes := map[string]int{}
	for _, m := range ms {
		nodes[m.NodeID()]++
		if got := enginetest.Body(t, m.Addr()); got != "v1" {
			t.Errorf("%s answered %q", m.Addr(), got)
		}
	}
	if nodes[cluster.ManagerNodeID] != 2 || nodes[cluster.WorkerNodeID] != 2 {
		t.Errorf("machines by node: %v; want 2 on each", nodes)
	}

	other, err := swarm.New(ctxFor(t, 10*time.Second), swarm.Options{Namespace: b.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	listed, err := other.List(ctxFor(t, 30*time.Second), app)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 {
		t.Fatalf("adopted %d machines, want 4", len(listed))
	}
	for i, m := range listed {
		if m.ID() != ms[i].ID() || m.Addr() != ms[i].Addr() || m.State() != deploy.StateStarted {
			t.Errorf("adopted %s at %s (%s), want %s at %s, started", m.ID(), m.Addr(), m.State(), ms[i].ID(), ms[i].Addr())
		}
		if s := m.Spec(); s.Image != testImage || s.Version != "v1" || s.Env["VERSION"] != "v1" || s.Port != 8080 {
			t.Errorf("adopted spec %+v", s)
		}
	}
	// Stopped through the adopted handle, seen as stopped by the first.
	if err := listed[0].Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The manager learns of the exit a moment after the node's engine.
	deadline := time.Now().Add(15 * time.Second)
	for ms[0].State() != deploy.StateStopped && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // the task's end is on its way to the manager
	}
	if st := ms[0].State(); st != deploy.StateStopped {
		t.Errorf("state through the first handle: %s, want stopped", st)
	}
}

// deploy.LabelRegion (fly.toml's primary_region) places on the nodes
// labelled region=<it>; a region no node has is refused at Create.
func TestRegionLabel(t *testing.T) {
	b := backend(t)
	app := newApp(t, b)
	labelNode(t, cluster.WorkerNodeID, map[string]string{"region": "ams"})
	s := spec(app, "v1")
	s.Labels = map[string]string{deploy.LabelRegion: "ams"}
	for range 2 {
		if m := launch(t, b, s); m.NodeID() != cluster.WorkerNodeID {
			t.Errorf("machine of region ams on node %s, want the worker %s", m.NodeID(), cluster.WorkerNodeID)
		}
	}
	s.Labels = map[string]string{swarm.NodeLabelPrefix + "region": "nowhere"}
	if _, err := b.Create(ctxFor(t, 30*time.Second), s); !errors.Is(err, deploy.ErrTransient) {
		t.Errorf("create in a region no node has: %v, want ErrTransient", err)
	}
}

// labelNode sets labels on a node until the test ends.
func labelNode(t *testing.T, id string, labels map[string]string) {
	t.Helper()
	cli := cluster.Manager
	set := func(l map[string]string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := cli.NodeInspect(ctx, id, client.NodeInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec := n.Node.Spec
		spec.Labels = l
		if _, err := cli.NodeUpdate(ctx, id, client.NodeUpdateOptions{Version: n.Node.Version, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	set(labels)
	t.Cleanup(func() { set(nil) })
}
