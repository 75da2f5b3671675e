package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/cutover/deploy/proxy"
)

// ExampleMux serves two apps behind one listener, each with its own Proxy
// (its own targets, deploys and statistics), routed by host name; a host no
// app serves gets 404.
func ExampleMux() {
	var mux proxy.Mux
	for _, app := range []string{"web", "api"} {
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, app)
		}))
		defer backend.Close()
		p := proxy.New(proxy.Options{})
		defer p.CloseIdleConnections()
		_ = p.SetTargets(context.Background(), map[string]int{backend.Listener.Addr().String(): 1})
		if err := mux.Handle(app+".example.com", "", p); err != nil {
			fmt.Println(err)
			return
		}
	}
	front := httptest.NewServer(&mux)
	defer front.Close()
	for _, host := range []string{"web.example.com", "api.example.com", "other.example.com"} {
		req, _ := http.NewRequest("GET", front.URL, nil)
		req.Host = host
		res, err := front.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s: %d %s\n", host, res.StatusCode, body)
	}
	// Output:
	// web.example.com: 200 web
	// api.example.com: 200 api
	// other.example.com: 404 not found: no app serves this host and path
}

// ExampleProxy_Pause holds requests during maintenance: Pause returns once no
// request is in flight, the requests that arrive meanwhile wait, and Resume
// sends them on.
func ExampleProxy_Pause() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "served")
	}))
	defer backend.Close()
	p := proxy.New(proxy.Options{})
	defer p.CloseIdleConnections()
	_ = p.SetTargets(context.Background(), map[string]int{backend.Listener.Addr().String(): 1})
	front := httptest.NewServer(p)
	defer front.Close()

	if err := p.Pause(context.Background(), time.Minute); err != nil { // each request waits at most a minute
		fmt.Println(err)
		return
	}
	done := make(chan string)
	go func() {
		res, err := front.Client().Get(front.URL)
		if err != nil {
			done <- err.Error()
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- string(body)
	}()
	for p.QueueStats().Waiting == 0 { // the request is held
		time.Sleep(time.Millisecond)
	}
	fmt.Println("held:", p.QueueStats().Waiting)
	p.Resume()
	fmt.Println(<-done)
	// Output:
	// held: 1
	// served
}
