package main

import (
	"fmt"
	"io"
	"log"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cutover/deploy/control"

	"github.com/hashicorp/go-hclog"
)

// logTimeLayout starts every line of the daemon's log.
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// logRing keeps the daemon's last log lines for `cutover logs`, copies them
// to w, and passes new ones to followers.
type logRing struct {
	mu    sync.Mutex
	w     io.Writer
	lines []datedLine
	max   int
	subs  followers
}

func newLogRing(max int, w io.Writer) *logRing {
	return &logRing{w: w, max: max, subs: followers{}}
}

func (r *logRing) printf(format string, args ...any) {
	now := time.Now()
	line := now.Format(logTimeLayout) + " " + strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = keep(r.lines, r.max, datedLine{t: now, line: line})
	fmt.Fprintln(r.w, line)
	r.subs.send(line)
}

// subscribe returns the kept lines opts selects and, with opts.Follow, a
// channel of new ones.
func (r *logRing) subscribe(opts control.LogOptions) ([]string, <-chan string, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := selectLines(r.lines, opts)
	if !opts.Follow {
		return kept, nil, func() {}
	}
	ch, unsub := r.subs.add(&r.mu)
	return kept, ch, unsub
}

// datedLine is a kept log line with when it was written (or read).
type datedLine struct {
	t    time.Time
	line string
}

// keep appends l to lines, first dropping the older half of them when they
// reached max.
func keep(lines []datedLine, max int, l datedLine) []datedLine {
	if len(lines) >= max {
		lines = append(lines[:0], lines[len(lines)-max/2:]...)
	}
	return append(lines, l)
}

// selectLines returns the lines opts asks for: written at or after
// opts.Since, the last opts.Lines of them.
func selectLines(lines []datedLine, opts control.LogOptions) []string {
	lines = lines[sort.Search(len(lines), func(i int) bool { return !lines[i].t.Before(opts.Since) }):]
	if opts.Lines > 0 && len(lines) > opts.Lines {
		lines = lines[len(lines)-opts.Lines:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.line
	}
	return out
}

// followers are the channels new lines of a log go to (cutover logs -f),
// guarded by the log's lock.
type followers map[chan string]struct{}

// send passes line to every follower that keeps up; the others lose it.
func (f followers) send(line string) {
	for ch := range f {
		select {
		case ch <- line:
		default:
		}
	}
}

// add makes a follower; unsub, which takes mu, ends it.
func (f followers) add(mu *sync.Mutex) (ch <-chan string, unsub func()) {
	c := make(chan string, 1024)
	f[c] = struct{}{}
	return c, func() {
		mu.Lock()
		delete(f, c)
		mu.Unlock()
	}
}

// logger is a *log.Logger writing into the ring.
func (r *logRing) logger(prefix string) *log.Logger {
	return log.New(ringWriter{r, prefix}, "", 0)
}

type ringWriter struct {
	r      *logRing
	prefix string
}

func (w ringWriter) Write(p []byte) (int, error) {
	w.r.printf("%s%s", w.prefix, p)
	return len(p), nil
}

// hclogger is an hclog logger named name writing into the ring (which times
// each line) at level.
func (r *logRing) hclogger(name string, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: ringWriter{r, ""}, DisableTime: true})
}

// logLevel is the value of --log-level.
type logLevel struct{ level hclog.Level }

// logLevels are the names --log-level takes, the most verbose first.
var logLevels = []string{"trace", "debug", "info", "warn", "error", "off"}

func (l *logLevel) String() string {
	if l == nil || l.level == hclog.NoLevel {
		return "info"
	}
	return l.level.String()
}

func (l *logLevel) Set(s string) error {
	lv := hclog.LevelFromString(s)
	if lv == hclog.NoLevel {
		return fmt.Errorf("want %s", strings.Join(logLevels, ", "))
	}
	l.level = lv
	return nil
}
