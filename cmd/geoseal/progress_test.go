//go:build linux

package main

// Progress: the report's form (in-process, with a clock of the test's
// own) and, through the binary, a bar with an ETA on a terminal (a pty
// made with the kernel's /dev/ptmx) and plain lines on a pipe.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/geoseal/geoseal/internal/azurite"
	"golang.org/x/sys/unix"
)

func TestProgress(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newTestEnv(t)
	e.progress = progressTiming{now: func() time.Time { return clock }}
	p := e.newProgress("encrypting x", "B", 3<<20)
	clock = clock.Add(time.Second)
	p.add(1 << 20)
	clock = clock.Add(time.Second)
	p.add(2 << 20)
	p.done()
	want := "geoseal: encrypting x: 1.0 MiB / 3.0 MiB (33%, 1.0 MiB/s, ETA 0:02)\n" +
		"geoseal: encrypting x: 3.0 MiB / 3.0 MiB (100%, 1.5 MiB/s, 0:02)\n" +
		"geoseal: encrypting x done: 3.0 MiB / 3.0 MiB (100%, 1.5 MiB/s, in 0:02)\n"
	if got := e.stderr.String(); got != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", got, want)
	}

	// --quiet, and operations shorter than the delay, print nothing.
	e.stderr.Reset()
	e.common.quiet = true
	p = e.newProgress("x", "B", 10)
	p.add(5)
	p.done()
	e.common.quiet = false
	e.progress.delay = time.Hour
	p = e.newProgress("x", "B", 10)
	p.add(5)
	p.done()
	if e.stderr.Len() != 0 {
		t.Errorf("quiet or quick progress printed %q", e.stderr.String())
	}

	// The terminal form redraws one line.
	e.progress.delay = 0
	e.terminal = func(io.Writer) bool { return true }
	p = e.newProgress("up", "blobs", -1)
	p.add(3)
	p.done()
	if out := e.stderr.String(); !strings.HasPrefix(out, "\rup 3 blobs") || !strings.HasSuffix(out, "\n") {
		t.Errorf("tty progress: %q", out)
	}

	// On a narrow terminal the label gives way, keeping its end.
	for _, width := range []int{120, 60, 30, 5} {
		e.stderr.Reset()
		p = e.newProgress("downloading a/very/long/path/to/the/blob/part-0001.step", "B", 10<<20)
		p.width = width
		clock = clock.Add(time.Second)
		p.add(1 << 20)
		line := strings.TrimSuffix(strings.TrimPrefix(e.stderr.String(), "\r"), "\x1b[K")
		if n := len([]rune(line)); n > max(width-1, 0) && width > 40 {
			t.Errorf("width %d: a line of %d: %q", width, n, line)
		}
		if width >= 60 && !strings.Contains(line, "0001.step ") || width >= 120 && !strings.Contains(line, "part-0001.step [") {
			t.Errorf("width %d: the label lost its end: %q", width, line)
		}
	}
}

// openPTY opens a pseudo-terminal pair: the master the test reads, and
// the slave a child process writes to as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN) // ptsname
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 120}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// lockedBuffer is a bytes.Buffer safe to write from one goroutine and read
// from another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// slowOutput runs geoseal with args, in which FIFO stands for a FIFO that
// the test drains at about 3 MB/s, so that a command writing want there
// runs for a few seconds with stderr as given, until stop returns true for
// what it printed; then the test drains the rest at full speed.
func slowOutput(t *testing.T, env, args []string, want []byte, stderr io.Writer, printed func() string, stop func(string) bool) {
	t.Helper()
	fifo := filepath.Join(shortTempDir(t), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "FIFO", fifo)
	}
	cmd := exec.Command(geosealBin(t), args...)
	cmd.Env = append(userEnv(), env...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for fast := false; ; {
		if !fast {
			time.Sleep(20 * time.Millisecond)
			fast = stop(printed())
		}
		n, err := f.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Error("the plaintext through the FIFO differs")
	}
}

// progressCase is a command that writes 8 MiB of plaintext to FIFO.
type progressCase struct {
	name, label string // the progress report's label starts with label
	env, args   []string
	plain       []byte
}

