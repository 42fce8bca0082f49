package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// openInput opens path for reading; "-" is stdin. size is the file's size,
// or -1 when unknown (stdin, a pipe). Reads of anything but a regular file
// (which is returned as the *os.File itself) end when ctx does, even when
// no input comes (see cancelableReader).
func openInput(ctx context.Context, path string, stdin io.Reader) (r io.Reader, size int64, closeFn func(), err error) {
	if path == "" {
		return nil, 0, nil, usageErrorf("--in is required (a file, or - for stdin)")
	}
	if path == "-" {
		return &cancelableReader{ctx: ctx, r: stdin, res: make(chan readResult, 1)}, -1, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		return f, fi.Size(), func() { f.Close() }, nil
	}
	return &cancelableReader{ctx: ctx, r: f, res: make(chan readResult, 1)}, -1, func() { f.Close() }, nil
}

// A cancelableReader reads r in a goroutine, so that a Read waiting on a
// terminal or a pipe returns when ctx is done: an interrupted command must
// not wait for input that may never come. The goroutine of a Read that ctx
// abandoned ends when r's Read returns, or with the process.
type cancelableReader struct {
	ctx     context.Context
	r       io.Reader
	res     chan readResult
	buf     []byte
	pending bool // a Read of r is in flight, into buf
}

type readResult struct {
	n   int
	err error
}

func (c *cancelableReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	if !c.pending {
		if cap(c.buf) < len(p) {
			c.buf = make([]byte, len(p))
		}
		buf := c.buf[:len(p)]
		c.pending = true
		go func() {
			n, err := c.r.Read(buf)
			c.res <- readResult{n, err}
		}()
	}
	select {
	case r := <-c.res:
		c.pending = false
		return copy(p, c.buf[:r.n]), r.err
	case <-c.ctx.Done():
		return 0, context.Cause(c.ctx)
	}
}

// outHelp says in each command's help what --out does with what is not a
// regular file.
const outHelp = `--out FILE is replaced only once the command has succeeded, by a
rename, with mode 0600. A device, FIFO or Unix socket (/dev/null, a named
pipe) is written directly, as stdout is, and never replaced or removed. A
symbolic link is followed: the file it points to is replaced and the link
kept; a link that points to nothing is refused.
`

// output is where a command writes its result, in one of two ways.
//
// A regular file (or a name that does not exist yet) appears under its name
// only once it is complete: until commit the bytes go to a temporary file
// in the same directory, so that the final rename is atomic, and abort
// removes it. A failed decryption therefore never leaves a partial
// plaintext behind under the name a script will read.
//
// Anything else (stdout, a character or block device such as /dev/null, a
// FIFO, a Unix socket) is written directly, as it is produced, and never
// renamed over or removed: replacing /dev/null with a regular file, as a
// rename would, breaks every program on the machine that writes to it. What
// a failed command wrote there before it failed stays written; the
// decrypting commands only ever write authenticated chunks.
type output struct {
	io.Writer
	file    *os.File  // the temporary file; nil when written directly
	final   string    // the name the temporary file is renamed to
	direct  io.Closer // a device, FIFO or socket opened for writing; nil for stdout
	done    bool
	renamed bool // the temporary file is now final
	// noOverwrite makes commit link the temporary file to its name, which
	// fails if anything appeared there meanwhile, rather than rename it.
	noOverwrite bool
}

// errExists is what --no-overwrite says about an existing output file.
var errExists = errors.New("exists; --no-overwrite leaves it as it is")

