//go:build unix && !linux

package azurite

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the emulator in its own process group, so that Stop
// can signal it and anything it spawned at once.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, sig)
	}
}
