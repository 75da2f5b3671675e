package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	deploy "github.com/cutover/deploy"
)

// Client talks to a Server over its Unix socket. It implements deploy.Router
// deploy.WeightReporter and deploy.StatsReporter. It is safe for concurrent use; Close it when done.
type Client struct {
	path string
	hc   *http.Client
	app  string // sent in AppHeader when set (see WithApp)
}

var (
	_ deploy.Router         = (*Client)(nil)
	_ deploy.StatsReporter  = (*Client)(nil)
	_ deploy.WeightReporter = (*Client)(nil)
)

// Dial returns a Client for the server listening on the Unix socket at path.
// It does not connect: the first call does, and fails with an error wrapping
// ErrUnreachable when nothing listens.
func Dial(path string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{path: path, hc: &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	}}}
}

// Path returns the socket's path.
func (c *Client) Path() string { return c.path }

// Close closes idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("control: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://cutover"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.app != "" {
		req.Header.Set(AppHeader, c.app)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("control: %s %s: %w", method, path, ctx.Err())
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.path, op.Err)
		}
		return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	return resp, nil
}

// call sends one request and decodes a JSON answer into out (may be nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var f frame
		if json.Unmarshal(data, &f) == nil && f.Error != nil {
			return f.Error
		}
		return fmt.Errorf("control: %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("control: %s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// Info returns the daemon's description; it is also how to check that one answers.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.call(ctx, http.MethodGet, "/v1/info", nil, &info)
	return info, err
}

// SetTargets replaces the daemon's router targets and returns once removed
// targets drained there.
func (c *Client) SetTargets(ctx context.Context, targets map[string]int) error {
	if targets == nil {
		targets = map[string]int{}
	}
	return c.call(ctx, http.MethodPut, "/v1/targets", map[string]any{"targets": targets}, nil)
}

// TargetsContext returns the daemon's router targets.
func (c *Client) TargetsContext(ctx context.Context) (map[string]int, error) {
	var out struct {
		Targets map[string]int `json:"targets"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/targets", nil, &out); err != nil {
		return nil, err
	}
	if out.Targets == nil {
		out.Targets = map[string]int{}
	}
	return out.Targets, nil
}

// Targets implements deploy.WeightReporter: the daemon's router targets, or
// nil when it cannot be asked within 10s.
func (c *Client) Targets() map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := c.TargetsContext(ctx)
	if err != nil {
		return nil
	}
	return t
}

// Stats returns the router's per-target statistics.
func (c *Client) Stats(ctx context.Context) (map[string]TargetStats, error) {
	var out struct {
		Stats map[string]TargetStats `json:"stats"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/stats", nil, &out)
	return out.Stats, err
}

// RequestStats implements deploy.StatsReporter with the counters of the
// server's router, so that strategy/canary can judge a canary through a
// router in another process. It returns nil maps when the server cannot be
// asked within 10s or its router reports no statistics.
func (c *Client) RequestStats() (requests, errors map[string]uint64, latency map[string]map[time.Duration]uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out requestStats
	if err := c.call(ctx, http.MethodGet, "/v1/requeststats", nil, &out); err != nil || out.Requests == nil {
		return nil, nil, nil
	}
	if out.Errors == nil {
		out.Errors = map[string]uint64{}
	}
	return out.Requests, out.Errors, out.Latency
}

// Status returns the app's machines, targets and running operation.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Releases returns the app's release history, newest first.
func (c *Client) Releases(ctx context.Context) ([]deploy.Release, error) {
	var out struct {
		Releases []deploy.Release `json:"releases"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/releases", nil, &out)
	return out.Releases, err
}

// Promote lets a held bluegreen deploy switch traffic.
func (c *Client) Promote(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/promote", struct{}{}, nil)
}

// Abort stops the running deploy or rollback: a held bluegreen deploy removes
// its new machines, any other rolls back as a cancelled deploy does. It fails
// with ErrNotRunning when none runs.
func (c *Client) Abort(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/abort", struct{}{}, nil)
}

// Deploy asks the daemon for a deploy and calls onEvent (may be nil) for each
// of its events, then returns its result and error. When ctx ends, or with
// args.Detach once the deploy started, it stops watching and returns a
// Result with StatusRunning: the deploy goes on in the daemon.
func (c *Client) Deploy(ctx context.Context, args DeployArgs, onEvent func(Event)) (*Result, error) {
	return c.operate(ctx, "/v1/deploy", args, args.Detach, onEvent)
}

// Rollback asks the daemon to redeploy a stable release, like Deploy.
func (c *Client) Rollback(ctx context.Context, args RollbackArgs, onEvent func(Event)) (*Result, error) {
	return c.operate(ctx, "/v1/rollback", args, false, onEvent)
}

// Scale asks the daemon to run args.Count (or args.Groups) machines of the
// current release, watching it like Deploy.
func (c *Client) Scale(ctx context.Context, args ScaleArgs, onEvent func(Event)) (*Result, error) {
	return c.operate(ctx, "/v1/scale", args, false, onEvent)
}

// Destroy asks the daemon to remove every machine of its app; it returns their IDs.
func (c *Client) Destroy(ctx context.Context) ([]string, error) {
	var out struct {
		Machines []string `json:"machines"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/destroy", struct{}{}, &out)
	return out.Machines, err
}

func (c *Client) operate(ctx context.Context, path string, body any, detach bool, onEvent func(Event)) (*Result, error) {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	running := &Result{Status: StatusRunning, Machines: []string{}}
	err = frames(resp, func(f frame) bool {
		if f.Event != nil {
			if f.Event.Type == deploy.DeployStarted {
				running.App, running.Version, running.Started = f.Event.App, f.Event.Version, f.Event.Time
			}
			if onEvent != nil {
				onEvent(*f.Event)
			}
			return !(detach && f.Event.Type == deploy.DeployStarted)
		}
		return true
	}, func(f frame) {
		running = f.Result
	})
	if errors.Is(err, errStopped) || (err != nil && ctx.Err() != nil) {
		return running, nil
	}
	return running, err
}

var errStopped = errors.New("stopped watching")

// frames reads a streamed answer: each frame goes to each (which returns
// false to stop reading, errStopped), the last one to last; its error is returned.
func frames(resp *http.Response, each func(frame) bool, last func(frame)) error {
	if resp.StatusCode != http.StatusOK {
		var f frame
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&f) == nil && f.Error != nil {
			return f.Error
		}
		return fmt.Errorf("control: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var f frame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return fmt.Errorf("control: bad frame: %w", err)
		}
		if f.Done {
			if last != nil {
				last(f)
			}
			if f.Error != nil {
				return f.Error
			}
			return nil
		}
		if !each(f) {
			return errStopped
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w (%v)", ErrDaemonGone, err)
	}
	return fmt.Errorf("%w (the stream ended early)", ErrDaemonGone)
}

// Logs calls onLine for each log line the daemon keeps (as opts selects)
// and, with opts.Follow, for new lines until ctx ends (then it returns nil).
func (c *Client) Logs(ctx context.Context, opts LogOptions, onLine func(string)) error {
	q := url.Values{"follow": {strconv.FormatBool(opts.Follow)}}
	if opts.Lines > 0 {
		q.Set("lines", strconv.Itoa(opts.Lines))
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.Format(time.RFC3339Nano))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = frames(resp, func(f frame) bool {
		if f.Log != nil {
			onLine(*f.Log)
		}
		return true
	}, nil)
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}
