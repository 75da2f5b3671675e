package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy/control"
)

// fly.toml's [http_service.concurrency] reaches the daemon's proxy: with a
// hard limit of 1 on one machine, concurrent requests wait their turn in the
// proxy's queue (counted in status) and all succeed.
func TestConcurrencyFromFlyToml(t *testing.T) {
	e := newEnv(t, "conc", "demo:v1")
	conf := fmt.Sprintf(flyTOML, "conc", "demo:v1") + `
  [http_service.concurrency]
    type = "requests"
    soft_limit = 1
    hard_limit = 1
`
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "fly.toml"), []byte(conf), 0o644))
	e.start("mem")
	r := e.run("deploy", "--count", "1")
	require.Equal(t, 0, r.code, r.stderr)

	const n = 4
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.url() + "/slow?ms=500")
			if err != nil {
				codes[i] = -1
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, http.StatusOK, c, "request %d", i)
	}

	c := control.Dial(filepath.Join(e.dir, ".cutover", "cutover.sock"))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	require.NoError(t, err)
	require.Len(t, st.Machines, 1)
	require.NotNil(t, st.Machines[0].Stats)
	t.Logf("queued %d of %d concurrent requests", st.Machines[0].Stats.Queued, n)
	assert.GreaterOrEqual(t, st.Machines[0].Stats.Queued, uint64(1), "with a hard limit of 1, some of %d concurrent requests waited in the queue", n)
}
