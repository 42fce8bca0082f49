// Package azurite starts the Azurite Blob Storage emulator for geoseal's
// tests, examples and benchmarks.
//
// Azurite is pinned by package.json in this directory and installed with
//
//	npm install --prefix internal/azurite
//
// (make deps does it), which puts the azurite-blob launcher in
// internal/azurite/node_modules/.bin. [Start] runs it under the node found
// on PATH, on a free loopback port, with its data in a temporary directory,
// and returns once the emulator answers HTTP requests. [Server.Stop] kills
// the emulator's whole process group, so nothing is left running;
// [Server.Restart] brings it back on the same port with the same data,
// which is what fault-injection tests need (stop mid-upload, restart, retry).
//
// Tests use [ForTest], which starts one emulator per test and stops it in
// t.Cleanup. One emulator per test costs well under a second and keeps tests
// that stop and restart the emulator from disturbing each other; a test that
// wants several containers makes them on its one Server. When GEOSEAL_AZURITE_CONNECTION_STRING is set,
// ForTest uses that endpoint instead of starting anything (Stop and Restart
// then return [ErrExternal]).
package azurite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// The well-known development storage account every Azurite instance serves.
// The key is public (it is in Microsoft's documentation) and grants access to
// nothing but emulators.
const (
	DevAccountName = "devstoreaccount1"
	DevAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Environment variables that change where the emulator comes from.
const (
	// EnvBin names an azurite-blob launcher to run instead of the one
	// installed under internal/azurite/node_modules.
	EnvBin = "GEOSEAL_AZURITE_BIN"
	// EnvConnectionString makes ForTest use an already running Blob
	// endpoint (Azurite or a real account) instead of starting one.
	EnvConnectionString = "GEOSEAL_AZURITE_CONNECTION_STRING"
)

// ErrNotInstalled is matched by the error of Start when node or the Azurite
// package cannot be found.
var ErrNotInstalled = errors.New("azurite: not installed")

// ErrExternal is returned by Stop and Restart on a Server that this package
// did not start (an endpoint given by GEOSEAL_AZURITE_CONNECTION_STRING).
var ErrExternal = errors.New("azurite: the endpoint was not started by this process")

// Options configure Start. The zero value (or nil) is what tests want.
type Options struct {
	// Dir is where Azurite keeps its data. When empty, Start creates a
	// temporary directory and Stop removes it.
	Dir string
	// Bin is the azurite-blob launcher (the .js file or its node_modules/.bin
	// symlink). When empty, Start uses $GEOSEAL_AZURITE_BIN, then looks for
	// internal/azurite/node_modules/.bin/azurite-blob in the working
	// directory and its parents, then next to this package's source.
	Bin string
	// Output receives the emulator's stdout and stderr. Azurite runs with
	// --silent, so this is only startup and crash messages. Nil discards
	// them (the last few kilobytes still appear in start errors).
	Output io.Writer
	// StartTimeout bounds how long Start waits for the emulator to answer.
	// Zero means 30 seconds.
	StartTimeout time.Duration
}

// A Server is a running (or stopped) Azurite Blob emulator.
//
// Its methods are safe for concurrent use.
type Server struct {
	// BlobEndpoint is the service URL, such as
	// http://127.0.0.1:41234/devstoreaccount1.
	BlobEndpoint string
	// AccountName and AccountKey are the shared-key credentials.
	AccountName, AccountKey string
	// Dir holds the emulator's data; empty for an external endpoint.
	Dir string

	external bool
	ownsDir  bool
	node     string
	bin      string
	port     int
	output   io.Writer
	timeout  time.Duration

	mu   sync.Mutex
	proc *process
}

// process is one running azurite-blob.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's error, valid after done is closed
	tail *tailBuffer
}

// Start launches Azurite's Blob service and waits until it answers. Stop it
// with Stop when done.
func Start(ctx context.Context, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node not found on PATH: %v", ErrNotInstalled, err)
	}
	bin, err := findBin(opts.Bin)
	if err != nil {
		return nil, err
	}
	s := &Server{
		AccountName: DevAccountName,
		AccountKey:  DevAccountKey,
		Dir:         opts.Dir,
		node:        node,
		bin:         bin,
		output:      opts.Output,
		timeout:     opts.StartTimeout,
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if s.Dir == "" {
		dir, err := os.MkdirTemp("", "geoseal-azurite-")
		if err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		s.Dir, s.ownsDir = dir, true
	}
	// A free port found by listening and closing can be taken by someone
	// else before Azurite binds it; try a few.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			s.BlobEndpoint = fmt.Sprintf("http://127.0.0.1:%d/%s", s.port, s.AccountName)
			err = s.launch(ctx)
		}
		if err == nil {
			return s, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			if s.ownsDir {
				os.RemoveAll(s.Dir)
			}
			return nil, err
		}
	}
}

