package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/geoseal/geoseal/envelope"
)

func init() {
	register(command{
		name:    "encrypt",
		summary: "encrypt a file into a geoseal object (or Azure CSE v2 with --format azure-cse-v2)",
		run:     runEncrypt,
		help:    helpFor(encryptHelp),
	})
}

var encryptHelp = `Usage:

	geoseal encrypt --in FILE --out FILE [keys] [--context KEY=VALUE]... [--chunk-size N] [--quiet]
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
	--quiet               no progress report on stderr
	--format FORMAT       geoseal (default) or azure-cse-v2 (see below)

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

Long operations print progress on stderr after a second: a bar on a
terminal, a line every few seconds otherwise.

Exit status: 0 written, 1 on any error (nothing is left under --out).
`

// commandContext is cancelled by an interrupt, so that an encryption or
// upload stops cleanly and leaves no partial output.
func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flagSet("encrypt", stderr, helpFor(encryptHelp))
	in := fs.String("in", "", "plaintext file, or - for stdin")
	out := fs.String("out", "", "object file, or - for stdout")
	var ec contextFlag
	fs.Var(&ec, "context", "encryption context KEY=VALUE (repeatable)")
	chunkSize := fs.Int("chunk-size", 0, "plaintext bytes per chunk")
	quiet := fs.Bool("quiet", false, "no progress report")
	format := fs.String("format", formatGeoseal, "geoseal or azure-cse-v2")
	var cse cseFlags
	cse.registerEncrypt(fs)
	keys := keyringFlags{}
	keys.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	switch *format {
	case formatCSEv2:
		if len(ec.ctx) > 0 || *chunkSize != 0 {
			return usageError(stderr, "encrypt", "--context and --chunk-size do not apply to --format azure-cse-v2")
		}
		return encryptCSEv2(*in, *out, &keys, &cse, *quiet, stdin, stdout, stderr)
	case formatGeoseal:
		if cse.used() {
			return usageError(stderr, "encrypt", "--key-id, --metadata-out and --region-length need --format azure-cse-v2")
		}
	default:
		return usageError(stderr, "encrypt", "unknown --format %q (want geoseal or azure-cse-v2)", *format)
	}
	if *in == "" || *out == "" {
		return usageError(stderr, "encrypt", "--in and --out are required")
	}
	if *chunkSize < 0 {
		return usageError(stderr, "encrypt", "--chunk-size must be positive")
	}

	if *out == "-" && isTerminal(stdout) {
		return usageError(stderr, "encrypt", "refusing to write ciphertext to a terminal; use --out FILE or a pipe")
	}

	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	kr, err := keys.build(ctx, "encrypt", &cl)
	if err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	src, size, closeIn, err := openInput(*in, stdin)
	if err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	defer closeIn()
	dst, err := createOutput(*out, stdout)
	if err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	defer dst.abort()

	w, err := envelope.Encrypt(ctx, dst, kr, &envelope.EncryptOptions{Context: ec.ctx, ChunkSize: *chunkSize})
	if err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	p := newProgress(stderr, "encrypting "+displayName(*in), "B", size, *quiet)
	if _, err := copyContext(ctx, w, progressReader{src, p}); err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	if err := w.Close(); err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	if err := dst.commit(); err != nil {
		return fail(stderr, "encrypt", exitUsage, err)
	}
	p.done()
	return exitOK
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
