package control_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/control"
	"github.com/cutover/deploy/deploytest"
	"github.com/cutover/deploy/proxy"
)

// A daemon with two apps: a Client WithApp reaches the named app's router
// only; an unknown app is not found; pause and resume of one app under load
// fail no request of either app.
func TestAppsPauseResume(t *testing.T) {
	b := mem.New()
	defer b.Close()
	b.Register("web", deploytest.App("web"))
	b.Register("api", deploytest.App("api"))
	ctx := context.Background()

	start := func(app string) (*proxy.Proxy, *httptest.Server, string) {
		m, err := b.Create(ctx, deploy.MachineSpec{App: app, Image: app})
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Destroy(context.Background()) })
		require.NoError(t, m.Start(ctx))
		px := proxy.New(proxy.Options{})
		t.Cleanup(px.CloseIdleConnections)
		front := httptest.NewServer(px)
		t.Cleanup(front.Close)
		return px, front, m.Addr()
	}
	web, webFront, webAddr := start("web")
	api, apiFront, apiAddr := start("api")
	c := serve(t, &control.Server{Router: web, Info: control.Info{App: "web"},
		Apps: map[string]*control.Server{"api": {Router: api, Info: control.Info{App: "api"}}}})

	require.NoError(t, c.SetTargets(ctx, map[string]int{webAddr: 1}))
	require.NoError(t, c.WithApp("api").SetTargets(ctx, map[string]int{apiAddr: 1}))
	require.Equal(t, map[string]int{webAddr: 1}, web.Targets())
	require.Equal(t, map[string]int{apiAddr: 1}, api.Targets())
	info, err := c.WithApp("api").Info(ctx)
	require.NoError(t, err)
	require.Equal(t, "api", info.App)
	_, err = c.WithApp("nope").Info(ctx)
	require.Error(t, err)
	require.True(t, errors.Is(err, deploy.ErrNotFound), "%v", err)

	webLoad := deploytest.StartLoad(ctx, webFront.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	apiLoad := deploytest.StartLoad(ctx, apiFront.URL, deploytest.LoadOptions{Workers: 4, Duration: time.Minute})
	require.NoError(t, apiLoad.WaitRequests(ctx, 100))
	for range 3 {
		require.NoError(t, c.WithApp("api").Pause(ctx, 10*time.Second))
		ok, _ := api.Paused()
		require.True(t, ok)
		if ok, _ := web.Paused(); ok {
			t.Fatal("pausing api paused web")
		}
		n, wn := apiLoad.Mark(), webLoad.Mark()
		require.NoError(t, webLoad.WaitEpoch(ctx, wn, 50)) // web flows while api is paused
		require.Equal(t, int64(0), sum(apiLoad.Epoch(n)), "api served during its pause")
		require.NoError(t, c.WithApp("api").Resume(ctx))
		require.NoError(t, apiLoad.WaitEpoch(ctx, n, 50))
	}
	wr, ar := webLoad.Stop(), apiLoad.Stop()
	t.Logf("web: %v; api: %v", wr, ar)
	require.Zero(t, wr.Failed, "%v", wr.Errors)
	require.Zero(t, ar.Failed, "%v", ar.Errors)
	require.Equal(t, wr.Requests, wr.ByBody["web"]) // never another app's backend
	require.Equal(t, ar.Requests, ar.ByBody["api"])
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
