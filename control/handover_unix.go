//go:build unix

package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// handoverHeader is the JSON that comes with the sockets: their names in
// the order of the descriptors, or why the handover is refused.
type handoverHeader struct {
	Names []string `json:"names,omitempty"`
	Error string   `json:"error,omitempty"`
	PID   int      `json:"pid,omitempty"`
}

// handover serves POST /v1/handover: it takes the connection over, sends the
// sockets and waits for the new process's "ready".
func (s *Server) handover(w http.ResponseWriter, r *http.Request) {
	if s.Handover == nil {
		writeErr(w, fmt.Errorf("%w: start it with a Handover", ErrNoHandover))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeErr(w, fmt.Errorf("%w: the connection cannot be taken over", ErrNoHandover))
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return
	}
	hdr := handoverHeader{PID: os.Getpid()}
	files, err := s.Handover.Files()
	var fds []int
	if err != nil {
		hdr.Error = err.Error()
	} else {
		for name, f := range files {
			defer f.Close()
			fd, err := rawFD(f)
			if err != nil {
				hdr.Error = fmt.Sprintf("%s socket: %v", name, err)
				break
			}
			hdr.Names = append(hdr.Names, name)
			fds = append(fds, fd)
		}
		if hdr.Error != "" {
			hdr.Names, fds = nil, nil
		}
	}
	msg, _ := json.Marshal(hdr)
	if _, _, err := uc.WriteMsgUnix(append(msg, '\n'), syscall.UnixRights(fds...), nil); err != nil || hdr.Error != "" {
		return
	}
	// The new process serves once it writes "ready"; no answer means it gave up.
	ready := false
	defer func() { s.Handover.Done(ready) }()
	_ = uc.SetReadDeadline(time.Now().Add(10 * time.Minute))
	line, err := brw.ReadString('\n')
	if err == nil && strings.TrimSpace(line) == "ready" {
		ready = true
		_, _ = io.WriteString(uc, "ok\n")
	}
}

// Takeover is a handover in progress, from TakeOver: the sockets a running
// daemon handed over. Serve on them, then call Ready (or Abandon).
type Takeover struct {
	// Files are the handed-over listening sockets, by the names the old
	// daemon gave them; make listeners of them with net.FileListener.
	Files map[string]*os.File
	// PID is the old daemon's process ID.
	PID  int
	conn *net.UnixConn
}

// TakeOver asks the daemon on the control socket at path for its listening
// sockets. The daemon keeps serving until Ready.
func TakeOver(ctx context.Context, path string) (*Takeover, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, path, err)
	}
	uc := c.(*net.UnixConn)
	fail := func(err error) (*Takeover, error) {
		uc.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = uc.SetDeadline(dl)
	}
	if _, err := io.WriteString(uc, "POST /v1/handover HTTP/1.1\r\nHost: cutover\r\nContent-Length: 0\r\n\r\n"); err != nil {
		return fail(fmt.Errorf("control: handover: %w", err))
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(16*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return fail(fmt.Errorf("control: handover: %w", err))
	}
	var files []*os.File
	if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			fds, err := syscall.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "handover"))
			}
		}
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	data := buf[:n]
	if strings.HasPrefix(string(data), "HTTP/") { // an ordinary answer: an error
		closeAll()
		rd := bufio.NewReader(io.MultiReader(strings.NewReader(string(data)), uc))
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			return fail(fmt.Errorf("control: handover: %w", err))
		}
		defer resp.Body.Close()
		var f frame
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&f) == nil && f.Error != nil {
			return fail(f.Error)
		}
		return fail(fmt.Errorf("%w: %s", ErrNoHandover, resp.Status))
	}
	var hdr handoverHeader
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(data))), &hdr); err != nil {
		closeAll()
		return fail(fmt.Errorf("control: handover: bad answer: %w", err))
	}
	if hdr.Error != "" {
		closeAll()
		return fail(errors.New(hdr.Error))
	}
	if len(files) != len(hdr.Names) {
		closeAll()
		return fail(fmt.Errorf("control: handover: %d sockets for %d names", len(files), len(hdr.Names)))
	}
	_ = uc.SetDeadline(time.Time{})
	t := &Takeover{Files: map[string]*os.File{}, PID: hdr.PID, conn: uc}
	for i, name := range hdr.Names {
		t.Files[name] = files[i]
	}
	return t, nil
}

// Ready tells the old daemon that this process serves: it stops accepting,
// drains its requests in flight and exits.
func (t *Takeover) Ready() error {
	defer t.conn.Close()
	_ = t.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(t.conn, "ready\n"); err != nil {
		return fmt.Errorf("control: handover: %w", err)
	}
	line, err := bufio.NewReader(t.conn).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("control: handover: the old daemon did not confirm: %v", err)
	}
	return nil
}

// Abandon tells the old daemon that this process gave up: it goes on serving.
func (t *Takeover) Abandon() {
	t.conn.Close()
}

// rawFD returns f's descriptor without f.Fd(), which would put it in
// blocking mode: a listener's file shares its open file description with
// the listener, and a blocking accept cannot be woken by Close, so the old
// daemon's listeners would hang its shutdown after the handover.
func rawFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil // valid while f is open: it is closed after the message is sent
}
