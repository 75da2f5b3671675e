//go:build linux || darwin || freebsd || netbsd || openbsd

package main

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// termWidth returns the columns of the terminal w is, else $COLUMNS, else 80.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		var ws struct{ row, col, x, y uint16 }
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws))); errno == 0 && ws.col > 0 {
			return int(ws.col)
		}
	}
	return columnsEnv()
}
