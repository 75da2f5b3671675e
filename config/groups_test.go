package config_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deploy "github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/config"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/internal/testenv"
	"github.com/cutover/deploy/release"
)

// groupsEnv is a testenv whose backend runs the "worker" command of
// two-groups.toml: it writes its arguments and group, then runs until
// stopped, or exits at once with code 3 when its env has FAIL=1.
func groupsEnv(t *testing.T) *testenv.Env {
	e := testenv.New(t)
	e.Deployer.Store = release.NewMemory()
	e.Deployer.FromRelease = config.FromRelease
	e.Backend.RegisterCommand("worker", func(ctx context.Context, args []string, env map[string]string, out *mem.Output) int {
		fmt.Fprintf(out, "worker %s group=%s\n", strings.Join(args, " "), env["FLY_PROCESS_GROUP"])
		if env["FAIL"] == "1" {
			return 3
		}
		<-ctx.Done()
		return 0
	})
	return e
}

// groupsRequest plans two-groups.toml for image (web x2, worker x1).
func groupsRequest(t *testing.T, image, strategy string, env map[string]string) deploy.Request {
	t.Helper()
	c, err := config.Load(filepath.Join("testdata", "forms", "two-groups.toml"))
	require.NoError(t, err)
	c.Build.Image = image
	c.App = testenv.App
	c.Deploy.Strategy = strategy
	c.Env = env
	p, err := c.Plan()
	require.NoError(t, err)
	for i := range p.Groups {
		p.Groups[i].Count = map[string]int{"web": 2, "worker": 1}[p.Groups[i].Name]
	}
	req, err := p.Request()
	require.NoError(t, err)
	require.Len(t, req.Groups, 2)
	return req
}

// byGroup returns the versions of the app's machines per group, and checks
// that the proxy routes exactly the web machines.
func byGroup(t *testing.T, e *testenv.Env) map[string]map[string]int {
	t.Helper()
	ctx := context.Background()
	ms, err := e.Backend.List(ctx, testenv.App)
	require.NoError(t, err)
	out := map[string]map[string]int{}
	web := map[string]bool{}
	for _, m := range ms {
		g := m.Spec().Labels[deploy.LabelGroup]
		if out[g] == nil {
			out[g] = map[string]int{}
		}
		out[g][m.Spec().Version]++
		switch g {
		case "web":
			web[m.Addr()] = true
		case "worker":
			assert.True(t, m.Spec().NoService)
			assert.Equal(t, []string{"worker", "--queue", "orders"}, m.Spec().Cmd)
			lr, ok := m.(deploy.LogReader)
			require.True(t, ok)
			rc, err := lr.Logs(ctx, false)
			require.NoError(t, err)
			b, _ := io.ReadAll(rc)
			rc.Close()
			assert.Equal(t, "worker --queue orders group=worker\n", string(b), "the worker runs its own command")
		}
	}
	targets := e.Proxy.Targets()
	assert.Len(t, targets, len(web), "the proxy routes the web machines only: %v", targets)
	for addr := range targets {
		assert.True(t, web[addr], "routed %s is no web machine", addr)
	}
	return out
}

// A two-group app (web with an http_service, worker without) deploys in one
// release under load with no failed request, each group with the strategy;
// rollback restores both groups.
func TestGroupsDeployAndRollback(t *testing.T) {
	for _, strat := range []string{"rolling", "bluegreen"} {
		t.Run(strat, func(t *testing.T) {
			e := groupsEnv(t)
			ctx := context.Background()
			res, err := e.Deployer.Deploy(ctx, groupsRequest(t, "v1", strat, nil))
			require.NoError(t, err)
			assert.Equal(t, "v1", res.Version)
			assert.Len(t, res.Machines, 3)
			assert.Equal(t, map[string]map[string]int{"web": {"v1": 2}, "worker": {"v1": 1}}, byGroup(t, e))

			run := e.Load(t)
			res, err = e.Deployer.Deploy(ctx, groupsRequest(t, "v2", strat, nil))
			require.NoError(t, err)
			assert.Equal(t, deploy.StatusSucceeded, res.Status)
			deploytest.OnlyVersion(t, run, "v2", 100)
			assert.Equal(t, map[string]map[string]int{"web": {"v2": 2}, "worker": {"v2": 1}}, byGroup(t, e))

			rels, err := e.Deployer.Store.List(ctx, testenv.App)
			require.NoError(t, err)
			require.Len(t, rels[0].Groups, 2)
			assert.Equal(t, "worker", rels[0].Groups[1].Name)
			assert.Equal(t, 1, rels[0].Groups[1].Count)

			res, err = e.Deployer.Rollback(ctx, testenv.App, 1)
			require.NoError(t, err)
			assert.Equal(t, "v3", res.Version)
			deploytest.OnlyVersion(t, run, "v1", 100)
			deploytest.AssertNoFailures(t, run.Stop())
			assert.Equal(t, map[string]map[string]int{"web": {"v3": 2}, "worker": {"v3": 1}}, byGroup(t, e))
			ms, err := e.Backend.List(ctx, testenv.App)
			require.NoError(t, err)
			for _, m := range ms {
				assert.Equal(t, "v1", m.Spec().Image, "rollback redeploys v1's image in both groups")
			}

			st, err := e.Deployer.Status(ctx, testenv.App)
			require.NoError(t, err)
			groups := map[string]int{}
			for _, s := range st {
				groups[s.Group]++
				assert.Equal(t, "passing", s.Health, "%s (%s)", s.ID, s.Group)
				if s.Group == "worker" {
					assert.Zero(t, s.Weight)
				} else {
					assert.Equal(t, 1, s.Weight)
				}
			}
			assert.Equal(t, map[string]int{"web": 2, "worker": 1}, groups)
		})
	}
}

// When a later group fails (its worker exits within the startup window), the
// groups already moved go back too: the previous release serves, whole.
func TestGroupsFailedGroupRollsBackAll(t *testing.T) {
	e := groupsEnv(t)
	ctx := context.Background()
	_, err := e.Deployer.Deploy(ctx, groupsRequest(t, "v1", "rolling", nil))
	require.NoError(t, err)
	run := e.Load(t)
	res, err := e.Deployer.Deploy(ctx, groupsRequest(t, "v2", "rolling", map[string]string{"FAIL": "1"}))
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrExited)
	assert.Contains(t, err.Error(), "group worker")
	assert.Equal(t, deploy.StatusRolledBack, res.Status, "the web group had moved")
	deploytest.OnlyVersion(t, run, "v1", 100)
	deploytest.AssertNoFailures(t, run.Stop())
	ms, err := e.Backend.List(ctx, testenv.App)
	require.NoError(t, err)
	versions := map[string]int{}
	for _, m := range ms {
		versions[m.Spec().Labels[deploy.LabelGroup]+"/"+m.Spec().Version]++
	}
	assert.Equal(t, map[string]int{"web/v1": 2, "worker/v1": 1}, versions)
	rels, err := e.Deployer.Store.List(ctx, testenv.App)
	require.NoError(t, err)
	assert.Equal(t, deploy.ReleaseRolledBack, rels[0].Status)
}
