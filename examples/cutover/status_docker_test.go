package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/backend/docker"
	"github.com/cutover/deploy/control"
)

// On Docker, status, its hint line and the machines' log lines show one ID
// per machine, and it is the container's: the engine finds the container by
// it, as docker ps --filter id=ID and docker inspect ID do.
func TestStatusDockerID(t *testing.T) {
	b := dockerEngine(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	app, img := "e2e-id-"+suffix, "cutover-e2e-id-"+suffix+":v1"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := b.DestroyAll(ctx, app)
		assert.NoError(t, err)
		assert.NoError(t, b.RemoveImage(ctx, img))
		b.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(t, b.BuildGoImage(ctx, img, "../app", docker.ImageOptions{Env: map[string]string{"VERSION": "v1"}}))
	cli, err := client.New(client.FromEnv)
	require.NoError(t, err)
	defer cli.Close()

	e := newEnv(t, app, img)
	e.start("docker")
	r := e.run("deploy")
	require.Equal(t, 0, r.code, r.stderr)

	r = e.run("status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var st control.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	require.NotEmpty(t, st.Machines)
	for _, m := range st.Machines {
		require.Len(t, m.ID, 12, "machine ID %q", m.ID)
		res, err := cli.ContainerInspect(ctx, m.ID, client.ContainerInspectOptions{})
		require.NoError(t, err, "docker inspect %s", m.ID)
		assert.Equal(t, "/cutover-"+app+"-"+m.ID, res.Container.Name)
		list, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("id", m.ID)})
		require.NoError(t, err)
		assert.Len(t, list.Items, 1, "docker ps --filter id=%s", m.ID)
	}
	id := st.Machines[0].ID
	r = e.run("status")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, id)
	assert.Contains(t, r.stdout, "docker ps --filter id="+id)
	r = e.run("logs", "-n", "1000")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "["+id+" v1]")
}