// ConnectionString returns a connection string for azblob.NewClientFromConnectionString.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		s.AccountName, s.AccountKey, s.BlobEndpoint)
}

// Credential returns the shared-key credential of the account.
func (s *Server) Credential() *azblob.SharedKeyCredential {
	cred, err := azblob.NewSharedKeyCredential(s.AccountName, s.AccountKey)
	if err != nil {
		// The key was validated when the Server was made.
		panic("azurite: invalid account key: " + err.Error())
	}
	return cred
}

// NewClient returns an azblob client for the emulator's account.
func (s *Server) NewClient(opts *azblob.ClientOptions) (*azblob.Client, error) {
	return azblob.NewClientWithSharedKeyCredential(s.BlobEndpoint+"/", s.Credential(), opts)
}

// Stop terminates the emulator (its whole process group) and waits for it to
// exit. The data stays in Dir for Restart; Close removes a Dir that Start
// created. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	if s.external {
		return ErrExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop()
	s.proc = nil
	return err
}

// Restart starts a stopped emulator again (or stops and starts a running
// one) on the same port with the same data directory, and waits until it
// answers.
func (s *Server) Restart(ctx context.Context) error {
	if s.external {
		return ErrExternal
	}
	if err := s.Stop(); err != nil {
		return err
	}
	// The port may linger briefly after the old process exits; retry the
	// launch for a while rather than fail on the first EADDRINUSE.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.launch(ctx)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Close stops the emulator and removes Dir if Start created it.
func (s *Server) Close() error {
	if s.external {
		return nil
	}
	err := s.Stop()
	if s.ownsDir {
		if rerr := os.RemoveAll(s.Dir); err == nil {
			err = rerr
		}
	}
	return err
}

// launch starts azurite-blob on s.port and waits until it answers.
func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("azurite: already running")
	}
	cmd := exec.Command(s.node, s.bin,
		"--blobHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(s.port),
		"--location", s.Dir,
		"--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry",
	)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "AZURITE_ACCOUNTS=") // the default account only
	p := &process{cmd: cmd, done: make(chan struct{}), tail: &tailBuffer{max: 4096}}
	var out io.Writer = p.tail
	if s.output != nil {
		out = io.MultiWriter(p.tail, s.output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("azurite: starting %s: %w", s.bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(ctx, s.BlobEndpoint, s.timeout, p); err != nil {
		p.stop()
		return err
	}
	s.proc = p
	return nil
}

// waitReady polls endpoint until it answers HTTP, the process exits, or the
// timeout passes.
func waitReady(ctx context.Context, endpoint string, timeout time.Duration, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?comp=list", nil)
		if err != nil {
			return fmt.Errorf("azurite: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil // any HTTP answer (even 403 for an unsigned request) means it is up
		}
		select {
		case <-p.done:
			return fmt.Errorf("azurite: exited before answering (%v); output: %s", p.err, p.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("azurite: not answering at %s: %w; output: %s", endpoint, ctx.Err(), p.tail.String())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the process group (Azurite then flushes its
// metadata, so Restart finds the blobs), and SIGKILL if it lingers.
func (p *process) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	signalGroup(p.cmd, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		signalGroup(p.cmd, syscall.SIGKILL)
		<-p.done
	}
	// Children, if any, die with the group.
	signalGroup(p.cmd, syscall.SIGKILL)
	return nil
}

// findBin locates the azurite-blob launcher.
func findBin(explicit string) (string, error) {
	var tried []string
	check := func(path string) (string, bool) {
		tried = append(tried, path)
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			if abs, err := filepath.Abs(path); err == nil {
				return abs, true
			}
		}
		return "", false
	}
	if explicit != "" {
		if p, ok := check(explicit); ok {
			return p, nil
		}
	} else if env := os.Getenv(EnvBin); env != "" {
		if p, ok := check(env); ok {
			return p, nil
		}
	} else {
		rel := filepath.Join("internal", "azurite", "node_modules", ".bin", "azurite-blob")
		if wd, err := os.Getwd(); err == nil {
			for dir := wd; ; dir = filepath.Dir(dir) {
				if p, ok := check(filepath.Join(dir, rel)); ok {
					return p, nil
				}
				if filepath.Dir(dir) == dir {
					break
				}
			}
		}
		if _, file, _, ok := runtime.Caller(0); ok {
			if p, ok := check(filepath.Join(filepath.Dir(file), "node_modules", ".bin", "azurite-blob")); ok {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: azurite-blob not found (looked at %s)", ErrNotInstalled, strings.Join(tried, ", "))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("azurite: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
