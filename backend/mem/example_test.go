package mem_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/backend/mem"
	"github.com/cutover/deploy/health"
)

// An image registered with a constructor runs an app of its own on every
// machine, made from the machine's spec; a fault makes it listen late, as
// real apps do.
func ExampleBackend_RegisterPerMachine() {
	ctx := context.Background()
	b := mem.New()
	defer b.Close()
	b.RegisterPerMachine("web", func(spec deploy.MachineSpec) http.Handler {
		var served atomic.Int64 // this machine's count
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s in %s, request %d", spec.Version, spec.Env["REGION"], served.Add(1))
		})
		return mux
	})
	b.Inject(mem.Fault{Image: "web", ListenAfter: 300 * time.Millisecond}) // each app listens 300ms after it starts

	get := func(m deploy.Machine) string {
		resp, err := http.Get("http://" + m.Addr() + "/")
		if err != nil {
			return "refused"
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for _, region := range []string{"ams", "sin"} {
		m, err := b.Create(ctx, deploy.MachineSpec{App: "web", Image: "web", Version: "v1", Env: map[string]string{"REGION": region}})
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := m.Start(ctx); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("at start:", get(m))
		if err := deploy.WaitHealthy(ctx, m, health.HTTP{Path: "/health", Interval: 20 * time.Millisecond}); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(get(m))
		fmt.Println(get(m))
	}
	// Output:
	// at start: refused
	// v1 in ams, request 1
	// v1 in ams, request 2
	// at start: refused
	// v1 in sin, request 1
	// v1 in sin, request 2
}
