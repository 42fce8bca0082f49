package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope/blobstore"
)

var getHelp = `Usage:

	geoseal get URL DST [keys] [--require-context KEY=VALUE]... [--offset N --length N]
	        [--format azure-cse-v2|azure-cse-v1 [--key-id KID]] [--seal-names] [--no-overwrite] [--json]
	geoseal get --container NAME --blob NAME --out DST ...

get downloads the geoseal object in the blob URL names and writes its
plaintext to DST ("-": stdout). Every chunk is authenticated before any of
its bytes are written; on any failure get exits 1 with a one-line reason
and leaves no DST file. With --offset/--length it fetches only the header
and the chunks of the range (plus the final chunk when the range reaches
the end). Reading stores nothing, so the region guard is not asked.

The result is one line, on stdout (on stderr when DST is stdout): how many
bytes of which blob were written where.

` + outHelp + `
` + containerHelp + `
Keys (at least one that can unwrap):

` + keyringHelp("") + `
Flags:

	--blob NAME                  the blob, with --container
	--out FILE                   DST, as a flag
	--no-overwrite               refuse to replace an existing DST file
	--require-context KEY=VALUE  refuse an object without this context pair
	--offset N, --length N       a plaintext range (default: all)
	--format FORMAT              geoseal (default): read geoseal objects only; or
	                             azure-cse-v2: read Azure client-side encryption
	                             v2 blobs too (the .NET, Java and Python SDKs'
	                             format, told apart by the blob's "encryptiondata"
	                             metadata), with one key: --key-file (32-byte
	                             A256KW key) or --rsa-private with --key-id, or a
	                             single --keyvault. With --require-context every
	                             CSE v2 blob is refused: the format has no context
	                             to check (nor any authenticated metadata), so it
	                             cannot hold the pairs required.
	                             azure-cse-v1: read CSE v1 blobs too (and v2), the
	                             SDKs' older AES-CBC format, which HAS NO
	                             INTEGRITY PROTECTION: a modified blob decrypts to
	                             altered data without any error, so get says so on
	                             stderr whenever it reads one, whatever --quiet
	                             says. Convert such blobs with geoseal migrate.
	                             --require-context refuses them too.
	--allow-cse-v2               the same as --format azure-cse-v2
	--key-id KID                 the id of --key-file or --rsa-private as a CSE
	                             blob's metadata names it
	--seal-names                 the blob name is a logical name (see below)
	--json                       print the result as JSON (container, blob, url,
	                             out, size)
` + sealNamesHelp + `

Exit status: 0, or 1 on any error.
`

type getCmd struct {
	where          containerFlags
	read           readFlags
	out            string
	offset, length int64
	noOverwrite    bool
	json           bool
}

func (c *getCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	c.read.register(fs)
	fs.StringVar(&c.out, "out", "", "plaintext file, or - for stdout")
	fs.Int64Var(&c.offset, "offset", 0, "first plaintext byte")
	fs.Int64Var(&c.length, "length", -1, "plaintext bytes from --offset (default: to the end)")
	fs.BoolVar(&c.noOverwrite, "no-overwrite", false, "refuse to replace an existing file")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// readFlags are the flags of the commands that open a blob (get, stat):
// the keys, the context required, and whether Azure CSE v2 (and v1) is
// read.
type readFlags struct {
	keys           keyringFlags
	requireContext contextFlag
	format         string
	allowCSEv2     bool
	keyID          string
	sealNames      bool
}

func (f *readFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.requireContext, "require-context", "required context pair KEY=VALUE (repeatable)")
	fs.StringVar(&f.format, "format", formatGeoseal, "geoseal, or azure-cse-v2 (azure-cse-v1) to read Azure CSE v2 (and v1) blobs too")
	fs.BoolVar(&f.allowCSEv2, "allow-cse-v2", false, "the same as --format azure-cse-v2")
	fs.StringVar(&f.keyID, "key-id", "", "key id of --key-file or --rsa-private for Azure CSE blobs")
	registerSealNames(fs, &f.sealNames)
	f.keys.register(fs)
}

// readCSE checks the format flags and reports whether CSE v2 blobs are to
// be read, and CSE v1 blobs too (--format azure-cse-v1 reads both).
func (f *readFlags) readCSE() (v2, v1 bool, err error) {
	v2 = f.allowCSEv2
	switch f.format {
	case formatCSEv2:
		v2 = true
	case formatCSEv1:
		v2, v1 = true, true
	case formatGeoseal:
	default:
		return false, false, usageErrorf("unknown --format %s (want geoseal, azure-cse-v2 or azure-cse-v1)", quoteUntrusted(f.format))
	}
	if f.keyID != "" && !v2 {
		return false, false, usageErrorf("--key-id needs --format azure-cse-v2 or azure-cse-v1")
	}
	if v2 && f.sealNames {
		return false, false, usageErrorf("--seal-names reads geoseal objects only: Azure CSE blobs have no sealed names")
	}
	return v2, v1, nil
}

