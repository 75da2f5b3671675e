package deploytest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cutover/deploy/deploytest"
)

func TestAppServesLikeARealApp(t *testing.T) {
	srv := httptest.NewServer(deploytest.App("v7"))
	defer srv.Close()
	get := func(method, path string, body io.Reader) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, path string
		body         io.Reader
		code         int
		want         string
	}{
		{"GET", "/", nil, 200, "v7"},
		{"GET", "/anything", nil, 200, "v7"},
		{"GET", "/health", nil, 200, "ok"},
		{"GET", "/slow?ms=5", nil, 200, "v7"},
		{"POST", "/upload", strings.NewReader(strings.Repeat("u", 1<<20)), 200, "v7"},
		{"GET", "/stream", nil, 200, "v7"},
		{"GET", "/fail", nil, 500, "failing on purpose\n"},
	} {
		if code, body := get(c.method, c.path, c.body); code != c.code || body != c.want {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, body, c.code, c.want)
		}
	}
	failed := 0
	for range 200 {
		if code, _ := get("GET", "/flaky?pct=30", nil); code == 500 {
			failed++
		}
	}
	if failed != 60 {
		t.Errorf("/flaky?pct=30 failed %d of 200 requests, want 60", failed)
	}
}
