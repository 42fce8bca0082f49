package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
)

var getHelp = `Usage:

	geoseal get URL DST [keys] [--require-context KEY=VALUE]... [--offset N --length N]
	        [--format azure-cse-v2 [--key-id KID]] [--no-overwrite] [--json]
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
	--allow-cse-v2               the same as --format azure-cse-v2
	--key-id KID                 the id of --key-file or --rsa-private as a CSE v2
	                             blob's metadata names it
	--json                       print the result as JSON (container, blob, url,
	                             out, size)

Exit status: 0, or 1 on any error.
`

type getCmd struct {
	where          containerFlags
	keys           keyringFlags
	out            string
	requireContext contextFlag
	offset, length int64
	format         string
	allowCSEv2     bool
	keyID          string
	noOverwrite    bool
	json           bool
}

func (c *getCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	fs.StringVar(&c.out, "out", "", "plaintext file, or - for stdout")
	fs.Var(&c.requireContext, "require-context", "required context pair KEY=VALUE (repeatable)")
	fs.Int64Var(&c.offset, "offset", 0, "first plaintext byte")
	fs.Int64Var(&c.length, "length", -1, "plaintext bytes from --offset (default: to the end)")
	fs.StringVar(&c.format, "format", formatGeoseal, "geoseal, or azure-cse-v2 to read Azure CSE v2 blobs too")
	fs.BoolVar(&c.allowCSEv2, "allow-cse-v2", false, "the same as --format azure-cse-v2")
	fs.StringVar(&c.keyID, "key-id", "", "key id of --key-file or --rsa-private for Azure CSE v2 blobs")
	fs.BoolVar(&c.noOverwrite, "no-overwrite", false, "refuse to replace an existing file")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.keys.register(fs)
}

// getResult is get's --json output.
type getResult struct {
	Container string `json:"container"`
	Blob      string `json:"blob"`
	URL       string `json:"url"`
	Out       string `json:"out"`
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
	readCSEv2 := c.allowCSEv2
	switch c.format {
	case formatCSEv2:
		readCSEv2 = true
	case formatGeoseal:
	default:
		return usageErrorf("unknown --format %s (want geoseal or azure-cse-v2)", quoteUntrusted(c.format))
	}
	if c.keyID != "" && !readCSEv2 {
		return usageErrorf("--key-id needs --format azure-cse-v2")
	}
	s, err := env.openContainer(loc)
	if err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	kr, err := c.keys.build(ctx, env, "decrypt", &cl)
	if err != nil {
		return err
	}
	// Blobs written with Azure client-side encryption v2 are read only when
	// asked for: the format authenticates none of its metadata and has no
	// context, and with an RSA key anyone holding the public key can write
	// one, so a blob swapped for one must not be read silently. A read
	// that requires context refuses them whatever the flags say.
	var opts0 *envelope.BlobClientOptions
	switch {
	case len(c.requireContext.ctx) > 0:
		opts0 = &envelope.BlobClientOptions{CSEv2: refuseCSEv2{}}
	case readCSEv2:
		_, resolver, err := cseKEK(ctx, env, &c.keys, c.keyID, false)
		if err != nil {
			return err
		}
		opts0 = &envelope.BlobClientOptions{CSEv2: csev2.BlobReader(resolver, nil)}
	}
	client, err := envelope.NewBlobClient(s.cc, kr, readGuard(), opts0)
	if err != nil {
		return err
	}
	dst, err := createOutput(c.out, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer dst.abort()
	fail, blobName := s.fail, s.loc.blob
	opts := &envelope.DownloadOptions{RequireContext: c.requireContext.ctx}
	var r io.ReadCloser
	if c.offset != 0 || c.length >= 0 {
		if c.length == 0 {
			// DownloadRange reads count 0 as "to the end"; an empty range
			// is empty.
			return dst.commit()
		}
		r, err = client.DownloadRange(ctx, blobName, c.offset, max(c.length, 0), opts)
	} else {
		r, err = client.Download(ctx, blobName, opts)
	}
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	p := env.newProgress("downloading "+quoteUntrusted(blobName), "B", -1)
	n, err := copyContext(ctx, dst, progressReader{r, p})
	if err != nil {
		return fail(err)
	}
	if err := dst.commit(); err != nil {
		return err
	}
	p.done()
	res := getResult{Container: s.loc.container, Blob: blobName, URL: s.loc.blobURL(blobName), Out: c.out, Size: n}
	return env.result(c.out == "-", c.json, res, "wrote %d bytes (%s) of %s to %s", n, humanBytes(n), res.URL, quoteUntrusted(displayOut(c.out)))
}

// errCSEv2NoContext is how get refuses an Azure client-side encryption v2
// blob when --require-context is given: the format has no encryption
// context, so it can hold none of the pairs required. It matches
// envelope.ErrContextMismatch, as a geoseal object lacking a pair does.
var errCSEv2NoContext = fmt.Errorf("%w: Azure client-side encryption v2 has no encryption context", envelope.ErrContextMismatch)

// refuseCSEv2 is the CSE v2 reader of a get that requires context: it
// refuses every such blob before its key is unwrapped. (The blob client
// will refuse them itself under RequireContext once issue 11.2's library
// half lands; this keeps the CLI closed until then, and costs nothing
// after.)
type refuseCSEv2 struct{}

func (refuseCSEv2) DownloadCSEv2(context.Context, *blob.Client, int64, int64) (io.ReadCloser, error) {
	return nil, errCSEv2NoContext
}
