//go:build !unix

package release

import (
	"os"
	"sync"
)

// Without flock, one mutex stands in for it: the file store excludes writers
// (and deploy lock holders) within one process only.
var processLock sync.Mutex

func flock(*os.File) error   { processLock.Lock(); return nil }
func funlock(*os.File) error { processLock.Unlock(); return nil }
