// Package deploytest is what a test needs to prove a deploy loses no request:
// a load generator that counts every response by the version that served it
// and every failure by kind and reason (Load), a deploy made under that load
// (DeployUnderLoad), an app that tells its version and streams, takes
// uploads, answers slowly or fails a share of requests (App), one whose every
// machine boots for a while of its own (SlowBoot), checks of which versions
// serve (OnlyVersion, RoutedVersions, Versions) and a test helper that fails
// on any failed request (AssertNoFailures). The library's own tests and
// examples use it. Clock is a fake deploy.Clock, under which minutes of
// waits take milliseconds.
package deploytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadOptions configure a Load. The zero value uses 8 workers and no bounds but ctx.
type LoadOptions struct {
	Workers  int           // concurrent clients; default 8
	Max      int64         // stop after this many requests in all; 0: no bound
	Duration time.Duration // stop after this long; 0: no bound (Stop or ctx ends it)
	// Mixed makes each worker cycle through GET /, GET /slow, POST /upload
	// (a 64 KiB body) and GET /stream, which the app must answer with its
	// version as / does (examples/app does); false sends GET / only.
	Mixed bool
	// Transport sends the requests (HTTPS with a test CA, a fixed address);
	// nil: a new plain one. Its idle connections are closed on Stop.
	Transport http.RoundTripper
}

// upload is the body of the mixed load's POST /upload.
var upload = strings.Repeat("u", 64<<10)

// Load is a running load. Stop it to get its LoadResult.
type Load struct {
	url    string
	opts   LoadOptions
	client *http.Client
	cancel context.CancelFunc
	start  time.Time
	wg     sync.WaitGroup
	epoch  atomic.Int64
	sent   atomic.Int64

	mu      sync.Mutex
	res     LoadResult
	byEpoch map[int64]map[string]int64
}

// LoadResult counts a Load's requests.
type LoadResult struct {
	Requests int64            // responses and errors
	Failed   int64            // non-2xx responses plus transport errors
	ByBody   map[string]int64 // 2xx responses by body (the version that served)
	Errors   []string         // the first few failures, for the log
	// FailedBy counts failures by request kind and reason, such as
	// "GET /: status 502" or "POST /upload: connection reset".
	FailedBy map[string]int64
	Duration time.Duration
	// FirstFailed is when the earliest failed request was sent, LastFailed
	// when the latest failed request ended; zero with no failure.
	FirstFailed, LastFailed time.Time
}

// String summarises the counts on one line.
func (r LoadResult) String() string {
	keys := make([]string, 0, len(r.ByBody))
	for k := range r.ByBody {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.ByBody[k]))
	}
	return fmt.Sprintf("requests=%d failed=%d served_by[%s]", r.Requests, r.Failed, strings.Join(parts, " "))
}

// StartLoad begins sending GET requests for baseURL's root path "/" until ctx
// ends, a bound in opts is reached, or Stop is called.
func StartLoad(ctx context.Context, baseURL string, opts LoadOptions) *Load {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	var cancel context.CancelFunc
	if opts.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	r := &Load{
		url:     strings.TrimSuffix(baseURL, "/") + "/",
		opts:    opts,
		cancel:  cancel,
		client:  &http.Client{Transport: opts.Transport, Timeout: 30 * time.Second},
		byEpoch: map[int64]map[string]int64{},
	}
	if r.client.Transport == nil {
		r.client.Transport = &http.Transport{MaxIdleConnsPerHost: opts.Workers, Proxy: nil}
	}
	r.res.ByBody, r.res.FailedBy = map[string]int64{}, map[string]int64{}
	r.start = time.Now()
	for i := range opts.Workers {
		r.wg.Add(1)
		go r.worker(ctx, i)
	}
	return r
}

func (r *Load) worker(ctx context.Context, id int) {
	defer r.wg.Done()
	for n := id; ctx.Err() == nil; n++ {
		if r.opts.Max > 0 && r.sent.Add(1) > r.opts.Max {
			return
		}
		epoch := r.epoch.Load()
		sent := time.Now()
		kind := 0
		if r.opts.Mixed {
			kind = n % 4
		}
		body, err := r.once(ctx, kind)
		if ctx.Err() != nil && err != nil {
			return // the run ended mid-request; not a failure of the server
		}
		r.record(epoch, sent, kinds[kind], body, err)
	}
}