// progressCases prepares decrypt (of a file) and get (of a blob, which
// learns its size from the authenticated properties) to write 8 MiB.
func progressCases(t *testing.T) []progressCase {
	t.Helper()
	dir := shortTempDir(t) // a label that fits the 120 columns of the pty
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 8<<20)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k).want(t, 0)
	srv := azurite.ForTest(t)
	env := []string{envConnectionString + "=" + srv.ConnectionString()}
	url := srv.BlobEndpoint + "/progress/part.step"
	geoseal(t, env, nil, "put", in, url, "--key-file", k, "--create-container", "--policy", "unrestricted", "--primary", "eastus").want(t, 0)
	return []progressCase{
		{"decrypt", "decrypting", nil, []string{"decrypt", "--in", obj, "--out", "FIFO", "--key-file", k}, plain},
		{"get", "downloading", env, []string{"get", url, "FIFO", "--key-file", k}, plain},
	}
}

// TestBinaryProgressBarOnTerminal: on a terminal, decrypt and get draw a
// bar redrawn in place, with size, rate and an ETA, and end it with a line.
func TestBinaryProgressBarOnTerminal(t *testing.T) {
	for _, pc := range progressCases(t) {
		t.Run(pc.name, func(t *testing.T) {
			master, slave := openPTY(t)
			var screen lockedBuffer
			copied := make(chan struct{})
			go func() { io.Copy(&screen, master); close(copied) }()
			eta := regexp.MustCompile(`\r` + pc.label + ` \S+ \[=* *\] \d+\.\d [KM]iB / 8\.0 MiB  \d+%  \d+\.\d [KM]iB/s  ETA 0:0\d\x1b\[K`)
			deadline := time.Now().Add(20 * time.Second)
			slowOutput(t, pc.env, pc.args, pc.plain, slave, screen.String, func(s string) bool {
				return len(eta.FindAllString(s, -1)) >= 3 || time.Now().After(deadline)
			})
			slave.Close() // the child's copy closed when it exited: EOF (EIO) for the reader
			<-copied
			out := screen.String()
			if n := len(eta.FindAllString(out, -1)); n < 3 {
				t.Errorf("%d redraws of the bar with an ETA, want 3 or more:\n%q", n, out)
			}
			if !regexp.MustCompile(`\r` + pc.label + ` \S+ \[=+\] 8\.0 MiB / 8\.0 MiB  100%  \d+\.\d [KM]iB/s  in 0:0\d\x1b\[K\r?\n`).MatchString(out) {
				t.Errorf("no final bar at 100%%:\n%q", out)
			}
			if strings.Contains(out, "geoseal: "+pc.label) {
				t.Errorf("plain progress lines on a terminal:\n%q", out)
			}
		})
	}
}

// TestBinaryProgressLines: on a pipe, progress is plain lines.
func TestBinaryProgressLines(t *testing.T) {
	for _, pc := range progressCases(t) {
		t.Run(pc.name, func(t *testing.T) {
			var stderr lockedBuffer
			line := regexp.MustCompile(`(?m)^geoseal: ` + pc.label + ` \S+: \d+\.\d [KM]iB / 8\.0 MiB \(\d+%, \d+\.\d [KM]iB/s, ETA 0:0\d\)$`)
			deadline := time.Now().Add(20 * time.Second)
			slowOutput(t, pc.env, pc.args, pc.plain, &stderr, stderr.String, func(s string) bool { return line.MatchString(s) || time.Now().After(deadline) })
			out := stderr.String()
			if !line.MatchString(out) || strings.Contains(out, "\r") || strings.Contains(out, "\x1b") {
				t.Errorf("plain progress:\n%q", out)
			}
			if !regexp.MustCompile(`(?m)^geoseal: ` + pc.label + ` \S+ done: 8\.0 MiB / 8\.0 MiB \(100%, \d+\.\d [KM]iB/s, in 0:0\d\)$`).MatchString(out) {
				t.Errorf("no final line:\n%q", out)
			}
		})
	}
}
