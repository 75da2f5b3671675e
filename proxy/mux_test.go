package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// getHost sends a GET of path to front with the Host header host.
func getHost(t *testing.T, c *http.Client, front, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", front+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	code, body, err := doReq(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func doReq(c *http.Client, req *http.Request) (int, string, error) {
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var b [256]byte
	n, _ := res.Body.Read(b[:])
	return res.StatusCode, string(b[:n]), nil
}

// TestMuxRoutes: each host (and prefix) reaches its own app's proxy only;
// unknown hosts and paths get 404; wildcards, ports, case and a trailing
// dot are handled; Remove takes a route away.
func TestMuxRoutes(t *testing.T) {
	apps := map[string]*Proxy{}
	for _, name := range []string{"web", "api", "apiv2", "tenant"} {
		b := newBackend(t, name, nil)
		p := New(Options{})
		t.Cleanup(p.CloseIdleConnections)
		setTargets(t, p, map[string]int{b.addr(): 1})
		apps[name] = p
	}
	var m Mux
	for _, r := range []struct{ host, prefix, app string }{
		{"web.example.com", "", "web"},
		{"API.example.com", "/", "api"},
		{"api.example.com", "/v2/", "apiv2"},
		{"*.tenants.example.com", "", "tenant"},
	} {
		if err := m.Handle(r.host, r.prefix, apps[r.app]); err != nil {
			t.Fatal(err)
		}
	}
	front := httptest.NewServer(&m)
	defer front.Close()
	c := front.Client()

	for _, tc := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"web.example.com", "/", 200, "web"},
		{"WEB.example.com.:8443", "/x", 200, "web"},
		{"api.example.com", "/v1/users", 200, "api"},
		{"api.example.com", "/v2", 200, "apiv2"},
		{"api.example.com", "/v2/users", 200, "apiv2"},
		{"api.example.com", "/v2x", 200, "api"},
		{"a.tenants.example.com", "/", 200, "tenant"},
		{"a.b.tenants.example.com", "/", 404, ""},
		{"tenants.example.com", "/", 404, ""},
		{"other.example.com", "/", 404, ""},
		{"127.0.0.1", "/", 404, ""},
	} {
		code, body := getHost(t, c, front.URL, tc.host, tc.path)
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}
	if got, want := m.Hosts(), []string{"*.tenants.example.com", "api.example.com", "web.example.com"}; !slices.Equal(got, want) {
		t.Errorf("Hosts() = %v, want %v", got, want)
	}
	if err := m.Handle("web.example.com", "", apps["api"]); !errors.Is(err, ErrInvalidRoute) {
		t.Errorf("a route taken twice: %v, want ErrInvalidRoute", err)
	}
	for _, bad := range []string{"", "a:80", "*", "*.", "a..b", "x/y"} {
		if err := m.Handle(bad, "", apps["api"]); !errors.Is(err, ErrInvalidRoute) {
			t.Errorf("Handle(%q): %v, want ErrInvalidRoute", bad, err)
		}
	}
	if err := m.Handle("x.example.com", "api", apps["api"]); !errors.Is(err, ErrInvalidRoute) {
		t.Errorf("prefix without /: %v, want ErrInvalidRoute", err)
	}
	m.Remove("api.example.com", "/v2")
	if code, body := getHost(t, c, front.URL, "api.example.com", "/v2/users"); code != 200 || body != "api" {
		t.Errorf("after Remove: %d %q, want api", code, body)
	}
	m.Remove("web.example.com", "")
	if code, _ := getHost(t, c, front.URL, "web.example.com", "/"); code != 404 {
		t.Errorf("removed host: %d, want 404", code)
	}
}

// TestMuxDeployOneApp: while one app's targets are replaced over and over
// under load, both apps' clients get only their own app's answers and no
// request fails.
func TestMuxDeployOneApp(t *testing.T) {
	webB := newBackend(t, "web", nil)
	apiBs := []*backend{newBackend(t, "api", nil), newBackend(t, "api", nil)}
	web, api := New(Options{}), New(Options{})
	defer web.CloseIdleConnections()
	defer api.CloseIdleConnections()
	setTargets(t, web, map[string]int{webB.addr(): 1})
	setTargets(t, api, map[string]int{apiBs[0].addr(): 1})
	var m Mux
	if err := m.Handle("web.test", "", web); err != nil {
		t.Fatal(err)
	}
	if err := m.Handle("api.test", "", api); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(&m)
	defer front.Close()
	c := front.Client()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	counts := make([]int, 8)
	for i := range 8 {
		host, want := "web.test", "web"
		if i%2 == 1 {
			host, want = "api.test", "api"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL, nil)
				req.Host = host
				code, body, err := doReq(c, req)
				if err != nil || code != 200 || body != want {
					t.Errorf("%s: %d %q %v", host, code, body, err)
					return
				}
				counts[i]++
			}
		}()
	}
	for i := range 20 {
		next := apiBs[(i+1)%2]
		if err := api.SetTargets(context.Background(), map[string]int{next.addr(): 1}); err != nil {
			t.Fatal(err)
		}
		n, w := next.served.Load(), webB.served.Load()
		waitUntil(t, "both apps serve after the swap", func() bool {
			return next.served.Load() >= n+20 && webB.served.Load() >= w+20
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("requests per client: %v", counts)
	if webB.served.Load() == 0 || apiBs[0].served.Load() == 0 || apiBs[1].served.Load() == 0 {
		t.Fatal("a backend served nothing")
	}
}
