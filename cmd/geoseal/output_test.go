//go:build linux

package main

// Tests of what the commands that take --out do when it names something
// other than a regular file: a character device (a null device made with
// mknod in a temp dir, as /dev/null is), a FIFO, a Unix socket, a symbolic
// link. They run the binary as a user does.

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
)

// nullDevice makes a character device with /dev/null's numbers (1, 3) at
// path. Without the privilege to (not root, no CAP_MKNOD), it falls back to
// /dev/null itself, which the commands then must not replace either, and
// says so.
func nullDevice(t *testing.T, path string) string {
	t.Helper()
	const devNull = 1<<8 | 3 // Linux dev_t of major 1, minor 3
	err := syscall.Mknod(path, syscall.S_IFCHR|0o666, devNull)
	if errors.Is(err, syscall.EPERM) {
		t.Logf("!!! mknod %s: %v: testing with /dev/null itself instead of a device node in a temp dir", path, err)
		return "/dev/null"
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeState is what must not change about a special file.
type nodeState struct {
	mode fs.FileMode
	rdev uint64
	link string // the target of a symbolic link
}

func stateOf(t *testing.T, path string) nodeState {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s := nodeState{mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.rdev = st.Rdev
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if s.link, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// sink is an --out target made for a test: path to give the command,
// nodes that must be left as they were, what the target holds before the
// command, and collect, called once the command has exited, which returns
// what was written through the target (nil for a null device). With
// mustWrite false, a command that never opened the target is no error.
type sink struct {
	path    string
	nodes   map[string]nodeState
	initial []byte
	collect func(t *testing.T, mustWrite bool) []byte
}

// discard is the collect of a null device.
func discard(*testing.T, bool) []byte { return nil }

// sinkKinds make the targets every --out is tested with. dir must be short:
// a Unix socket's path is limited to 108 bytes.
var sinkKinds = []struct {
	name string
	make func(t *testing.T, dir string) sink
}{
	{"char device", func(t *testing.T, dir string) sink {
		p := nullDevice(t, filepath.Join(dir, "null"))
		return sink{p, map[string]nodeState{p: stateOf(t, p)}, nil, discard}
	}},
	{"fifo", func(t *testing.T, dir string) sink {
		p := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return sink{p, map[string]nodeState{p: stateOf(t, p)}, nil, fifoReader(t, p)}
	}},
	{"unix socket", func(t *testing.T, dir string) sink {
		p := filepath.Join(dir, "sock")
		collect := socketReader(t, p)
		return sink{p, map[string]nodeState{p: stateOf(t, p)}, nil, collect}
	}},
	{"symlink to a file", func(t *testing.T, dir string) sink {
		real, link := filepath.Join(dir, "real"), filepath.Join(dir, "link")
		writeFile(t, real, []byte("old contents"))
		if err := os.Symlink("real", link); err != nil {
			t.Fatal(err)
		}
		return sink{link, map[string]nodeState{link: stateOf(t, link)}, []byte("old contents"), func(t *testing.T, _ bool) []byte {
			if fi, err := os.Lstat(real); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Errorf("the link's target: %v, %v; want a regular 0600 file", fi, err)
			}
			return readFile(t, real)
		}}
	}},
	{"symlink to a device", func(t *testing.T, dir string) sink {
		dev := nullDevice(t, filepath.Join(dir, "null"))
		link := filepath.Join(dir, "link")
		if err := os.Symlink(dev, link); err != nil {
			t.Fatal(err)
		}
		return sink{link, map[string]nodeState{link: stateOf(t, link), dev: stateOf(t, dev)}, nil, discard}
	}},
}

// fifoReader reads everything written to the FIFO at path, from the time
// a writer opens it until the writer closes it.
func fifoReader(t *testing.T, path string) func(*testing.T, bool) []byte {
	return collectAsync("FIFO", func() (io.ReadCloser, error) { return os.Open(path) }, func() {
		// Release the reader, waiting in open, if the FIFO is still there.
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// socketReader listens on a Unix socket at path and returns what the first
// connection sends. The listener is closed (and the socket removed) when
// the test ends.
func socketReader(t *testing.T, path string) func(*testing.T, bool) []byte {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return collectAsync("socket", func() (io.ReadCloser, error) { return ln.Accept() }, func() { ln.Close() })
}

// collectAsync reads, in a goroutine, all that the reader open returns
// yields. The function it returns waits for the reading to end: 10 s at
// most when the command must have written (then the test fails), 1 s
// otherwise; then release must unblock open.
func collectAsync(what string, open func() (io.ReadCloser, error), release func()) func(*testing.T, bool) []byte {
	got := make(chan []byte, 1)
	go func() {
		r, err := open()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	return func(t *testing.T, mustWrite bool) []byte {
		wait := time.Second
		if mustWrite {
			wait = 10 * time.Second
		}
		select {
		case b := <-got:
			return b
		case <-time.After(wait):
			if mustWrite {
				t.Errorf("the command never wrote to the %s (its reader is still waiting)", what)
			}
			release()
			return <-got
		}
	}
}

// shortTempDir is t.TempDir with a path short enough for a Unix socket.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// outCase is a command run with --out (or another output flag) set to OUT.
type outCase struct {
	name  string
	args  []string // OUT stands for the target
	check func(t *testing.T, written []byte)
	// refused, when set, is the error the command must fail with instead
	// (writing CSE v2 under GODEBUG=fips140=only), writing nothing.
	refused string
}

// runOutCases runs every case against every kind of target and checks that
// the command succeeded, wrote what it should through the target (or, if
// refused, failed and wrote nothing), left the target as it was (a device
// still a device, a link still a link) and left no temporary file beside
// it.
func runOutCases(t *testing.T, env []string, cases []outCase) {
	for _, c := range cases {
		for _, kind := range sinkKinds {
			t.Run(c.name+"/"+kind.name, func(t *testing.T) {
				dir := shortTempDir(t)
				s := kind.make(t, dir)
				before := dirEntries(t, dir)
				var args []string
				for _, a := range c.args {
					args = append(args, strings.ReplaceAll(a, "OUT", s.path))
				}
				var written []byte
				if c.refused != "" {
					r := geoseal(t, env, nil, args...).want(t, 1)
					if !strings.Contains(r.stderr, c.refused) {
						t.Errorf("stderr %q, want %q", r.stderr, c.refused)
					}
					if written = s.collect(t, false); !bytes.Equal(written, s.initial) {
						t.Errorf("a refused command wrote %q through the target", written)
					}
					written = nil
				} else {
					geoseal(t, env, nil, args...).want(t, 0)
					written = s.collect(t, true)
				}
				for node, was := range s.nodes {
					if now := stateOf(t, node); now != was {
						t.Errorf("%s was %+v, is now %+v: the command replaced it", node, was, now)
					}
				}
				if after := dirEntries(t, dir); !slices.Equal(after, before) {
					t.Errorf("directory holds %v, held %v", after, before)
				}
				if written != nil {
					c.check(t, written)
				}
			})
		}
	}
}

// isPlain checks that what was written is want.
func isPlain(want []byte) func(*testing.T, []byte) {
	return func(t *testing.T, got []byte) {
		if !bytes.Equal(got, want) {
			t.Errorf("wrote %d bytes that are not the %d bytes of plaintext", len(got), len(want))
		}
	}
}

// TestBinaryOutSpecialFiles gives every file-writing command a device, a
// FIFO, a socket and symbolic links as --out: each is written, none is
// replaced by a regular file.
func TestBinaryOutSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 100_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k, "--chunk-size", "4096").want(t, 0)
	v := csev2Vector(t, "2.1/RSA-OAEP-256/python/r16/50")
	vblob := writeFile(t, filepath.Join(dir, "v.blob"), v.ciphertext)
	vmd := writeFile(t, filepath.Join(dir, "v.json"), []byte(v.encryptionData))
	cseKEK := writeFile(t, filepath.Join(dir, "cse.kek"), randomBytes(t, 32))
	// Writing CSE v2 takes counter nonces, which FIPS 140-only mode refuses:
	// then the refusal must leave the target as it was, too.
	cseRefused := ""
	if fips140.Enforced() {
		cseRefused = "not approved"
	}

	// decrypts checks that what was written is an object that decrypts.
	decrypts := func(extra ...string) func(*testing.T, []byte) {
		return func(t *testing.T, got []byte) {
			sub := t.TempDir()
			o := writeFile(t, filepath.Join(sub, "written"), got)
			args := append([]string{"decrypt", "--in", o, "--out", "-"}, extra...)
			if r := geoseal(t, nil, nil, args...); r.code != 0 || r.stdout != string(plain) {
				t.Errorf("what was written does not decrypt to the plaintext: exit %d, %s", r.code, r.stderr)
			}
		}
	}
	isJSON := func(t *testing.T, got []byte) {
		if !bytes.Contains(got, []byte(`"EncryptionAgent"`)) {
			t.Errorf("metadata: %q", got)
		}
	}
	runOutCases(t, nil, []outCase{
		{name: "encrypt", args: []string{"encrypt", "--in", in, "--out", "OUT", "--key-file", k}, check: decrypts("--key-file", k)},
		{name: "decrypt", args: []string{"decrypt", "--in", obj, "--out", "OUT", "--key-file", k}, check: isPlain(plain)},
		{name: "decrypt range", args: []string{"decrypt", "--in", obj, "--out", "OUT", "--key-file", k, "--offset", "4000", "--length", "5000"}, check: isPlain(plain[4000:9000])},
		{name: "decrypt azure-cse-v2", args: []string{"decrypt", "--format", "azure-cse-v2", "--in", vblob, "--metadata", vmd, "--out", "OUT", "--rsa-private", v.rsaPrivate, "--key-id", v.rsaKeyID},
			check: isPlain(v.plaintext)},
		{name: "encrypt azure-cse-v2 body", refused: cseRefused, args: []string{"encrypt", "--format", "azure-cse-v2", "--in", in, "--out", "OUT", "--metadata-out", filepath.Join(dir, "md.json"), "--key-file", cseKEK, "--key-id", "kid"},
			check: func(t *testing.T, got []byte) {
				o := writeFile(t, filepath.Join(t.TempDir(), "b"), got)
				r := geoseal(t, nil, nil, "decrypt", "--format", "azure-cse-v2", "--in", o, "--metadata", filepath.Join(dir, "md.json"), "--out", "-", "--key-file", cseKEK, "--key-id", "kid")
				if r.code != 0 || r.stdout != string(plain) {
					t.Errorf("the CSE v2 body written does not decrypt: exit %d, %s", r.code, r.stderr)
				}
			}},
		{name: "encrypt azure-cse-v2 metadata", refused: cseRefused, args: []string{"encrypt", "--format", "azure-cse-v2", "--in", in, "--out", filepath.Join(dir, "body"), "--metadata-out", "OUT", "--key-file", cseKEK, "--key-id", "kid"},
			check: isJSON},
	})

	// Stdout redirected to a null device: encrypt used to take it for a
	// terminal and refuse; both directions must work.
	t.Run("stdout is a null device", func(t *testing.T) {
		dev := nullDevice(t, filepath.Join(shortTempDir(t), "null"))
		was := stateOf(t, dev)
		for _, args := range [][]string{
			{"encrypt", "--in", in, "--out", "-", "--key-file", k},
			{"decrypt", "--in", obj, "--out", "-", "--key-file", k},
		} {
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(geosealBin(t), args...)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = f, &stderr
			err = cmd.Run()
			f.Close()
			if err != nil {
				t.Errorf("%v > %s: %v: %s", args, dev, err, stderr.String())
			}
		}
		if now := stateOf(t, dev); now != was {
			t.Errorf("%s changed: %+v -> %+v", dev, was, now)
		}
	})

	// A symbolic link to nothing is refused, and nothing is created.
	t.Run("dangling symlink", func(t *testing.T) {
		sub := shortTempDir(t)
		link := filepath.Join(sub, "link")
		if err := os.Symlink("missing", link); err != nil {
			t.Fatal(err)
		}
		r := geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", link, "--key-file", k).want(t, 1)
		if !strings.Contains(r.stderr, "symbolic link to nothing") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("stderr: %q", r.stderr)
		}
		if got := dirEntries(t, sub); !slices.Equal(got, []string{"link"}) {
			t.Errorf("directory holds %v", got)
		}
	})

	// A failed decrypt into a device or FIFO leaves it in place, having
	// received authenticated whole chunks only.
	t.Run("failed decrypt into a fifo", func(t *testing.T) {
		sub := shortTempDir(t)
		good := readFile(t, obj)
		bad := writeFile(t, filepath.Join(sub, "bad"), append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1))
		fifo := filepath.Join(sub, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		collect := fifoReader(t, fifo)
		geoseal(t, nil, nil, "decrypt", "--in", bad, "--out", fifo, "--key-file", k).want(t, 1)
		got := collect(t, true)
		if !bytes.HasPrefix(plain, got) || len(got)%4096 != 0 {
			t.Errorf("the FIFO got %d bytes that are not authenticated whole chunks", len(got))
		}
		if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
			t.Errorf("the FIFO is gone: %v %v", fi, err)
		}
	})
}

// TestBinaryKeygenSpecialFiles: keygen writes a key only to a new regular
// file; a device, a FIFO, a socket or a link would lose it or put it
// somewhere unexpected, so each is refused and left as it was.
func TestBinaryKeygenSpecialFiles(t *testing.T) {
	for _, kind := range append(sinkKinds[:len(sinkKinds):len(sinkKinds)], struct {
		name string
		make func(t *testing.T, dir string) sink
	}{"dangling symlink", func(t *testing.T, dir string) sink {
		link := filepath.Join(dir, "link")
		if err := os.Symlink("missing", link); err != nil {
			t.Fatal(err)
		}
		return sink{link, map[string]nodeState{link: stateOf(t, link)}, nil, discard}
	}}) {
		t.Run(kind.name, func(t *testing.T) {
			dir := shortTempDir(t)
			s := kind.make(t, dir)
			before := dirEntries(t, dir)
			var fifo *os.File
			if st := s.nodes[s.path]; st.mode&fs.ModeNamedPipe != 0 {
				// A reader that does not wait, so that a keygen writing to
				// the FIFO would not block: anything it wrote is caught.
				var err error
				if fifo, err = os.OpenFile(s.path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
					t.Fatal(err)
				}
				defer fifo.Close()
			}
			r := geoseal(t, nil, nil, "keygen", "--out", s.path).want(t, 1)
			if !strings.Contains(r.stderr, "never overwrites") {
				t.Errorf("stderr: %q", r.stderr)
			}
			for node, was := range s.nodes {
				if now := stateOf(t, node); now != was {
					t.Errorf("%s was %+v, is now %+v", node, was, now)
				}
			}
			if after := dirEntries(t, dir); !slices.Equal(after, before) {
				t.Errorf("directory holds %v, held %v", after, before)
			}
			if kind.name == "symlink to a file" && string(readFile(t, filepath.Join(dir, "real"))) != "old contents" {
				t.Error("keygen wrote through the link")
			}
			if fifo != nil {
				if b, _ := io.ReadAll(fifo); len(b) > 0 {
					t.Errorf("keygen wrote %d bytes to the FIFO", len(b))
				}
			}
		})
	}
}

// TestBinaryGetSpecialFiles is TestBinaryOutSpecialFiles for get, against
// Azurite, for a geoseal object and an Azure CSE v2 blob.
func TestBinaryGetSpecialFiles(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 100_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	geoseal(t, env, nil, "put", "--container", "out", "--blob", "obj", "--in", in, "--key-file", k,
		"--policy", "unrestricted", "--primary", "eastus", "--create-container").want(t, 0)
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "out", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := csev2Vector(t, "2.1/RSA-OAEP-256/python/r16/50")
	if _, err := cc.NewBlockBlobClient("cse").UploadBuffer(context.Background(), v.ciphertext, &blockblob.UploadBufferOptions{
		Metadata: map[string]*string{"encryptiondata": &v.encryptionData},
	}); err != nil {
		t.Fatal(err)
	}
	runOutCases(t, env, []outCase{
		{name: "get", args: []string{"get", "--container", "out", "--blob", "obj", "--out", "OUT", "--key-file", k}, check: isPlain(plain)},
		{name: "get range", args: []string{"get", "--container", "out", "--blob", "obj", "--out", "OUT", "--key-file", k, "--offset", "70000", "--length", "100"}, check: isPlain(plain[70000:70100])},
		{name: "get azure-cse-v2", args: []string{"get", "--format", "azure-cse-v2", "--container", "out", "--blob", "cse", "--out", "OUT", "--rsa-private", v.rsaPrivate, "--key-id", v.rsaKeyID},
			check: isPlain(v.plaintext)},
	})
}
