package main

// Failures as a user meets them: endpoints that never answer or refuse
// connections (--timeout, --try-timeout, retry notices), Ctrl-C (exit 130,
// nothing half written), and the one place exit codes are decided.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/region"
)

// silentEndpoint listens on a loopback port, accepts every connection and
// never answers. accepted receives a value for each connection.
func silentEndpoint(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 100)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), ch
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeSAS is a well-formed SAS whose signature must never be printed.
const fakeSAS = "sv=2024-08-04&sr=c&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=TOPSECRETSIGNATURE0123456789abcdef%3D"

func TestBinaryTimeout(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	out := filepath.Join(dir, "out")
	addr, _ := silentEndpoint(t)
	url := "http://" + addr + "/devstoreaccount1/c/b?" + fakeSAS

	// --timeout bounds the whole command, whatever the tries.
	start := time.Now()
	r := geoseal(t, nil, nil, "get", url, out, "--key-file", k, "--timeout", "2s").want(t, 1)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("--timeout 2s took %v", took)
	}
	if line := errorLine(t, r.stderr); line != "geoseal get: timed out after 2s (--timeout)" {
		t.Errorf("error line %q", line)
	}
	// Each try has its own bound, so retries happen, and say so.
	start = time.Now()
	r = geoseal(t, nil, nil, "get", url, out, "--key-file", k, "--try-timeout", "300ms", "--timeout", "5s", "--verbose").want(t, 1)
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("--timeout 5s took %v", took)
	}
	notices := regexp.MustCompile(`(?m)^geoseal: retrying \((\d)/3\): no answer within 300ms \(--try-timeout\)$`).FindAllStringSubmatch(r.stderr, -1)
	if len(notices) < 2 || notices[0][1] != "1" || notices[1][1] != "2" {
		t.Errorf("retry notices: %q", r.stderr)
	}
	if strings.Contains(r.stderr, "TOPSECRET") {
		t.Errorf("the signature was printed: %q", r.stderr)
	}
	// --quiet: no notices, just the error.
	r = geoseal(t, nil, nil, "get", url, out, "--key-file", k, "--try-timeout", "200ms", "--timeout", "2s", "--quiet").want(t, 1)
	if line := errorLine(t, r.stderr); line != "geoseal get: timed out after 2s (--timeout)" {
		t.Errorf("--quiet: %q", r.stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed get left its output")
	}
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Errorf("files left behind: %v", got)
	}
}

func TestBinaryRetryNotices(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	url := "http://" + closedPort(t) + "/devstoreaccount1/c/b?" + fakeSAS
	// azcore waits about 0.8 s before its first retry, 2.4 s before the
	// second: within 2 s, one notice.
	r := geoseal(t, nil, nil, "get", url, filepath.Join(dir, "out"), "--key-file", k, "--timeout", "2s").want(t, 1)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 2 || lines[0] != "geoseal: retrying (1/3): connection refused" || lines[1] != "geoseal get: timed out after 2s (--timeout)" {
		t.Errorf("stderr: %q", r.stderr)
	}
}

// TestRetriesExhausted runs in-process with azcore's retry delays made
// short: every try of a silent endpoint times out, each retry is noticed,
// and the error says what to do.
func TestRetriesExhausted(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	if code, _, stderr := runCLI(t, "keygen", "--out", k); code != 0 {
		t.Fatal(stderr)
	}
	addr, _ := silentEndpoint(t)
	e := newTestEnv(t)
	e.azure.Retry = policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}
	code, _, stderr := e.run(t, "get", "http://"+addr+"/devstoreaccount1/c/b?"+fakeSAS, filepath.Join(dir, "out"), "--key-file", k, "--try-timeout", "100ms")
	if code != 1 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := []string{
		"geoseal: retrying (1/3): no answer within 100ms (--try-timeout)",
		"geoseal: retrying (2/3): no answer within 100ms (--try-timeout)",
		"geoseal: retrying (3/3): no answer within 100ms (--try-timeout)",
		"geoseal get: no answer from " + addr + " within the per-try timeout, on any try; check the endpoint, or raise --try-timeout",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(want, "\n"))
	}
}

