package azurite

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the emulator in its own process group, so that Stop
// can signal it and anything it spawned at once, and asks the kernel to kill
// it if the process that started it dies without calling Stop (a test binary
// killed by a timeout, say).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, sig)
	}
}
