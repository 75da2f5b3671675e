package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/cutover/deploy/proxy"
)

// ExampleConcurrency limits each target to one request in flight, as a
// fly.toml [http_service.concurrency] section with hard_limit = 1 would, with
// no queue: a request that finds every target busy is answered 503 at once.
func ExampleConcurrency() {
	started, release := make(chan struct{}), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		fmt.Fprint(w, "done")
	}))
	defer app.Close()

	p := proxy.New(proxy.Options{Concurrency: proxy.Concurrency{
		Type:        "requests",
		HardLimit:   1,
		QueueLength: -1, // no waiting: shed at once (the default waits up to 5s, 1024 requests)
	}})
	defer p.CloseIdleConnections()
	if err := p.SetTargets(context.Background(), map[string]int{app.Listener.Addr().String(): 1}); err != nil {
		fmt.Println(err)
		return
	}
	front := httptest.NewServer(p)
	defer front.Close()

	first := make(chan int)
	go func() {
		res, err := http.Get(front.URL)
		if err != nil {
			first <- 0
			return
		}
		res.Body.Close()
		first <- res.StatusCode
	}()
	<-started // the only target is at its hard limit
	res, err := http.Get(front.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	res.Body.Close()
	fmt.Println("second:", res.StatusCode, "Retry-After", res.Header.Get("Retry-After"))
	close(release)
	fmt.Println("first:", <-first)
	fmt.Printf("%+v\n", p.QueueStats())
	// Output:
	// second: 503 Retry-After 1
	// first: 200
	// {Waiting:0 Queued:0 Shed:1}
}
