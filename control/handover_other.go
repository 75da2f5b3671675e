//go:build !unix

package control

import (
	"context"
	"fmt"
	"net/http"
	"os"
)

func (s *Server) handover(w http.ResponseWriter, _ *http.Request) {
	writeErr(w, fmt.Errorf("%w on this platform", ErrNoHandover))
}

// Takeover is a handover in progress; not available on this platform.
type Takeover struct {
	Files map[string]*os.File
	PID   int
}

// TakeOver is not available on this platform.
func TakeOver(context.Context, string) (*Takeover, error) {
	return nil, fmt.Errorf("%w on this platform", ErrNoHandover)
}

// Ready is not available on this platform.
func (t *Takeover) Ready() error { return ErrNoHandover }

// Abandon does nothing on this platform.
func (t *Takeover) Abandon() {}
