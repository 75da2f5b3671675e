package control

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// AppHeader names the request header that picks one of a daemon's apps (see
// Server.Apps and Client.WithApp).
const AppHeader = "X-Cutover-App"

// Pauser holds and releases an app's traffic; *proxy.Proxy implements it.
type Pauser interface {
	// Pause holds new requests (each at most timeout, then 503) and returns
	// once the requests in flight have completed, or with ctx's error.
	Pause(ctx context.Context, timeout time.Duration) error
	// Resume releases the held requests.
	Resume()
}

// PauseArgs is one pause asked of a daemon.
type PauseArgs struct {
	// Timeout bounds how long each request is held; zero means the
	// Pauser's default, negative answers 503 at once.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// pauser returns the server's Pauser: Server.Pauser, else the Router when
// it is one.
func (s *Server) pauser() Pauser {
	if s.Pauser != nil {
		return s.Pauser
	}
	p, _ := s.Router.(Pauser)
	return p
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	p := s.pauser()
	if p == nil {
		writeErr(w, errorf("not_found", "control: this daemon cannot pause its traffic"))
		return
	}
	var args PauseArgs
	if err := readJSON(r, &args); err != nil {
		writeErr(w, err)
		return
	}
	if err := p.Pause(r.Context(), args.Timeout); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, frame{Done: true})
}

func (s *Server) resume(w http.ResponseWriter, _ *http.Request) {
	p := s.pauser()
	if p == nil {
		writeErr(w, errorf("not_found", "control: this daemon cannot pause its traffic"))
		return
	}
	p.Resume()
	writeJSON(w, http.StatusOK, frame{Done: true})
}

// route sends a request naming an app (AppHeader) to that app's Server in
// Apps; a request naming none, or the server's own Info.App, is served by s.
func (s *Server) route(own http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(AppHeader)
		if name == "" || name == s.Info.App {
			own.ServeHTTP(w, r)
			return
		}
		sub, ok := s.Apps[name]
		if !ok {
			names := make([]string, 0, len(s.Apps)+1)
			if s.Info.App != "" {
				names = append(names, s.Info.App)
			}
			for n := range s.Apps {
				names = append(names, n)
			}
			slices.Sort(names)
			writeErr(w, errorf("not_found", "control: this daemon runs no app %q (it runs: %s)", name, strings.Join(names, ", ")))
			return
		}
		sub.init()
		r.Header.Del(AppHeader)
		sub.srv.Handler.ServeHTTP(w, r)
	})
}

// forApps runs fn on each Server of Apps.
func (s *Server) forApps(fn func(*Server) error) error {
	var errs []error
	for name, sub := range s.Apps {
		sub.init()
		if err := fn(sub); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("control: %v", errs)
	}
	return nil
}

// WithApp returns a Client for the same daemon whose requests go to its app
// named app (see Server.Apps); "" means the daemon's default app. The two
// Clients share their connections.
func (c *Client) WithApp(app string) *Client {
	cc := *c
	cc.app = app
	return &cc
}

// Pause holds the app's new requests (each at most timeout, then 503; zero
// means the daemon's default) and returns once its requests in flight have
// completed.
func (c *Client) Pause(ctx context.Context, timeout time.Duration) error {
	return c.call(ctx, http.MethodPost, "/v1/pause", PauseArgs{Timeout: timeout}, nil)
}

// Resume releases the app's held requests.
func (c *Client) Resume(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/resume", struct{}{}, nil)
}
