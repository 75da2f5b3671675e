package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// childBackendEnv, set in the environment of this test binary, makes it serve
// as the backend of TestTargetSIGKILL (see TestMain) instead of running tests:
// a real process, so that the test can kill it with SIGKILL.
const childBackendEnv = "CUTOVER_PROXY_TEST_CHILD_BACKEND"

// Shapes of the child backend's answers.
const (
	streamChunks  = 40 // lines of a /stream response, one every streamGap
	streamGap     = 5 * time.Millisecond
	uploadBytes   = 256 << 10 // an upload's size, sent in uploadChunk pieces
	uploadChunk   = 16 << 10
	uploadGap     = 5 * time.Millisecond // between pieces
	streamTrailer = "end\n"
)

// runChildBackend serves, on a loopback port it prints as its first line of
// output: GET /stream, streamChunks lines then streamTrailer, flushed one by one;
// POST /upload, "name:N" for a body of N bytes; anything else, name. It exits
// when its standard input closes (the test process is gone), or when killed.
func runChildBackend(name string) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			rc := http.NewResponseController(w)
			for i := range streamChunks {
				if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
					return
				}
				_ = rc.Flush()
				time.Sleep(streamGap) // the pace of the stream, not a wait for a condition
			}
			_, _ = io.WriteString(w, streamTrailer)
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%s:%d", name, n)
		default:
			_, _ = io.WriteString(w, name)
		}
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, h))
	return 1
}

// procBackend is a child process serving runChildBackend.
type procBackend struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
}

// startProcBackend starts a child backend and waits (30s at most) for its
// address. It is killed at cleanup if the test did not.
func startProcBackend(t *testing.T, name string) *procBackend {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childBackendEnv+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &procBackend{cmd: cmd, stdin: stdin}
	t.Cleanup(b.kill)
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case b.addr = <-addr:
	case <-time.After(30 * time.Second):
		b.kill() // closes stdout: the reader above returns
		t.Fatalf("backend %s printed no address in 30s", name)
	}
	if _, _, err := net.SplitHostPort(b.addr); err != nil {
		t.Fatalf("backend %s printed %q, not an address", name, b.addr)
	}
	return b
}

// kill sends SIGKILL and returns once the process is gone: the kernel has
// closed its listener and connections, as for a machine that dies abruptly.
func (b *procBackend) kill() {
	b.once.Do(func() {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		_ = b.stdin.Close()
	})
}

// TestTargetSIGKILL measures what an abrupt death costs: under a mixed load
// (short GETs, streamed responses, slow uploads) through the proxy to three
// target processes, one of them is killed with SIGKILL and stays in the target
// set, as when a machine dies before anything notices. The requests in flight
// on it may fail (a stream cut, an upload reset); none other may, and every
// request sent after the kill must succeed (the dead target refuses
// connections, and the proxy retries elsewhere).
func TestTargetSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and runs a load of several seconds")
	}
	a, b, victim := startProcBackend(t, "a"), startProcBackend(t, "b"), startProcBackend(t, "victim")
	p, front, c := newFront(t, Options{})
	setTargets(t, p, map[string]int{a.addr: 1, b.addr: 1, victim.addr: 1})

	type outcome struct {
		kind  string
		after bool // sent after the victim was gone
		err   error
	}
	var (
		killed   atomic.Bool
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	record := func(o outcome) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	// count returns, per kind, the requests completed (after the kill only, or all).
	count := func(afterOnly bool) map[string]int {
		mu.Lock()
		defer mu.Unlock()
		n := map[string]int{}
		for _, o := range outcomes {
			if o.err == nil && (o.after || !afterOnly) {
				n[o.kind]++
			}
		}
		return n
	}
	kinds := map[string]func() error{
		"get":    func() error { return killGet(c, front.URL+"/") },
		"stream": func() error { return killStream(c, front.URL+"/stream") },
		"upload": func() error { return killUpload(c, front.URL+"/upload") },
	}
	const perKind, maxPerWorker = 3, 3000 // workers per kind; a bound on each one's requests
	for kind, send := range kinds {
		for range perKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range maxPerWorker {
					select {
					case <-stop:
						return
					default:
					}
					after := killed.Load()
					record(outcome{kind, after, send()})
				}
			}()
		}
	}
	defer func() { // also on a failed assertion: the workers must end
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// waitFor polls cond (every millisecond, 60s at most).
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("60s passed waiting for %s; completed: %v", what, count(false))
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Kill once every kind flows and the victim is busy.
	waitFor("load on every kind and 3 requests in flight on the victim", func() bool {
		n := count(false)
		return n["get"] >= 20 && n["stream"] >= 3 && n["upload"] >= 3 && p.Stats()[victim.addr].InFlight >= 3
	})
	before := p.Stats()[victim.addr]
	victim.kill()
	killed.Store(true)
	gone := p.Stats()[victim.addr]
	// In flight on the victim when it died: at most those in flight just before
	// the kill, plus those sent to it while it was being killed.
	inflight := before.InFlight + int64(gone.Requests-before.Requests)

	waitFor("30 requests of every kind sent after the kill", func() bool {
		n := count(true)
		return n["get"] >= 30 && n["stream"] >= 30 && n["upload"] >= 30
	})
	close(stop)
	wg.Wait()

	var failed, failedAfter, sentAfter int
	failedBy := map[string]int{}
	var firstAfter error
	for _, o := range outcomes {
		if o.after {
			sentAfter++
		}
		if o.err == nil {
			continue
		}
		failed++
		failedBy[o.kind]++
		if o.after {
			failedAfter++
			if firstAfter == nil {
				firstAfter = fmt.Errorf("%s: %w", o.kind, o.err)
			}
		}
	}
	t.Logf("%d requests (%v completed), %d sent after the kill; %d in flight on the victim at the kill; %d failed %v",
		len(outcomes), count(false), sentAfter, inflight, failed, failedBy)
	if failedAfter > 0 {
		t.Errorf("%d requests sent after the kill failed; first: %v", failedAfter, firstAfter)
	}
	if int64(failed) > inflight {
		t.Errorf("%d requests failed, more than the %d in flight on the victim at the kill", failed, inflight)
	}
	if st := p.Stats()[victim.addr]; st.Errors == 0 {
		t.Errorf("no error recorded on the killed target: %+v", st)
	}
}

// errCut is a response that ended before its last byte.
var errCut = errors.New("response cut short")

func killGet(c *http.Client, url string) error {
	code, body, err := do(c, "GET", url, "", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK || (body != "a" && body != "b" && body != "victim") {
		return fmt.Errorf("GET: %d %q", code, body)
	}
	return nil
}

func killStream(c *http.Client, url string) error {
	code, body, err := do(c, "GET", url, "", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("stream: %d %q", code, body)
	}
	if n := strings.Count(body, "\n"); n != streamChunks+1 || !strings.HasSuffix(body, streamTrailer) {
		return fmt.Errorf("stream: %w: %d lines", errCut, n)
	}
	return nil
}

// slowBody is an upload sent in pieces, with a pause before each.
type slowBody struct{ left int }

func (s *slowBody) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(uploadGap) // the pace of the upload
	n := min(len(p), s.left, uploadChunk)
	clear(p[:n])
	s.left -= n
	return n, nil
}

func killUpload(c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), "POST", url, &slowBody{left: uploadBytes})
	if err != nil {
		return err
	}
	req.ContentLength = uploadBytes
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf(":%d", uploadBytes); res.StatusCode != http.StatusOK || !strings.HasSuffix(string(body), want) {
		return fmt.Errorf("upload: %d %q", res.StatusCode, body)
	}
	return nil
}