// kinds names the request kinds of once, for LoadResult.FailedBy.
var kinds = [...]string{"GET /", "GET /slow", "POST /upload", "GET /stream"}

// reason names why a request failed, in a few words.
func reason(err error) string {
	msg := err.Error()
	for _, r := range []string{"connection refused", "connection reset", "broken pipe", "EOF", "timeout", "deadline exceeded"} {
		if strings.Contains(msg, r) {
			return r
		}
	}
	if i := strings.Index(msg, "status "); i >= 0 && len(msg) >= i+10 {
		return msg[i : i+10]
	}
	return "other"
}

// once sends one request of kind: 0 GET /, 1 GET /slow, 2 POST /upload, 3 GET /stream.
func (r *Load) once(ctx context.Context, kind int) (string, error) {
	method, path, body := http.MethodGet, "", io.Reader(nil)
	switch kind {
	case 1:
		path = "slow"
	case 2:
		method, path, body = http.MethodPost, "upload", strings.NewReader(upload)
	case 3:
		path = "stream"
	}
	s, err := r.send(ctx, method, r.url+path, body)
	if err != nil && r.opts.Mixed {
		err = fmt.Errorf("%s /%s: %w", method, path, err)
	}
	return s, err
}

func (r *Load) send(ctx context.Context, method, url string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return "", err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func (r *Load) record(epoch int64, sent time.Time, kind, body string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Requests++
	if err != nil {
		r.res.Failed++
		r.res.FailedBy[kind+": "+reason(err)]++
		if r.res.FirstFailed.IsZero() || sent.Before(r.res.FirstFailed) {
			r.res.FirstFailed = sent
		}
		r.res.LastFailed = time.Now()
		if len(r.res.Errors) < 10 {
			r.res.Errors = append(r.res.Errors, err.Error())
		}
		body = "(failed)"
	} else {
		r.res.ByBody[body]++
	}
	m := r.byEpoch[epoch]
	if m == nil {
		m = map[string]int64{}
		r.byEpoch[epoch] = m
	}
	m[body]++
}

// Mark starts a new epoch: requests sent from now on are counted under the
// returned epoch number (the first epoch is 0).
func (r *Load) Mark() int64 { return r.epoch.Add(1) }

// Epoch returns the responses by body of requests sent during epoch e.
func (r *Load) Epoch(e int64) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for k, v := range r.byEpoch[e] {
		out[k] = v
	}
	return out
}

// WaitRequests blocks until at least n requests have completed or ctx ends.
func (r *Load) WaitRequests(ctx context.Context, n int64) error {
	return waitCount(ctx, n, "", func() int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.res.Requests
	})
}

// WaitEpoch blocks until at least n requests sent during epoch e completed
// (answered or failed), or ctx ends.
func (r *Load) WaitEpoch(ctx context.Context, e, n int64) error {
	return waitCount(ctx, n, fmt.Sprintf(" in epoch %d", e), func() int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		var got int64
		for _, c := range r.byEpoch[e] {
			got += c
		}
		return got
	})
}

// waitCount polls count every 5ms until it reaches n or ctx ends; where
// says which requests it counts, for the error.
func waitCount(ctx context.Context, n int64, where string, count func() int64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		got := count()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("load: %d of %d requests%s: %w", got, n, where, ctx.Err())
		case <-t.C:
		}
	}
}

// Stop ends the run, waits for its workers and returns what they saw.
func (r *Load) Stop() LoadResult {
	r.cancel()
	r.wg.Wait()
	r.client.CloseIdleConnections()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res
	res.Duration = time.Since(r.start)
	res.ByBody = map[string]int64{}
	for k, v := range r.res.ByBody {
		res.ByBody[k] = v
	}
	res.FailedBy = map[string]int64{}
	for k, v := range r.res.FailedBy {
		res.FailedBy[k] = v
	}
	return res
}
