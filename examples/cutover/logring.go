package main

import (
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logTimeLayout starts every line of the daemon's log.
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// logRing keeps the daemon's last log lines for `cutover logs`, copies them
// to w, and passes new ones to followers.
type logRing struct {
	mu    sync.Mutex
	w     io.Writer
	lines []string
	max   int
	subs  map[chan string]struct{}
}

func newLogRing(max int, w io.Writer) *logRing {
	return &logRing{w: w, max: max, subs: map[chan string]struct{}{}}
}

func (r *logRing) printf(format string, args ...any) {
	line := time.Now().Format(logTimeLayout) + " " + strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) >= r.max {
		r.lines = append(r.lines[:0], r.lines[len(r.lines)-r.max/2:]...)
	}
	r.lines = append(r.lines, line)
	fmt.Fprintln(r.w, line)
	for ch := range r.subs {
		select {
		case ch <- line:
		default: // a follower that does not keep up loses lines
		}
	}
}

// subscribe returns the kept lines and, with follow, a channel of new ones.
func (r *logRing) subscribe(follow bool) ([]string, <-chan string, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := append([]string(nil), r.lines...)
	if !follow {
		return kept, nil, func() {}
	}
	ch := make(chan string, 1024)
	r.subs[ch] = struct{}{}
	return kept, ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

// logger is a *log.Logger writing into the ring.
func (r *logRing) logger(prefix string) *log.Logger {
	return log.New(ringWriter{r, prefix}, "", 0)
}

// hclogger is an hclog.Logger named name writing into the ring, from Info
// up (the ring stamps the time).
func (r *logRing) hclogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: ringWriter{r, ""}, Level: hclog.Info, DisableTime: true})
}

type ringWriter struct {
	r      *logRing
	prefix string
}

func (w ringWriter) Write(p []byte) (int, error) {
	w.r.printf("%s%s", w.prefix, p)
	return len(p), nil
}
