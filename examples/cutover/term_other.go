//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "io"

// termWidth returns $COLUMNS, else 80.
func termWidth(io.Writer) int { return columnsEnv() }
