//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// upgradeSignals make a daemon start its own binary as `serve --upgrade`.
var upgradeSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR2}

// startUpgrade starts this binary as `serve --upgrade` with args, in its own
// process group, writing where this daemon writes.
func startUpgrade(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"serve", "--upgrade"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
