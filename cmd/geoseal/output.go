package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// openInput opens path for reading; "-" is stdin. size is the file's size,
// or -1 when unknown (stdin, a pipe).
func openInput(path string, stdin io.Reader) (r io.Reader, size int64, closeFn func(), err error) {
	if path == "" {
		return nil, 0, nil, errors.New("--in is required (a file, or - for stdin)")
	}
	if path == "-" {
		return stdin, -1, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	size = -1
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// output is where a command writes its result: stdout, or a file that
// appears under its name only once it is complete. Until commit, the bytes
// go to a temporary file in the same directory (so the final rename is
// atomic); abort removes it. A failed decryption therefore never leaves a
// partial plaintext behind under the name a script will read.
type output struct {
	io.Writer
	file  *os.File // nil for stdout
	final string
	done  bool
}

// createOutput starts the output named path; "-" is stdout. Files are
// created with mode 0600: they may hold plaintext of controlled data.
func createOutput(path string, stdout io.Writer) (*output, error) {
	if path == "" {
		return nil, errors.New("--out is required (a file, or - for stdout)")
	}
	if path == "-" {
		return &output{Writer: stdout}, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, &os.PathError{Op: "create", Path: path, Err: errors.New("is a directory")}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".geoseal-*.tmp")
	if err != nil {
		return nil, err
	}
	return &output{Writer: f, file: f, final: path}, nil
}

// commit makes a file output appear under its final name.
func (o *output) commit() error {
	if o.done || o.file == nil {
		o.done = true
		return nil
	}
	o.done = true
	err := o.file.Sync()
	if cerr := o.file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.file.Name(), o.final)
	}
	if err != nil {
		os.Remove(o.file.Name())
	}
	return err
}

// abort discards a file output that was not committed. It is safe to call
// after commit (it then does nothing), so commands defer it.
func (o *output) abort() {
	if o == nil || o.done || o.file == nil {
		return
	}
	o.done = true
	o.file.Close()
	os.Remove(o.file.Name())
}

// displayName names an --in or --out argument in messages.
func displayName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}
