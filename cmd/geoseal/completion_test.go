//go:build linux

package main

// The completion scripts, run by the shells they are for: bash calls the
// completion function as readline would, fish answers `complete -C`, and
// zsh, which completes only interactively, is driven through a pty.

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geoseal/geoseal/internal/testenv"
)

// completionCases are command lines (the last word being completed) and
// a candidate each must offer.
var completionCases = []struct{ line, want string }{
	{"geoseal reg", "region"},
	{"geoseal rewrap-", "rewrap-all"},
	{"geoseal put --key-f", "--key-file"},
	{"geoseal put --no-over", "--no-overwrite"},
	{"geoseal get --try-t", "--try-timeout"},
	{"geoseal region ", "check"},
	{"geoseal region check --keyvault-r", "--keyvault-region"},
	{"geoseal region list --ov", "--override"},
	{"geoseal completion ", "fish"},
	{"geoseal help rewr", "rewrap"},
	{"geoseal version --j", "--json"},
}

// shell returns the path of a shell, or reports it missing.
func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name, err, "apt-get install "+name+" (make deps installs it)")
	}
	return p
}

func completionScript(t *testing.T, sh string) string {
	t.Helper()
	r := geoseal(t, nil, nil, "completion", sh).want(t, 0)
	return writeFile(t, filepath.Join(t.TempDir(), "geoseal."+sh), []byte(r.stdout))
}

func TestCompletionBash(t *testing.T) {
	bash := shell(t, "bash")
	script := completionScript(t, "bash")
	for _, tc := range completionCases {
		// As readline calls it: the words so far, the one being completed
		// last (empty after a space).
		cmd := exec.Command(bash, "--norc", "-c", `source "$0"; read -ra COMP_WORDS <<< "$1"; [[ $1 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _geoseal; printf '%s\n' "${COMPREPLY[@]}"`, script, tc.line)
		out, err := cmd.CombinedOutput()
		if err != nil || !containsLine(string(out), tc.want) {
			t.Errorf("bash: %q offers %q (%v), want %q", tc.line, out, err, tc.want)
		}
	}
	// A flag's value completes as a file name.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "drawing.step"), nil)
	out, err := exec.Command(bash, "--norc", "-c", `source "$0"; COMP_WORDS=(geoseal put --in "$1/draw"); COMP_CWORD=3; _geoseal; printf '%s\n' "${COMPREPLY[@]}"`, script, dir).CombinedOutput()
	if err != nil || !containsLine(string(out), filepath.Join(dir, "drawing.step")) {
		t.Errorf("bash: --in offers %q (%v)", out, err)
	}
}

func TestCompletionFish(t *testing.T) {
	fish := shell(t, "fish")
	script := completionScript(t, "fish")
	for _, tc := range completionCases {
		out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, tc.line).CombinedOutput()
		var names []string
		for _, l := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(l, "\t")
			names = append(names, name)
		}
		if err != nil || !containsLine(strings.Join(names, "\n"), tc.want) {
			t.Errorf("fish: %q offers %q (%v), want %q", tc.line, out, err, tc.want)
		}
	}
}

// TestCompletionZsh types each line and a TAB into an interactive zsh on a
// pty, then reads what zsh drew: the completed word, or the list of
// candidates.
func TestCompletionZsh(t *testing.T) {
	zsh := shell(t, "zsh")
	script := completionScript(t, "zsh")
	master, slave := openPTY(t)
	cmd := exec.Command(zsh, "-f", "-i")
	cmd.Env = append(userEnv(), "TERM=dumb", "PS1=%% ")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	screen := make(chan []byte, 100)
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := master.Read(b)
			if n > 0 {
				screen <- b[:n]
			}
			if err != nil {
				close(screen)
				return
			}
		}
	}()
	// drain returns what zsh draws until it has drawn want, or has been
	// quiet for a while.
	drain := func(want string) string {
		var out bytes.Buffer
		for {
			select {
			case b, ok := <-screen:
				if !ok {
					return out.String()
				}
				out.Write(b)
				if strings.Contains(out.String(), want) {
					return out.String()
				}
			case <-time.After(2 * time.Second):
				return out.String()
			}
		}
	}
	master.Write([]byte("autoload -U compinit; compinit -u -D; source " + script + "; echo sourced\n"))
	if s := drain("sourced\r\n"); !strings.Contains(s, "sourced") || strings.Contains(s, "command not found") {
		t.Fatalf("zsh did not load the script: %q", s)
	}
	for _, tc := range completionCases {
		// ^U clears the line left by the case before.
		master.Write([]byte("\x15" + tc.line + "\t"))
		if s := drain(tc.want); !strings.Contains(s, tc.want) {
			t.Errorf("zsh: %q offers %q, want %q", tc.line, s, tc.want)
		}
	}
	master.Write([]byte("\x15exit\n"))
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// TestCompletionUnknownShell: a usage error, with the nearest shell.
func TestCompletionUnknownShell(t *testing.T) {
	code, _, stderr := runCLI(t, "completion", "zssh")
	if code != 1 || !strings.HasPrefix(stderr, "geoseal completion: unknown shell zssh (want bash, zsh or fish); did you mean zsh?\n") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}