// startGeoseal starts the binary with stdin from a pipe the test holds
// open, and returns a function that waits for it to exit.
func startGeoseal(t *testing.T, env []string, args ...string) (stdin io.WriteCloser, proc *os.Process, wait func() result) {
	t.Helper()
	cmd := exec.Command(geosealBin(t), args...)
	cmd.Env = append(userEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return stdin, cmd.Process, func() result {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("geoseal %v did not exit 10 s after the signal; stderr: %s", args, stderr.String())
		}
		return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
	}
}

// TestBinaryInterrupt sends SIGINT (Ctrl-C) to commands waiting on the
// network or on stdin: each exits 130 promptly, says so in one line, and
// leaves nothing half written: no output file, no temporary file, no blob.
func TestBinaryInterrupt(t *testing.T) {
	srv := azurite.ForTest(t)
	cc := newContainer(t, srv, "sigint")
	env := []string{envConnectionString + "=" + srv.ConnectionString()}
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", writeFile(t, filepath.Join(dir, "plain"), randomBytes(t, 300_000)), "--out", obj, "--key-file", k).want(t, 0)
	addr, accepted := silentEndpoint(t)

	interrupt := func(t *testing.T, p *os.Process, wait func() result) result {
		t.Helper()
		if err := p.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		r := wait()
		if r.code != 130 {
			t.Errorf("exit %d after SIGINT, want 130; stderr %q", r.code, r.stderr)
		}
		if line := errorLine(t, r.stderr); !strings.HasSuffix(line, ": interrupted; stopped cleanly, nothing is left half written") {
			t.Errorf("error line %q", line)
		}
		return r
	}

	t.Run("get waiting on the network", func(t *testing.T) {
		sub := t.TempDir()
		_, p, wait := startGeoseal(t, nil, "get", "http://"+addr+"/devstoreaccount1/c/b?"+fakeSAS, filepath.Join(sub, "out"), "--key-file", k)
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("get never connected")
		}
		interrupt(t, p, wait)
		if got := dirEntries(t, sub); len(got) != 0 {
			t.Errorf("files left behind: %v", got)
		}
	})
	t.Run("put reading stdin", func(t *testing.T) {
		stdin, p, wait := startGeoseal(t, env, "put", "-", srv.BlobEndpoint+"/sigint/half", "--key-file", k, "--policy", "unrestricted", "--primary", "eastus")
		stdin.Write(randomBytes(t, 5<<20)) // more than a block: staging has begun
		time.Sleep(500 * time.Millisecond)
		interrupt(t, p, wait)
		stdin.Close()
		if _, err := cc.NewBlobClient("half").GetProperties(context.Background(), nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Errorf("an interrupted put committed a blob: %v", err)
		}
	})
	t.Run("decrypt reading stdin", func(t *testing.T) {
		sub := t.TempDir()
		stdin, p, wait := startGeoseal(t, nil, "decrypt", "--in", "-", "--out", filepath.Join(sub, "out"), "--key-file", k)
		stdin.Write(readFile(t, obj)[:100_000]) // part of the object, and then nothing
		time.Sleep(500 * time.Millisecond)
		interrupt(t, p, wait)
		stdin.Close()
		if got := dirEntries(t, sub); len(got) != 0 {
			t.Errorf("files left behind: %v", got)
		}
	})
}

// TestExitCodes pins the one mapping from errors to exit codes.
func TestExitCodes(t *testing.T) {
	interruptedCtx, cancel := context.WithCancelCause(context.Background())
	cancel(&interrupted{syscall.SIGINT})
	termCtx, cancel := context.WithCancelCause(context.Background())
	cancel(&interrupted{syscall.SIGTERM})
	bg := context.Background()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		code int
	}{
		{"success", bg, nil, 0},
		{"usage", bg, usageErrorf("x"), 1},
		{"data", bg, errors.New("x"), 1},
		{"refused", bg, &region.Violation{Decision: &region.Decision{}}, 3},
		{"refused, shown", bg, shown{&region.Violation{Decision: &region.Decision{}}}, 3},
		{"interrupted", interruptedCtx, context.Canceled, 130},
		{"terminated", termCtx, context.Canceled, 143},
		{"interrupted but done", interruptedCtx, nil, 0},
	} {
		if got := exitCode(tc.ctx, tc.err); got != tc.code {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.code)
		}
	}
}

