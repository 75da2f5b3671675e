//go:build !unix

package release

import "os"

// Without flock, the file store excludes writers within one process only.
func flock(*os.File) error   { return nil }
func funlock(*os.File) error { return nil }
