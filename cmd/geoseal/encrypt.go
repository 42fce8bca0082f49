package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/geoseal/geoseal/envelope"
)

var encryptHelp = `Usage:

	geoseal encrypt --in FILE --out FILE [keys] [--context KEY=VALUE]... [--chunk-size N] [--no-overwrite] [--json]
	geoseal encrypt --format azure-cse-v2 --in FILE --out FILE --metadata-out FILE
	        (--key-file FILE --key-id KID | --rsa-public PEM --key-id KID | --keyvault KEY-URL)

encrypt reads the plaintext from --in and writes a geoseal object to --out:
a header (the data key wrapped for each key given, the encryption context,
a key commitment) followed by the body in chunks sealed with AES-256-GCM.
Each object gets its own random data key; any one of the keys given can
open it. "-" means stdin for --in and stdout for --out. A file --out appears
only once it is complete (written to a temporary file, then renamed), with
mode 0600.

` + outHelp + `
Keys (at least one; see geoseal help decrypt for opening):

` + keyringHelp("") + `
Flags:

	--in FILE             plaintext to encrypt, or - for stdin
	--out FILE            where to write the object, or - for stdout
	--context KEY=VALUE   encryption context pair (repeatable): stored in the
	                      clear, authenticated, and checked by
	                      geoseal decrypt --require-context. Never put secrets
	                      or technical data in it.
	--chunk-size N        plaintext bytes per chunk: a power of two from 4096
	                      to 16777216 (default 65536)
	--format FORMAT       geoseal (default) or azure-cse-v2 (see below)
	--no-overwrite        refuse to replace an existing --out file
	--json                print the result as JSON (in, out, format, size,
	                      encrypted_size)

Azure client-side encryption v2 (--format azure-cse-v2) writes the body the
.NET, Java and Python azure-storage-blob SDKs read (4 MiB AES-256-GCM
regions, protocol 2.0) and the "encryptiondata" metadata JSON to
--metadata-out; upload both together, the JSON as the blob's
"encryptiondata" metadata entry. Its keys:

	--key-file FILE --key-id KID  the 32-byte AES key-encryption key (raw, or
	                              base64 as geoseal keygen writes it), wrapped
	                              with A256KW; KID is stored in the metadata
	--rsa-public PEM --key-id KID RSA-OAEP-256 to a public key
	--keyvault KEY-URL            a Key Vault key (the versioned URL is
	                              stored; RSA-OAEP-256 for RSA keys, A256KW
	                              for Managed HSM AES keys)
	--metadata-out FILE           where to write the "encryptiondata" JSON
	--region-length N             protocol 2.1 with N-byte regions (readers
	                              must support 2.1; Python 12.15 does not)

CSE v2 writing uses counter nonces, which GODEBUG=fips140=only forbids: in
that mode it fails. Prefer the geoseal format for new data.

The result is one line on stdout (on stderr when --out is stdout).
Long operations print progress on stderr after a second: a bar on a
terminal, a line every few seconds otherwise.

Exit status: 0 written, 1 on any error (nothing is left under --out).
`

type encryptCmd struct {
	in, out     string
	context     contextFlag
	chunkSize   int
	format      string
	cse         cseFlags
	keys        keyringFlags
	noOverwrite bool
	json        bool
}

func (c *encryptCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.in, "in", "", "plaintext file, or - for stdin")
	fs.StringVar(&c.out, "out", "", "object file, or - for stdout")
	fs.Var(&c.context, "context", "encryption context KEY=VALUE (repeatable)")
	fs.IntVar(&c.chunkSize, "chunk-size", 0, "plaintext bytes per chunk")
	fs.StringVar(&c.format, "format", formatGeoseal, "geoseal or azure-cse-v2")
	c.cse.registerEncrypt(fs)
	fs.BoolVar(&c.noOverwrite, "no-overwrite", false, "refuse to replace an existing file")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.keys.register(fs)
}

// fileResult is the --json output of encrypt and decrypt.
type fileResult struct {
	In            string `json:"in"`
	Out           string `json:"out"`
	Format        string `json:"format"`
	Size          int64  `json:"size"`
	EncryptedSize int64  `json:"encrypted_size,omitempty"`
}

// result prints what encrypt wrote: n plaintext bytes into an object of
// written bytes.
func (c *encryptCmd) result(env *environment, format string, n, written int64) error {
	r := fileResult{In: c.in, Out: c.out, Format: format, Size: n, EncryptedSize: written}
	return env.result(c.out == "-", c.json, r, "encrypted %s (%d bytes) to %s: %d bytes, %s format",
		quoteUntrusted(displayName(c.in)), n, quoteUntrusted(displayOut(c.out)), written, format)
}

func (c *encryptCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	switch c.format {
	case formatCSEv2:
		if len(c.context.ctx) > 0 || c.chunkSize != 0 {
			return usageErrorf("--context and --chunk-size do not apply to --format azure-cse-v2")
		}
		return encryptCSEv2(ctx, env, c)
	case formatGeoseal:
		if c.cse.used() {
			return usageErrorf("--key-id, --metadata-out and --region-length need --format azure-cse-v2")
		}
	default:
		return usageErrorf("unknown --format %s (want geoseal or azure-cse-v2)", quoteUntrusted(c.format))
	}
	if c.in == "" || c.out == "" {
		return usageErrorf("--in and --out are required")
	}
	if c.chunkSize < 0 {
		return usageErrorf("--chunk-size must be positive")
	}
	if c.out == "-" && env.terminal(env.stdout) {
		return usageErrorf("refusing to write ciphertext to a terminal; use --out FILE or a pipe")
	}

	var cl closers
	defer cl.close()
	kr, err := c.keys.build(ctx, env, "encrypt", &cl)
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

	written := &countingWriter{w: dst}
	w, err := envelope.Encrypt(ctx, written, kr, &envelope.EncryptOptions{Context: c.context.ctx, ChunkSize: c.chunkSize})
	if err != nil {
		return err
	}
	p := env.newProgress("encrypting "+quoteUntrusted(displayName(c.in)), "B", size)
	n, err := copyContext(ctx, w, progressReader{src, p})
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := dst.commit(); err != nil {
		return err
	}
	p.done()
	return c.result(env, formatGeoseal, n, written.n)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// copyContext is io.Copy that stops when ctx is done (an interrupt).
func copyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("interrupted: %w", err)
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
