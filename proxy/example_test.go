package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/cutover/deploy/proxy"
	"github.com/hashicorp/go-hclog"
)

// Example puts a proxy in front of one version of an app, then cuts traffic over
// to a new version: SetTargets returns once the old one has drained.
func Example() {
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from v1")
	}))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from v2")
	}))
	defer v2.Close()

	p := proxy.New(proxy.Options{})
	defer p.CloseIdleConnections()
	front := httptest.NewServer(p) // or http.ListenAndServe(":8080", p)
	defer front.Close()

	get := func() string {
		res, err := http.Get(front.URL)
		if err != nil {
			return err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(b)))
	}

	ctx := context.Background()
	fmt.Println(get())

	_ = p.SetTargets(ctx, map[string]int{v1.Listener.Addr().String(): 1})
	fmt.Println(get())

	_ = p.SetTargets(ctx, map[string]int{v2.Listener.Addr().String(): 1})
	fmt.Println(get())
	fmt.Println(p.Stats()[v2.Listener.Addr().String()].Requests, "request(s) on v2")

	http.DefaultClient.CloseIdleConnections()
	// Output:
	// 503 no healthy targets
	// 200 hello from v1
	// 200 hello from v2
	// 1 request(s) on v2
}

// ExampleHistogram_Observe builds a latency distribution outside the Proxy, as a
// router of one's own does to report deploy.StatsReporter's counters (Buckets).
func ExampleHistogram_Observe() {
	var h proxy.Histogram
	for i := 1; i <= 100; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	s := proxy.TargetStats{Requests: 100, Errors: 2, Latency: h}
	fmt.Println(s.Latency.Count(), s.Latency.Mean(), s.ErrorRate())
	p99 := s.Quantile(0.99)
	fmt.Println(p99 > 90*time.Millisecond && p99 < 110*time.Millisecond) // within a bucket of 99ms
	// Output:
	// 100 50.5ms 0.02
	// true
}

// ExampleOptions_logger gives the proxy a go-hclog logger: it logs what
// happens to each target, with the target's address under the key "target".
func ExampleOptions_logger() {
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "proxy", Level: hclog.Info, Output: os.Stdout, DisableTime: true,
	})
	p := proxy.New(proxy.Options{Logger: logger})
	defer p.CloseIdleConnections()

	ctx := context.Background()
	_ = p.SetTargets(ctx, map[string]int{"10.0.0.1:8080": 1})
	_ = p.SetTargets(ctx, map[string]int{"10.0.0.2:8080": 1}) // 10.0.0.1 drains first
	// Output:
	// [INFO]  proxy: target added: target=10.0.0.1:8080 weight=1
	// [INFO]  proxy: target added: target=10.0.0.2:8080 weight=1
	// [INFO]  proxy: target removed; draining: target=10.0.0.1:8080 in_flight=0
}
