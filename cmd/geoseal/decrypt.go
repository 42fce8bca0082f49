package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
)

func init() {
	register(command{
		name:    "decrypt",
		summary: "decrypt a geoseal object (or an Azure CSE blob with --format azure-cse-v2 or azure-cse-v1)",
		run:     runDecrypt,
		help:    helpFor(decryptHelp),
	})
}

var decryptHelp = `Usage:

	geoseal decrypt --in FILE --out FILE [keys] [--require-context KEY=VALUE]... [--offset N --length N] [--quiet]
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
	--quiet                    no progress report
	--format FORMAT            geoseal (default), azure-cse-v2 or azure-cse-v1

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

Exit status: 0 success, 1 on any error (a one-line reason on stderr).
`

const (
	formatGeoseal = "geoseal"
	formatCSEv2   = "azure-cse-v2"
	formatCSEv1   = "azure-cse-v1"
)

func runDecrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flagSet("decrypt", stderr, helpFor(decryptHelp))
	in := fs.String("in", "", "object file, or - for stdin")
	out := fs.String("out", "", "plaintext file, or - for stdout")
	var req contextFlag
	fs.Var(&req, "require-context", "required context pair KEY=VALUE (repeatable)")
	offset := fs.Int64("offset", 0, "first plaintext byte")
	length := fs.Int64("length", -1, "plaintext bytes from --offset (default: to the end)")
	quiet := fs.Bool("quiet", false, "no progress report")
	format := fs.String("format", formatGeoseal, "geoseal, azure-cse-v2 or azure-cse-v1")
	var cse cseFlags
	cse.registerDecrypt(fs)
	keys := keyringFlags{}
	keys.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if *offset < 0 || *length < -1 {
		return usageError(stderr, "decrypt", "--offset and --length must not be negative")
	}
	ranged := *offset != 0 || *length >= 0
	switch *format {
	case formatCSEv2, formatCSEv1:
		if len(req.ctx) > 0 {
			return usageError(stderr, "decrypt", "--require-context does not apply to --format %s: Azure client-side encryption has no encryption context", *format)
		}
		return decryptCSE(*format, *in, *out, &keys, &cse, ranged, *offset, *length, *quiet, stdin, stdout, stderr)
	case formatGeoseal:
		if cse.used() {
			return usageError(stderr, "decrypt", "--key-id and --metadata need --format azure-cse-v2 or azure-cse-v1")
		}
	default:
		return usageError(stderr, "decrypt", "unknown --format %q (want geoseal, azure-cse-v2 or azure-cse-v1)", *format)
	}
	if *in == "" || *out == "" {
		return usageError(stderr, "decrypt", "--in and --out are required")
	}
	if ranged && *in == "-" {
		return usageError(stderr, "decrypt", "--offset and --length need --in to be a file, not stdin")
	}

	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	kr, err := keys.build(ctx, "decrypt", &cl)
	if err != nil {
		return fail(stderr, "decrypt", exitUsage, err)
	}
	src, size, closeIn, err := openInput(*in, stdin)
	if err != nil {
		return fail(stderr, "decrypt", exitUsage, err)
	}
	defer closeIn()
	dst, err := createOutput(*out, stdout)
	if err != nil {
		return fail(stderr, "decrypt", exitUsage, err)
	}
	defer dst.abort()

	opts := &envelope.DecryptOptions{RequireContext: req.ctx}
	var plain io.Reader
	total := int64(-1)
	if ranged {
		f, ok := src.(*os.File)
		if !ok || size < 0 {
			return usageError(stderr, "decrypt", "--offset and --length need --in to be a regular file")
		}
		ra, err := envelope.DecryptAt(ctx, f, size, kr, opts)
		if err != nil {
			return fail(stderr, "decrypt", exitUsage, explain(err))
		}
		end := ra.Size()
		if *length >= 0 && *offset+*length < end && *offset+*length >= *offset {
			end = *offset + *length
		}
		start := min(*offset, ra.Size())
		total = end - start
		plain = io.NewSectionReader(ra, start, total)
	} else {
		plain, err = envelope.Decrypt(ctx, src, kr, opts)
		if err != nil {
			return fail(stderr, "decrypt", exitUsage, explain(err))
		}
		total = size // the object's size: a close enough yardstick
	}
	p := newProgress(stderr, "decrypting "+displayName(*in), "B", total, *quiet)
	if _, err := copyContext(ctx, dst, progressReader{plain, p}); err != nil {
		return fail(stderr, "decrypt", exitUsage, explain(err))
	}
	if err := dst.commit(); err != nil {
		return fail(stderr, "decrypt", exitUsage, err)
	}
	p.done()
	return exitOK
}

// explain prefixes errors whose package text is terse for a person at a
// terminal with what they mean; the original error stays in the chain.
func explain(err error) error {
	var nm *keyring.NoMatchError
	switch {
	case errors.As(err, &nm):
		return fmt.Errorf("none of the keys given opens this object: %w", err)
	case errors.Is(err, envelope.ErrBodyTampered):
		return fmt.Errorf("the object was modified, truncated or extended: %w", err)
	case errors.Is(err, envelope.ErrHeaderTampered), errors.Is(err, envelope.ErrCommitment):
		return fmt.Errorf("the object's header was modified: %w", err)
	case errors.Is(err, envelope.ErrContextMismatch):
		return fmt.Errorf("the object's encryption context lacks a --require-context pair: %w", err)
	case errors.Is(err, blobstore.ErrCSEv2NotConfigured):
		return fmt.Errorf("the blob uses Azure client-side encryption v2: which get reads only with --format azure-cse-v2 and its key (--key-id with --key-file or --rsa-private, or --keyvault): %w", err)
	case errors.Is(err, envelope.ErrNotGeoseal):
		return fmt.Errorf("not a geoseal object (for Azure CSE v2 blobs use --format azure-cse-v2): %w", err)
	}
	return err
}