// createOutput starts the output named path; "-" is stdout. Files are
// created with mode 0600: they may hold plaintext of controlled data.
//
// A symbolic link is followed: the file it points to is replaced (the link
// stays, still pointing at it), and a link to a device or FIFO writes to
// it. A link that points to nothing is refused rather than guessed at.
//
// With noOverwrite, an existing regular file (or a link to one) is refused
// before anything is written, and again, atomically, by commit.
func createOutput(path string, stdout io.Writer, noOverwrite bool) (*output, error) {
	if path == "" {
		return nil, errors.New("--out is required (a file, or - for stdout)")
	}
	if path == "-" {
		return &output{Writer: stdout}, nil
	}
	target, fi, err := resolveOutput(path)
	if err != nil {
		return nil, err
	}
	switch mode := modeOf(fi); {
	case fi != nil && mode.IsRegular() && noOverwrite:
		return nil, fmt.Errorf("%s %w", path, errExists)
	case fi == nil || mode.IsRegular():
		f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".geoseal-*.tmp")
		if err != nil {
			return nil, err
		}
		return &output{Writer: f, file: f, final: target, noOverwrite: noOverwrite}, nil
	case mode.IsDir():
		return nil, &os.PathError{Op: "create", Path: path, Err: errors.New("is a directory")}
	case mode&fs.ModeSocket != 0:
		c, err := net.Dial("unix", target)
		if err != nil {
			return nil, fmt.Errorf("--out %s is a socket: %w", path, err)
		}
		return &output{Writer: c, direct: c}, nil
	default: // a device or a FIFO: opening a FIFO waits for its reader
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &output{Writer: f, direct: f}, nil
	}
}

// resolveOutput follows path if it is a symbolic link and returns the name
// to write and what is there now (nil if nothing is).
func resolveOutput(path string) (target string, fi fs.FileInfo, err error) {
	fi, err = os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, nil
	}
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return path, fi, err
	}
	// Stat through the kernel first, so that its rules on following links
	// (fs.protected_symlinks in sticky directories such as /tmp) apply.
	if fi, err = os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("--out %s is a symbolic link to nothing; give the file it should point to, or remove the link", path)
	} else if err != nil {
		return "", nil, err
	}
	if target, err = filepath.EvalSymlinks(path); err != nil {
		return "", nil, err
	}
	return target, fi, nil
}

func modeOf(fi fs.FileInfo) fs.FileMode {
	if fi == nil {
		return 0
	}
	return fi.Mode()
}

// commit makes a file output appear under its final name, or closes a
// direct one.
func (o *output) commit() error {
	if o.done {
		return nil
	}
	o.done = true
	if o.direct != nil {
		return o.direct.Close()
	}
	if o.file == nil {
		return nil
	}
	err := o.file.Sync()
	if cerr := o.file.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
	case o.noOverwrite:
		// A link, unlike a rename, fails if the name exists.
		if err = os.Link(o.file.Name(), o.final); errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s %w", o.final, errExists)
		}
		os.Remove(o.file.Name())
	default:
		err = os.Rename(o.file.Name(), o.final)
	}
	if err != nil {
		os.Remove(o.file.Name())
		return err
	}
	o.renamed = true
	return nil
}

// abort discards a file output that was not committed, and closes a direct
// one (what was written to it stays written). It is safe to call after
// commit (it then does nothing), so commands defer it.
func (o *output) abort() {
	if o == nil || o.done {
		return
	}
	o.done = true
	if o.direct != nil {
		o.direct.Close()
	}
	if o.file != nil {
		o.file.Close()
		os.Remove(o.file.Name())
	}
}

// undo removes a committed file output, for a command whose result is two
// outputs of which the second failed. Stdout, devices, FIFOs and sockets
// are left alone: nothing of theirs can be, or may be, removed.
func (o *output) undo() {
	if o != nil && o.renamed {
		os.Remove(o.final)
	}
}

// displayName names an --in argument in messages.
func displayName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

// displayOut names an --out argument in messages.
func displayOut(path string) string {
	if path == "-" {
		return "stdout"
	}
	return path
}

// result prints a command's result: v as JSON with --json, or one line.
// When the command's data went to stdout (onStdout), the result goes to
// stderr instead, where --quiet silences the line (not the JSON, which
// was asked for).
func (e *environment) result(onStdout, asJSON bool, v any, format string, args ...any) error {
	w := e.stdout
	if onStdout {
		w = e.stderr
	}
	if asJSON {
		return printJSON(w, v)
	}
	if onStdout && e.common.quiet {
		return nil
	}
	_, err := fmt.Fprintf(w, format+"\n", args...)
	return err
}

// printJSON writes v as indented JSON: the --json result of a command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
