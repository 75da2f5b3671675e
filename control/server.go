package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	deploy "github.com/cutover/deploy"
)

// maxBody bounds a request body the server reads.
const maxBody = 1 << 20

// Server serves a Router, and optionally an App, on a listener (see Listen).
// Set its fields before Serve; do not change them afterwards.
type Server struct {
	// Router receives SetTargets; required. When it is a deploy.WeightReporter,
	// Targets is served too.
	Router deploy.Router
	// App, when set, serves the app operations; nil answers them with ErrNoApp.
	App App
	// Stats, when set, reports the router's per-target statistics.
	Stats func() map[string]TargetStats
	// Info describes the daemon; it is served as is.
	Info Info
	// Pauser serves pause and resume; nil means the Router when it is a
	// Pauser (such as a *proxy.Proxy); else they are answered not found.
	Pauser Pauser
	// Apps, for a daemon that runs several apps, are their Servers by app
	// name (never Serve them: this Server serves them). A request that names
	// an app (Client.WithApp) goes to its Server; one that names none, to
	// this Server's own Router and App.
	Apps map[string]*Server
	// ErrorLog receives the HTTP server's errors; nil means the log package's logger.
	ErrorLog *log.Logger
	// Handover, when set, lets a new process take over the listening
	// sockets (see TakeOver); nil refuses.
	Handover *Handover

	once   sync.Once
	mu     sync.Mutex
	srv    *http.Server
	ctx    context.Context // the lifetime of operations
	cancel context.CancelCauseFunc
	ops    sync.WaitGroup
	closed bool
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/info", s.info)
		mux.HandleFunc("GET /v1/targets", s.targets)
		mux.HandleFunc("PUT /v1/targets", s.setTargets)
		mux.HandleFunc("GET /v1/stats", s.stats)
		mux.HandleFunc("GET /v1/requeststats", s.requestStats)
		mux.HandleFunc("GET /v1/status", s.status)
		mux.HandleFunc("GET /v1/releases", s.releases)
		mux.HandleFunc("POST /v1/deploy", s.deploy)
		mux.HandleFunc("POST /v1/rollback", s.rollback)
		mux.HandleFunc("POST /v1/promote", s.decide(true))
		mux.HandleFunc("POST /v1/abort", s.decide(false))
		mux.HandleFunc("GET /v1/logs", s.logs)
		mux.HandleFunc("POST /v1/handover", s.handover)
		mux.HandleFunc("POST /v1/scale", s.scale)
		mux.HandleFunc("POST /v1/destroy", s.destroy)
		mux.HandleFunc("POST /v1/pause", s.pause)
		mux.HandleFunc("POST /v1/resume", s.resume)
		s.srv = &http.Server{Handler: s.route(mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.ErrorLog}
	})
}

// Listen listens on a Unix socket at path with mode 0600 (put it in a
// directory only its owner can enter, so that no one connects between the
// listen and the chmod). A socket file left by a process that died is
// replaced; one a live server answers on is an error.
func Listen(path string) (net.Listener, error) {
	if len(path) > 100 { // sun_path is 104 or 108 bytes
		return nil, fmt.Errorf("control: socket path %q is too long for a Unix socket (%d bytes; at most 100): use a shorter directory", path, len(path))
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return ln, nil
}

// Serve serves requests on ln until Shutdown or Close; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if s.Router == nil {
		return errors.New("control: Server.Router is nil")
	}
	s.init()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return nil
	}
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests, cancels the running operations (a
// deploy then rolls back as a cancelled deploy does), waits for them and for
// the requests in flight, or until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(ErrStopping)
	err := s.srv.Shutdown(ctx)
	err = errors.Join(err, s.forApps(func(a *Server) error { return a.Shutdown(ctx) }))
	done := make(chan struct{})
	go func() { s.ops.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("control: operations still running: %w", ctx.Err()))
	}
	return err
}

// Close closes the listener and every connection at once, cancels the
// running operations and waits for them.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(ErrStopping)
	err := s.srv.Close()
	err = errors.Join(err, s.forApps(func(a *Server) error { return a.Close() }))
	s.ops.Wait()
	return err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	e := toError(err)
	code := http.StatusInternalServerError
	switch e.Kind {
	case "invalid":
		code = http.StatusBadRequest
	case "not_found":
		code = http.StatusNotFound
	case "in_progress", "not_held", "not_running":
		code = http.StatusConflict
	case "no_app", "no_handover":
		code = http.StatusNotImplemented
	}
	writeJSON(w, code, frame{Error: e})
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("control: %w: bad request body: %v", deploy.ErrInvalid, err)
	}
	return nil
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Info)
}

func (s *Server) currentTargets() map[string]int {
	if wr, ok := s.Router.(deploy.WeightReporter); ok {
		return wr.Targets()
	}
	return nil
}

func (s *Server) targets(w http.ResponseWriter, _ *http.Request) {
	wr, ok := s.Router.(deploy.WeightReporter)
	if !ok {
		writeErr(w, errorf("not_found", "control: the router cannot report its targets"))
		return
	}
	t := wr.Targets()
	if t == nil {
		t = map[string]int{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"targets": t})
}

func (s *Server) setTargets(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Targets map[string]int `json:"targets"`
	}
	if err := readJSON(r, &body); err != nil {
		writeErr(w, err)
		return
	}
	if body.Targets == nil {
		body.Targets = map[string]int{}
	}
	if err := s.Router.SetTargets(r.Context(), body.Targets); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"targets": body.Targets})
}