// open connects to the container of loc and returns the blob client that
// opens its blobs with the keys.
//
// Blobs written with Azure client-side encryption v2 are read only when
// asked for: the format authenticates none of its metadata and has no
// context, and with an RSA key anyone holding the public key can write one,
// so a blob swapped for one must not be read silently. A read that
// requires context refuses them whatever the flags say (the blob client
// does, with envelope.ErrContextMismatch, before any unwrap). CSE v1, which
// has no integrity at all, is read only with --format azure-cse-v1.
func (f *readFlags) open(ctx context.Context, env *environment, loc location, cl *closers) (*blobstore.Client, *store, error) {
	readCSEv2, readCSEv1, err := f.readCSE()
	if err != nil {
		return nil, nil, err
	}
	s, err := env.openContainer(loc)
	if err != nil {
		return nil, nil, err
	}
	kr, err := f.keys.build(ctx, env, "decrypt", cl)
	if err != nil {
		return nil, nil, err
	}
	opts := &blobstore.ClientOptions{SealNames: f.sealNames}
	if readCSEv2 && len(f.requireContext.ctx) == 0 {
		_, resolver, err := cseKEK(ctx, env, &f.keys, f.keyID, false)
		if err != nil {
			return nil, nil, err
		}
		opts.CSEv2, opts.ReadCSEv1 = resolver, readCSEv1
	}
	client, err := blobstore.NewClient(s.cc, kr, readGuard(), opts)
	return client, s, err
}

// getResult is get's --json output.
type getResult struct {
	Container string `json:"container"`
	Blob      string `json:"blob"`
	URL       string `json:"url"`
	Out       string `json:"out"`
	Format    string `json:"format"`
	Size      int64  `json:"size"`
}

func (c *getCmd) run(ctx context.Context, env *environment, args []string) error {
	rawURL := ""
	switch {
	case len(args) == 2 && c.out == "":
		rawURL, c.out = args[0], args[1]
	case len(args) == 1:
		rawURL = args[0]
	case len(args) > 0:
		return usageErrorf("get takes URL and DST (or --container, --blob and --out)")
	}
	loc, err := c.where.locate(rawURL)
	if err != nil {
		return err
	}
	if loc.blob == "" || c.out == "" {
		return usageErrorf("get needs a blob and where to write it: geoseal get URL DST (DST - is stdout)")
	}
	if c.offset < 0 || c.length < -1 {
		return usageErrorf("--offset and --length must not be negative")
	}
	var cl closers
	defer cl.close()
	client, s, err := c.read.open(ctx, env, loc, &cl)
	if err != nil {
		return err
	}
	dst, err := createOutput(c.out, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer dst.abort()
	opts := &blobstore.DownloadOptions{RequireContext: c.read.requireContext.ctx}
	ranged := c.offset != 0 || c.length >= 0
	if ranged {
		// A Range count of 0 means "to the end": an empty range asks for
		// one byte, which proves the offset is within the blob, and
		// writes none.
		opts.Range = blob.HTTPRange{Offset: c.offset, Count: max(c.length, 1)}
		if c.length < 0 {
			opts.Range.Count = 0
		}
	}
	dl, err := client.Download(ctx, loc.blob, opts)
	if err != nil {
		return s.fail(err)
	}
	defer dl.Body.Close()
	if dl.Properties.Format == blobstore.FormatCSEv1 {
		// Whatever --quiet says: nothing authenticates what is written.
		fmt.Fprintf(env.stderr, v1Warning, quoteUntrusted(loc.blob))
	}
	size := dl.Properties.Size // authenticated: the final chunk was verified
	total := size
	if ranged {
		// The blob client cuts a range at the end, and gives an empty one
		// past it; a range past the end is a mistake to say.
		_, n, err := plaintextRange(c.offset, c.length, size)
		if err != nil {
			return err
		}
		total = n
	}
	var body io.Reader = dl.Body
	if total == 0 {
		body = strings.NewReader("") // --length 0: the one byte fetched was a check
	}
	p := env.newProgress("downloading "+quoteUntrusted(loc.blob), "B", total)
	n, err := copyContext(ctx, dst, progressReader{body, p})
	if err != nil {
		return s.fail(err)
	}
	if err := dst.commit(); err != nil {
		return err
	}
	p.done()
	res := getResult{Container: s.loc.container, Blob: loc.blob, URL: s.loc.blobURL(loc.blob), Out: c.out, Format: dl.Properties.Format, Size: n}
	return env.result(c.out == "-", c.json, res, "wrote %d bytes (%s) of %s to %s", n, humanBytes(n), res.URL, quoteUntrusted(displayOut(c.out)))
}