// TestBinaryHelpAndUsage: requested help goes to stdout and exits 0; a
// usage error is one line and a pointer to the help, on stderr, exit 1.
func TestBinaryHelpAndUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"put", "--help"}, {"help", "put"}, {"put", "-h"}, {"region", "check", "--help"}, {"help", "region", "list"}, {"region", "--help"}} {
		r := geoseal(t, nil, nil, args...).want(t, 0)
		if r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: stdout %d bytes, stderr %q", args, len(r.stdout), r.stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "--frob"}, "geoseal put: unknown flag --frob\nrun 'geoseal put --help'\n"},
		{[]string{"get", "--ky-file", "k"}, "geoseal get: unknown flag --ky-file; did you mean --key-file?\nrun 'geoseal get --help'\n"},
		{[]string{"get", "--offset"}, "geoseal get: --offset needs a value\nrun 'geoseal get --help'\n"},
		{[]string{"decrypt", "--offset", "x"}, "geoseal decrypt: invalid value \"x\" for flag --offset: parse error\nrun 'geoseal decrypt --help'\n"},
		{[]string{"pt"}, "geoseal: unknown command pt; did you mean put?\nrun 'geoseal --help'\n"},
		{[]string{"region", "chek"}, "geoseal region: unknown subcommand chek (want check or list); did you mean check?\nrun 'geoseal region --help'\n"},
		{[]string{"help", "frob"}, "geoseal help: unknown command frob\nrun 'geoseal --help'\n"},
		{[]string{"keygen", "k", "extra"}, "geoseal keygen: unexpected argument k\nrun 'geoseal keygen --help'\n"},
		{[]string{"put", "a", "b", "c"}, "geoseal put: put takes SRC and URL (or --in and --container)\nrun 'geoseal put --help'\n"},
	} {
		r := geoseal(t, nil, nil, tc.args...).want(t, 1)
		if r.stderr != tc.want || r.stdout != "" {
			t.Errorf("%v: stderr %q, want %q; stdout %q", tc.args, r.stderr, tc.want, r.stdout)
		}
	}
	// geoseal alone: the commands, on stderr (not asked for), exit 1.
	if r := geoseal(t, nil, nil).want(t, 1); !strings.Contains(r.stderr, "Commands:") || r.stdout != "" {
		t.Errorf("geoseal alone: %q", r.stderr)
	}
}

// TestBinaryResultLines: a command that produces a result prints one line,
// or JSON with --json; on stderr when its data went to stdout, where
// --quiet leaves the line out.
func TestBinaryResultLines(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	in := writeFile(t, filepath.Join(dir, "in"), []byte("result lines"))
	obj := filepath.Join(dir, "obj")
	r := geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k).want(t, 0)
	if !regexp.MustCompile(`^encrypted \S+/in \(12 bytes\) to \S+/obj: \d+ bytes, geoseal format\n$`).MatchString(r.stdout) || r.stderr != "" {
		t.Errorf("encrypt: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", filepath.Join(dir, "out"), "--key-file", k, "--json").want(t, 0)
	var res fileResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Size != 12 || res.Format != "geoseal" || res.In != obj {
		t.Errorf("decrypt --json: %s (%v)", r.stdout, err)
	}
	// Data on stdout: the result on stderr, or nothing with --quiet.
	r = geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", "-", "--key-file", k).want(t, 0)
	if r.stdout != "result lines" || !strings.HasPrefix(r.stderr, "decrypted ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("decrypt to stdout: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", "-", "--key-file", k, "--quiet").want(t, 0)
	if r.stdout != "result lines" || r.stderr != "" {
		t.Errorf("decrypt to stdout, --quiet: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = geoseal(t, nil, nil, "encrypt", "--in", in, "--out", "-", "--key-file", k, "--json").want(t, 0)
	if err := json.Unmarshal([]byte(r.stderr), &res); err != nil || res.Out != "-" || res.EncryptedSize != int64(len(r.stdout)) {
		t.Errorf("encrypt --json to stdout: stderr %q (%v)", r.stderr, err)
	}
}
