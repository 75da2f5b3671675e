package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/control"
)

// machineLogKeep is how many lines of each machine's output the daemon keeps.
const machineLogKeep = 2000

// machineLogs keeps the output of an app's machines that keep it (Docker
// containers, mem workers), line by line with when the daemon read it, so
// that `cutover logs` selects them by count (-n) and time (--since) as it
// does the daemon's own lines, with -f or without. Lines a machine wrote
// before the daemon first saw it are dated then: the daemon's start for the
// machines it adopted, else within a scan of the machine's start.
type machineLogs struct {
	backend deploy.Backend
	app     string
	started time.Time // the daemon's start

	mu       sync.Mutex
	byID     map[string]*machineLog
	subs     followers
	ctx      context.Context // run's, once it runs
	closed   bool            // run ended: no follower starts
	adopting bool            // the first scan: machines found run since before the daemon
	wg       sync.WaitGroup  // the followers
	scanning sync.Mutex      // one scan at a time
	poke     chan struct{}
}

// machineLog is one machine's kept output.
type machineLog struct {
	prefix string      // "[ID VERSION] "
	lines  []datedLine // with their prefix
	cancel context.CancelFunc
}

func newMachineLogs(b deploy.Backend, app string) *machineLogs {
	return &machineLogs{backend: b, app: app, started: time.Now(), byID: map[string]*machineLog{},
		subs: followers{}, poke: make(chan struct{}, 1), adopting: true}
}

// run follows the output of the app's machines until ctx ends: it looks for
// new machines every second and when poked (a machine started).
func (l *machineLogs) run(ctx context.Context) {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.wg.Wait()
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		l.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.poke:
		}
	}
}

// started tells run that a machine started: look for it now.
func (l *machineLogs) machineStarted() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// scan starts following the machines not followed yet (their output so far
// is read before scan returns) and forgets the machines gone.
func (l *machineLogs) scan(ctx context.Context) {
	l.mu.Lock()
	runCtx := l.ctx
	l.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil {
		return // not running: nothing is followed
	}
	l.scanning.Lock()
	defer l.scanning.Unlock()
	ms, err := l.backend.List(ctx, l.app)
	if err != nil {
		return
	}
	listed := map[string]bool{}
	for _, m := range ms {
		listed[m.ID()] = true
		l.mu.Lock()
		_, known := l.byID[m.ID()]
		l.mu.Unlock()
		lr, ok := m.(deploy.LogReader)
		if known || !ok {
			continue
		}
		l.follow(runCtx, m, lr)
	}
	l.mu.Lock()
	for id, ml := range l.byID {
		if !listed[id] {
			ml.cancel()
			delete(l.byID, id)
		}
	}
	l.adopting = false
	l.mu.Unlock()
}

// follow reads m's output so far, then follows it in the background.
func (l *machineLogs) follow(ctx context.Context, m deploy.Machine, lr deploy.LogReader) {
	ctx, cancel := context.WithCancel(ctx)
	ml := &machineLog{prefix: fmt.Sprintf("[%s %s] ", m.ID(), m.Spec().Version), cancel: cancel}
	l.mu.Lock()
	l.byID[m.ID()] = ml
	dated := time.Now()
	if l.adopting { // found at the daemon's start: written before it
		dated = l.started
	}
	l.mu.Unlock()
	var skip int64 // bytes of the output read so far, which the follow stream replays
	if rc, err := lr.Logs(ctx, false); err == nil {
		n, _ := l.copy(ml, rc, func() time.Time { return dated })
		rc.Close()
		skip = n
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		rc, err := lr.Logs(ctx, true)
		if err != nil {
			return
		}
		defer rc.Close()
		if _, err := io.CopyN(io.Discard, rc, skip); err != nil {
			return
		}
		_, _ = l.copy(ml, rc, time.Now)
	}()
}

// copy adds the lines of r to ml, dated by at, and passes them to the
// followers; it returns the bytes read.
func (l *machineLogs) copy(ml *machineLog, r io.Reader, at func() time.Time) (int64, error) {
	cr := &countingReader{r: r}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := ml.prefix + sc.Text()
		l.mu.Lock()
		ml.lines = keep(ml.lines, machineLogKeep, datedLine{t: at(), line: line})
		l.subs.send(line)
		l.mu.Unlock()
	}
	return cr.n, sc.Err()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// subscribe looks for new machines, then returns the kept lines opts
// selects (per machine: written at or after opts.Since, the last opts.Lines
// of them), by machine ID, and with follow a channel of new lines.
func (l *machineLogs) subscribe(ctx context.Context, opts control.LogOptions) ([]string, <-chan string, func()) {
	l.scan(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.byID))
	for id := range l.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []string
	for _, id := range ids {
		out = append(out, selectLines(l.byID[id].lines, opts)...)
	}
	if !opts.Follow {
		return out, nil, func() {}
	}
	ch, unsub := l.subs.add(&l.mu)
	return out, ch, unsub
}
