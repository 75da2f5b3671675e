//go:build !unix

package main

import (
	"errors"
	"os"
)

// upgradeSignals: none on this platform.
var upgradeSignals []os.Signal

func startUpgrade([]string) error { return errors.New("not available on this platform") }