func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	if s.Stats == nil {
		writeErr(w, errorf("not_found", "control: the router reports no statistics"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stats": s.Stats()})
}

// requestStats serves the counters of the router's deploy.StatsReporter
// (found through the routers it wraps), which Client.RequestStats reads.
func (s *Server) requestStats(w http.ResponseWriter, _ *http.Request) {
	sr, ok := deploy.StatsReporterOf(s.Router)
	if !ok {
		writeErr(w, errorf("not_found", "control: the router reports no request statistics"))
		return
	}
	var out requestStats
	out.Requests, out.Errors, out.Latency = sr.RequestStats()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var st Status
	if s.App != nil {
		var err error
		if st, err = s.App.Status(r.Context()); err != nil {
			writeErr(w, err)
			return
		}
	}
	if st.Info == (Info{}) {
		st.Info = s.Info
	}
	if st.Targets == nil {
		st.Targets = s.currentTargets()
	}
	if st.Stats == nil && s.Stats != nil {
		st.Stats = s.Stats()
	}
	for i, m := range st.Machines {
		if ts, ok := st.Stats[m.Addr]; ok && m.Stats == nil {
			st.Machines[i].Stats = &ts
		}
	}
	if st.Machines == nil {
		st.Machines = []Machine{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) app(w http.ResponseWriter) bool {
	if s.App == nil {
		writeErr(w, fmt.Errorf("%w: start it with an App to deploy through it", ErrNoApp))
		return false
	}
	return true
}

func (s *Server) releases(w http.ResponseWriter, r *http.Request) {
	if !s.app(w) {
		return
	}
	rels, err := s.App.Releases(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if rels == nil {
		rels = []deploy.Release{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"releases": rels})
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	if !s.app(w) {
		return
	}
	var args DeployArgs
	if err := readJSON(r, &args); err != nil {
		writeErr(w, err)
		return
	}
	s.operate(w, r, func(ctx context.Context, emit func(deploy.Event)) (*deploy.Result, error) {
		return s.App.Deploy(ctx, args, emit)
	})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	if !s.app(w) {
		return
	}
	var args RollbackArgs
	if err := readJSON(r, &args); err != nil {
		writeErr(w, err)
		return
	}
	s.operate(w, r, func(ctx context.Context, emit func(deploy.Event)) (*deploy.Result, error) {
		return s.App.Rollback(ctx, args, emit)
	})
}

func (s *Server) decide(promote bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.app(w) {
			return
		}
		var err error
		if promote {
			err = s.App.Promote(r.Context())
		} else {
			err = s.App.Abort(r.Context())
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, frame{Done: true})
	}
}

// op is one running operation: the frames it produced that its one reader,
// stream, has not taken yet.
type op struct {
	mu     sync.Mutex
	frames []frame
	done   bool
	more   chan struct{} // closed and replaced when frames are added
}

func (o *op) add(f frame) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.frames = append(o.frames, f)
	o.done = o.done || f.Done
	close(o.more)
	o.more = make(chan struct{})
}

// take returns the frames added since the last take, whether the last frame
// is among them, and a channel closed when more are added.
func (o *op) take() ([]frame, bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fs := o.frames
	o.frames = nil
	return fs, o.done, o.more
}

// operate runs fn under the server's lifetime and streams its events and
// result to the client while it watches.
func (s *Server) operate(w http.ResponseWriter, r *http.Request, fn func(context.Context, func(deploy.Event)) (*deploy.Result, error)) {
	o := &op{more: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeErr(w, errorf("canceled", "control: the daemon is shutting down"))
		return
	}
	s.ops.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.ops.Done()
		res, err := fn(s.ctx, func(e deploy.Event) {
			ev := FromEvent(e)
			o.add(frame{Event: &ev})
		})
		o.add(frame{Result: FromResult(res), Error: toError(err), Done: true})
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	stream(w, r.Context(), o)
}

func stream(w http.ResponseWriter, ctx context.Context, o *op) {
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for {
		frames, done, more := o.take()
		for _, f := range frames {
			if err := enc.Encode(f); err != nil {
				return // the client went away; the operation goes on
			}
		}
		if fl != nil {
			fl.Flush()
		}
		if done {
			return
		}
		select {
		case <-more:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if !s.app(w) {
		return
	}
	q := r.URL.Query()
	var opts LogOptions
	opts.Follow, _ = strconv.ParseBool(q.Get("follow"))
	opts.Lines, _ = strconv.Atoi(q.Get("lines"))
	if since := q.Get("since"); since != "" {
		opts.Since, _ = time.Parse(time.RFC3339Nano, since)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // a shutdown ends a follow
	defer stop()
	o := &op{more: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := s.App.Logs(ctx, opts, func(line string) { o.add(frame{Log: &line}) })
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		o.add(frame{Error: toError(err), Done: true})
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	// Until the client goes away: a shutdown ends Logs, whose last frame then
	// tells the client the stream ended, not broke.
	stream(w, r.Context(), o)
	cancel()
	<-done
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.App.(Scaler)
	if !ok {
		writeErr(w, fmt.Errorf("%w: this daemon does not scale", ErrNoApp))
		return
	}
	var args ScaleArgs
	if err := readJSON(r, &args); err != nil {
		writeErr(w, err)
		return
	}
	s.operate(w, r, func(ctx context.Context, emit func(deploy.Event)) (*deploy.Result, error) {
		return sc.Scale(ctx, args, emit)
	})
}

func (s *Server) destroy(w http.ResponseWriter, r *http.Request) {
	de, ok := s.App.(Destroyer)
	if !ok {
		writeErr(w, fmt.Errorf("%w: this daemon does not destroy", ErrNoApp))
		return
	}
	ids, err := de.Destroy(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"machines": ids})
}
