package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/geoseal/geoseal/envelope"
)

var decryptHelp = `Usage:

	geoseal decrypt --in FILE --out FILE [keys] [--require-context KEY=VALUE]... [--offset N --length N]
	        [--no-overwrite] [--json]
	geoseal decrypt --format azure-cse-v2 --metadata FILE --in BLOB --out FILE
	        (--key-file FILE --key-id KID | --rsa-private PEM --key-id KID | --keyvault KEY-URL)
	        [--offset N --length N]
	geoseal decrypt --format azure-cse-v1 --metadata FILE --in BLOB --out FILE
	        (--key-file FILE --key-id KID | --rsa-private PEM --key-id KID | --keyvault KEY-URL)
	        [--offset N --length N]

decrypt opens the geoseal object in --in with any one of the keys given and
writes the plaintext to --out ("-": stdin, stdout). Before a byte of
plaintext is produced it checks the key commitment, the header tag and the
required context; every chunk is authenticated before any of its bytes are
written.

On any failure (no key opens the object, the object was modified, cut
short or extended, the context does not match) decrypt exits 1 with a
one-line reason on stderr, and no --out file is left behind: the plaintext
goes to a temporary file next to --out that is renamed only when the whole
object has been authenticated. On stdout, only authenticated chunks are
written, but a failure part way leaves the chunks before it written: use a
file when a partial plaintext must never be seen.

` + outHelp + `
Keys (at least one that can unwrap; --rsa-public cannot):

` + keyringHelp("") + `
Flags:

	--in FILE                  the object, or - for stdin
	--out FILE                 where to write the plaintext, or - for stdout
	--require-context KEY=VALUE  refuse the object unless its encryption
	                           context has this pair (repeatable)
	--offset N                 first plaintext byte to write (default 0)
	--length N                 bytes to write from --offset (default: to the
	                           end). With --offset or --length only the chunks
	                           of the range are read and authenticated, plus
	                           the final chunk, which authenticates the size;
	                           --in must then be a file, not stdin.
	                           A range that starts past the end is an error.
	--format FORMAT            geoseal (default), azure-cse-v2 or azure-cse-v1
	--no-overwrite             refuse to replace an existing --out file
	--json                     print the result as JSON (in, out, format, size)

Azure client-side encryption v2 (--format azure-cse-v2) reads a blob body
written by the .NET, Java or Python SDKs, given its "encryptiondata"
metadata JSON in --metadata FILE. Its keys:

	--key-file FILE --key-id KID   32-byte AES key-encryption key (A256KW),
	                               raw or base64; KID must be the key id the
	                               metadata names
	--rsa-private PEM --key-id KID RSA private key (RSA-OAEP-256, or RSA-OAEP
	                               with SHA-1, refused under fips140=only)
	--keyvault KEY-URL             a Key Vault key; the versioned key id in the
	                               metadata must be a version of this key

Azure client-side encryption v1 (--format azure-cse-v1, protocol 1.0,
AES-CBC: what the SDKs wrote before mid-2022, and the Python SDK's default)
is read with the same flags. CSE v1 HAS NO INTEGRITY: anyone who could write
the blob can change what it decrypts to, and decrypt cannot notice; only a
broken padding is caught (exit 1, no --out file). decrypt says so on stderr
every time it reads one. Re-encrypt such data into the geoseal format.

The result is one line on stdout (on stderr when --out is stdout).

Exit status: 0 success, 1 on any error (a one-line reason on stderr).
`

const (
	formatGeoseal = "geoseal"
	formatCSEv2   = "azure-cse-v2"
	formatCSEv1   = "azure-cse-v1"
)

type decryptCmd struct {
	in, out        string
	requireContext contextFlag
	offset, length int64
	format         string
	cse            cseFlags
	keys           keyringFlags
	noOverwrite    bool
	json           bool
}

func (c *decryptCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.in, "in", "", "object file, or - for stdin")
	fs.StringVar(&c.out, "out", "", "plaintext file, or - for stdout")
	fs.Var(&c.requireContext, "require-context", "required context pair KEY=VALUE (repeatable)")
	fs.Int64Var(&c.offset, "offset", 0, "first plaintext byte")
	fs.Int64Var(&c.length, "length", -1, "plaintext bytes from --offset (default: to the end)")
	fs.StringVar(&c.format, "format", formatGeoseal, "geoseal, azure-cse-v2 or azure-cse-v1")
	c.cse.registerDecrypt(fs)
	fs.BoolVar(&c.noOverwrite, "no-overwrite", false, "refuse to replace an existing file")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.keys.register(fs)
}

