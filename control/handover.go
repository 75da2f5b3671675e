package control

import (
	"errors"
	"os"
)

// ErrNoHandover is wrapped by TakeOver's error when the daemon does not hand
// over its sockets (it was started without a Handover, or the platform cannot).
var ErrNoHandover = errors.New("control: the daemon does not hand over its sockets")

// Handover lets a new daemon process take over a running one's listening
// sockets without closing them, as nginx's binary upgrade and Envoy's hot
// restart do: no connection is refused across the restart. The new process
// calls TakeOver; the Server sends it the sockets (SCM_RIGHTS over the control
// socket), then the new process starts serving and says it is ready; the old
// one then stops accepting, drains its requests in flight and exits.
type Handover struct {
	// Files returns duplicates of the listening sockets to hand over, by name,
	// or an error that says why not now (such as a deploy that runs).
	Files func() (map[string]*os.File, error)
	// Done is called once with the outcome: ready is true when the new process
	// serves, false when it gave up or went away before.
	Done func(ready bool)
}
