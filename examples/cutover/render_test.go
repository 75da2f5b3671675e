package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cutover/deploy"
	"github.com/cutover/deploy/control"
)

// screen is a small terminal: it wraps at its width, as terminals do, and
// knows the sequences the renderer writes (cursor up, erase line, colours).
type screen struct {
	width    int
	rows     [][]rune
	row, col int
}

var csi = regexp.MustCompile(`^\x1b\[(\d*)([A-Za-z])`)

func (s *screen) Write(p []byte) (int, error) {
	in := string(p)
	for len(in) > 0 {
		if m := csi.FindStringSubmatch(in); m != nil {
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "A":
				s.row = max(s.row-n, 0)
			case "K":
				s.line()
				s.rows[s.row] = nil
			}
			in = in[len(m[0]):]
			continue
		}
		r, size := utf8.DecodeRuneInString(in)
		in = in[size:]
		switch r {
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\r':
			s.col = 0
		default:
			if s.col == s.width { // auto-wrap
				s.row, s.col = s.row+1, 0
			}
			s.line()
			for len(s.rows[s.row]) <= s.col {
				s.rows[s.row] = append(s.rows[s.row], ' ')
			}
			s.rows[s.row][s.col] = r
			s.col++
		}
	}
	return len(p), nil
}

func (s *screen) line() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

func (s *screen) lines() []string {
	var out []string
	for _, r := range s.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// A failing bluegreen deploy of three machines, then a rollback, with long
// errors: at every width the screen holds each line once, within the width,
// machine lines in order, the outcome after them and the summary last.
func TestTTYRendererWidths(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	long := "health: unhealthy: context deadline exceeded (last check: GET http://127.0.0.1:43123/health: 503 Service Unavailable, body \"unhealthy\")"
	events := []control.Event{
		{Type: deploy.DeployStarted, Time: at(0), App: "demo-web", Version: "v5", Message: "strategy=bluegreen machines=3 from=\"v4\""},
	}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("m%04d", i)
		events = append(events,
			control.Event{Type: deploy.MachineCreated, Time: at(0.1), Machine: id, Version: "v5"},
			control.Event{Type: deploy.MachineStarted, Time: at(0.2), Machine: id, Version: "v5"})
	}
	events = append(events,
		control.Event{Type: deploy.MachineUnhealthy, Time: at(61), Machine: "m0002", Version: "v5", Error: "unhealthy: " + long},
		control.Event{Type: deploy.DeployFailed, Time: at(61), Version: "v5", Error: "machine m0002: " + long},
		control.Event{Type: deploy.MachineDestroyed, Time: at(62), Machine: "m0001", Version: "v5"},
		control.Event{Type: deploy.MachineDestroyed, Time: at(62), Machine: "m0002", Version: "v5"},
		control.Event{Type: deploy.MachineDestroyed, Time: at(62.5), Machine: "m0003", Version: "v5"},
		control.Event{Type: deploy.DeployRolledBack, Time: at(63), Version: "v4", Message: "previous version restored"},
	)
	for _, width := range []int{40, 80, 200} {
		t.Run(strconv.Itoa(width), func(t *testing.T) {
			scr := &screen{width: width}
			r := newTTYRenderer(scr, width, true)
			for _, e := range events {
				r.event(e)
			}
			r.done(&control.Result{App: "demo-web", Version: "v4", Strategy: "bluegreen", DurationMS: 63000, Machines: []string{"m0009"}})
			got := scr.lines()
			for _, l := range got {
				assert.LessOrEqual(t, utf8.RuneCountInString(l), width-1, "fits: %q", l)
			}
			require.Len(t, got, 1+3+2+1, "%s", strings.Join(got, "\n"))
			assert.True(t, strings.HasPrefix(got[0], "==> deploying demo-web v5"), got[0])
			for i := 1; i <= 3; i++ {
				assert.Regexp(t, fmt.Sprintf(`^  ↓ m000%d \[v5\] +\d`, i), got[i])
			}
			assert.Contains(t, got[1], "1m01s", "elapsed per machine")
			assert.Contains(t, got[3], "1m02s")
			assert.True(t, strings.HasPrefix(got[4], "==> deploy of v5 failed"), got[4])
			assert.True(t, strings.HasPrefix(got[5], "==> rolled back"), got[5])
			assert.True(t, strings.HasPrefix(got[6], "✔ demo-web v4"), "the summary is last: %q", got[6])
			if width == 200 {
				assert.Contains(t, got[4], "last check")
			}
		})
	}
}

func TestTTYRendererColour(t *testing.T) {
	var plain, colour bytes.Buffer
	e := control.Event{Type: deploy.MachineHealthy, Time: time.Now(), Machine: "m0001", Version: "v1"}
	newTTYRenderer(&plain, 80, false).event(e)
	newTTYRenderer(&colour, 80, true).event(e)
	assert.NotContains(t, plain.String(), "\x1b[32m")
	assert.Contains(t, colour.String(), "\x1b[32m")
}

func TestUnhealthyNotDoubled(t *testing.T) {
	p := phrase(control.Event{Type: deploy.MachineUnhealthy, Error: "unhealthy: status 503"})
	assert.Equal(t, "unhealthy: status 503", p)
}