// plaintextRange returns the section of a plaintext of size bytes that
// --offset and --length name (length -1: to the end). A range that starts
// past the end is an error, as HTTP answers 416, not an empty file: at the
// end is past it too, unless the plaintext or the range (--length 0) is
// empty.
func plaintextRange(offset, length, size int64) (start, n int64, err error) {
	if offset > size || (offset == size && size > 0 && length != 0) {
		return 0, 0, fmt.Errorf("the range starts at byte %d, past the end of the plaintext (%d bytes)", offset, size)
	}
	n = size - offset
	if length >= 0 && length < n {
		n = length
	}
	return offset, n, nil
}

// ranged reports whether --offset or --length asks for a part of the
// plaintext.
func (c *decryptCmd) ranged() bool { return c.offset != 0 || c.length >= 0 }

// sizedReaderAt is a decrypting io.ReaderAt that knows its plaintext's
// size.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// section returns the reader of the --offset/--length range of ra, whose
// progress p counts: a range counts its plaintext, a whole object the
// object read.
func (c *decryptCmd) section(ra sizedReaderAt, p *progress) (io.Reader, error) {
	start, n, err := plaintextRange(c.offset, c.length, ra.Size())
	if err != nil {
		return nil, err
	}
	p.total = n
	return progressReader{io.NewSectionReader(ra, start, n), p}, nil
}

// result prints what decrypt wrote: n bytes of plaintext.
func (c *decryptCmd) result(env *environment, format string, n int64) error {
	r := fileResult{In: c.in, Out: c.out, Format: format, Size: n}
	return env.result(c.out == "-", c.json, r, "decrypted %s (%s format) to %s: %d bytes",
		quoteUntrusted(displayName(c.in)), format, quoteUntrusted(displayOut(c.out)), n)
}

func (c *decryptCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	if c.offset < 0 || c.length < -1 {
		return usageErrorf("--offset and --length must not be negative")
	}
	switch c.format {
	case formatCSEv2, formatCSEv1:
		if len(c.requireContext.ctx) > 0 {
			return usageErrorf("--require-context does not apply to --format %s: Azure client-side encryption has no encryption context", c.format)
		}
		return decryptCSE(ctx, env, c)
	case formatGeoseal:
		if c.cse.used() {
			return usageErrorf("--key-id and --metadata need --format azure-cse-v2 or azure-cse-v1")
		}
	default:
		return usageErrorf("unknown --format %s (want geoseal, azure-cse-v2 or azure-cse-v1)", quoteUntrusted(c.format))
	}
	if c.in == "" || c.out == "" {
		return usageErrorf("--in and --out are required")
	}
	if c.ranged() && c.in == "-" {
		return usageErrorf("--offset and --length need --in to be a file, not stdin")
	}

	var cl closers
	defer cl.close()
	kr, err := c.keys.build(ctx, env, "decrypt", &cl)
	if err != nil {
		return err
	}
	src, size, closeIn, err := openInput(ctx, c.in, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	dst, err := createOutput(c.out, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer dst.abort()

	opts := &envelope.DecryptOptions{RequireContext: c.requireContext.ctx}
	return c.decryptFile(ctx, env, formatGeoseal, src, size, dst,
		func(f *os.File, size int64) (sizedReaderAt, error) { return envelope.DecryptAt(ctx, f, size, kr, opts) },
		func(r io.Reader) (io.ReadCloser, error) { return envelope.Decrypt(ctx, r, kr, opts) })
}

// decryptFile decrypts src, the object of --in (size bytes, -1 when
// unknown), into dst, commits dst and prints the result: with --offset or
// --length the range of the plaintext through openAt, which needs --in to
// be a regular file; otherwise all of it through open, as src streams. The
// formats differ only in openAt and open.
func (c *decryptCmd) decryptFile(ctx context.Context, env *environment, format string, src io.Reader, size int64, dst *output,
	openAt func(f *os.File, size int64) (sizedReaderAt, error),
	open func(src io.Reader) (io.ReadCloser, error)) error {
	p := env.newProgress("decrypting "+quoteUntrusted(displayName(c.in)), "B", size)
	var plain io.Reader
	if c.ranged() {
		f, ok := src.(*os.File)
		if !ok || size < 0 {
			return usageErrorf("--offset and --length need --in to be a regular file")
		}
		ra, err := openAt(f, size)
		if err != nil {
			return err
		}
		if plain, err = c.section(ra, p); err != nil {
			return err
		}
	} else {
		r, err := open(progressReader{src, p})
		if err != nil {
			return err
		}
		defer r.Close()
		plain = r
	}
	n, err := copyContext(ctx, dst, plain)
	if err != nil {
		return err
	}
	if err := dst.commit(); err != nil {
		return err
	}
	p.done()
	return c.result(env, format, n)
}
