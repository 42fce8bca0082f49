package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/region"
)

var putHelp = `Usage:

	geoseal put SRC URL [keys] --policy NAME (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--context KEY=VALUE]... [--metadata KEY=VALUE]... [--tag KEY=VALUE]... [--seal-names]
	        [--chunk-size N] [--create-container] [--no-overwrite] [--json]
	geoseal put --container NAME [--blob NAME] --in SRC ...
	geoseal put --format azure-cse-v2 SRC URL (--key-file FILE --key-id KID | --rsa-public PEM --key-id KID | --keyvault KEY-URL) ...

put asks the region guard whether the container's storage account may hold
data under --policy, then encrypts SRC ("-": stdin) in this process and
uploads it as a geoseal object to the blob URL names: the header in the
first block, the body in blocks, the block list committed only when
everything is staged, so a failed or interrupted upload leaves the previous
blob, or none. If the guard refuses, put exits 3 with the guard's reason
and nothing is sent. A URL that names a container (or ends in '/') gets
the blob SRC's base name.

Names, metadata and tags: the blob's name, its --metadata and its --tag
(index tags, which Find Blobs by Tags searches) are stored IN THE CLEAR,
for the storage service and anyone who can read the account to see, unless
--seal-names is given.
` + sealNamesHelp + `
` + containerHelp + `
` + guardHelp + `
Keys (at least one; the data key is wrapped for each):

` + keyringHelp("") + `
Flags:

	--in FILE               SRC, as a flag
	--blob NAME             the blob name (default: SRC's base name)
	--context KEY=VALUE     encryption context pair (repeatable; in the clear)
	--metadata KEY=VALUE    blob metadata (repeatable): in the clear, unless
	                        --seal-names; in the clear a KEY is letters, digits
	                        and '_', a VALUE printable ASCII
	--tag KEY=VALUE         blob index tag (repeatable, at most 10): in the
	                        clear, unless --seal-names (then keyed tokens, which
	                        still match by equality)
	--seal-names            seal the name, the metadata and the tags (above)
	--chunk-size N          plaintext bytes per chunk (power of two, 4 KiB-16 MiB)
	--create-container      create the container if it does not exist
	--no-overwrite          refuse to replace an existing blob (it is left as it is)
	--format FORMAT         geoseal (default), or azure-cse-v2: the Azure SDKs'
	                        client-side encryption v2 (as geoseal encrypt writes
	                        it, with its "encryptiondata" metadata), with one key
	--key-id KID            azure-cse-v2: the id of --key-file or --rsa-public
	--region-length N       azure-cse-v2: protocol 2.1 with N-byte regions
	--json                  print the result as JSON (container, blob, url,
	                        format, size, encrypted_size, etag, decision, and
	                        with --seal-names stored_name)

The result is one line on stdout: what was uploaded where, and the guard's
decision.

Exit status: 0 uploaded, 3 refused by the region policy, 1 any other error,
130 interrupted (nothing is committed).
`

type putCmd struct {
	where       containerFlags
	guard       guardFlags
	keys        keyringFlags
	in          string
	context     contextFlag
	metadata    contextFlag
	tags        contextFlag
	sealNames   bool
	chunkSize   int
	create      bool
	noOverwrite bool
	format      string
	cse         cseFlags
	json        bool
}

func (c *putCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	c.guard.register(fs)
	fs.StringVar(&c.in, "in", "", "plaintext file, or - for stdin")
	fs.Var(&c.context, "context", "encryption context KEY=VALUE (repeatable)")
	fs.Var(&c.metadata, "metadata", "blob metadata KEY=VALUE (repeatable; in the clear unless --seal-names)")
	fs.Var(&c.tags, "tag", "blob index tag KEY=VALUE (repeatable; in the clear unless --seal-names)")
	registerSealNames(fs, &c.sealNames)
	fs.IntVar(&c.chunkSize, "chunk-size", 0, "plaintext bytes per chunk")
	fs.BoolVar(&c.create, "create-container", false, "create the container if missing")
	fs.BoolVar(&c.noOverwrite, "no-overwrite", false, "refuse to replace an existing blob")
	fs.StringVar(&c.format, "format", formatGeoseal, "geoseal or azure-cse-v2")
	c.cse.registerPut(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.keys.register(fs)
}

// putResult is put's --json output.
type putResult struct {
	Container     string        `json:"container"`
	Blob          string        `json:"blob"`
	URL           string        `json:"url"`
	Format        string        `json:"format"`
	Size          int64         `json:"size"`
	EncryptedSize int64         `json:"encrypted_size"`
	ETag          string        `json:"etag,omitempty"`
	Decision      *decisionJSON `json:"decision,omitempty"`
	// StoredName is, with --seal-names, the name the blob is stored as.
	StoredName string `json:"stored_name,omitempty"`
}

func (c *putCmd) run(ctx context.Context, env *environment, args []string) error {
	src, rawURL := c.in, ""
	switch {
	case len(args) == 2 && c.in == "":
		src, rawURL = args[0], args[1]
	case len(args) == 1 && c.in != "":
		rawURL = args[0]
	case len(args) > 0:
		return usageErrorf("put takes SRC and URL (or --in and --container)")
	}
	if src == "" {
		return usageErrorf("nothing to upload: give SRC and URL (SRC - is stdin)")
	}
	loc, err := c.where.locate(rawURL)
	if err != nil {
		return err
	}
	if loc.blob == "" || strings.HasSuffix(loc.blob, "/") {
		if src == "-" {
			return usageErrorf("name the blob: stdin has no name to give it")
		}
		loc.blob += path.Base(strings.ReplaceAll(src, `\`, "/"))
	}
	switch c.format {
	case formatGeoseal:
		if c.cse.used() {
			return usageErrorf("--key-id and --region-length need --format azure-cse-v2")
		}
	case formatCSEv2:
		if len(c.context.ctx) > 0 || c.chunkSize != 0 {
			return usageErrorf("--context and --chunk-size do not apply to --format azure-cse-v2")
		}
		if c.sealNames || len(c.metadata.ctx)+len(c.tags.ctx) > 0 {
			return usageErrorf("--seal-names, --metadata and --tag do not apply to --format azure-cse-v2")
		}
	default:
		return usageErrorf("unknown --format %s (want geoseal or azure-cse-v2)", quoteUntrusted(c.format))
	}
	c.keys.useEnvDefaults(env)
	if c.sealNames {
		if err := checkSealKeys(env, &c.keys); err != nil {
			return err
		}
	} else if len(c.metadata.ctx)+len(c.tags.ctx) > 0 && !env.common.quiet {
		fmt.Fprintln(env.stderr, "geoseal put: note: --metadata and --tag are stored in the clear, for the storage service to read; --seal-names seals them")
	}
	guard, err := c.guard.build(env, c.keys.keyVault)
	if err != nil {
		return err
	}
	s, err := env.openContainer(loc)
	if err != nil {
		return err
	}
	// Ask the guard before anything else (the keyring included), so a
	// refusal costs nothing and says so; Upload asks again itself.
	d, err := guard.CheckURL(ctx, s.loc.containerURL())
	if err != nil {
		return err
	}
	in, size, closeIn, err := openInput(ctx, src, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	var cl closers
	defer cl.close()
	up := upload{s: s, ctx: ctx, env: env, noOverwrite: c.noOverwrite}
	if c.format == formatCSEv2 {
		kek, _, err := cseKEK(ctx, env, &c.keys, c.cse.keyID, true)
		if err != nil {
			return err
		}
		up.send = func(r io.Reader, conds *blob.AccessConditions) (upResponse, error) {
			resp, err := csev2.Upload(ctx, s.cc.NewBlockBlobClient(s.loc.blob), r, kek, &csev2.UploadOptions{Encryption: c.cse.writerOptions(), AccessConditions: conds})
			if err != nil {
				return upResponse{}, err
			}
			return upResponse{etag: resp.ETag}, nil
		}
	} else {
		kr, err := c.keys.build(ctx, env, "encrypt", &cl)
		if err != nil {
			return err
		}
		client, err := blobstore.NewClient(s.cc, kr, guard, &blobstore.ClientOptions{SealNames: c.sealNames})
		if err != nil {
			return err
		}
		up.send = func(r io.Reader, conds *blob.AccessConditions) (upResponse, error) {
			resp, err := client.Upload(ctx, s.loc.blob, r, &blobstore.UploadOptions{
				Context: c.context.ctx, ChunkSize: c.chunkSize, AccessConditions: conds,
				Metadata: metadataOf(c.metadata.ctx), Tags: c.tags.ctx,
			})
			if err != nil {
				return upResponse{}, err
			}
			d = resp.Decision
			return upResponse{etag: resp.ETag, size: resp.Size, encrypted: resp.EncryptedSize, stored: resp.StoredName}, nil
		}
	}
	if c.create {
		if _, err := s.cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return s.fail(err)
		}
	}
	resp, err := up.run(in, size, displayName(src))
	if err != nil {
		be := s.blobError(err)
		be.canCreate, be.noOverwrite = !c.create, c.noOverwrite
		return be
	}
	out := putResult{
		Container: s.loc.container, Blob: s.loc.blob, URL: s.loc.blobURL(s.loc.blob), Format: c.format,
		Size: resp.size, EncryptedSize: resp.encrypted,
	}
	if resp.etag != nil {
		out.ETag = string(*resp.etag)
	}
	if d != nil {
		out.Decision = &decisionJSON{d.Allowed, d.Policy, d.Reason, d.Rule}
	}
	sealed := ""
	if c.sealNames {
		out.StoredName = resp.stored
		sealed = " (" + storedAs(s, resp.stored) + ")"
	}
	if c.json {
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "uploaded %s (%s) to %s%s as %s, %s encrypted; region guard: allowed under %s\n",
		quoteUntrusted(displayName(src)), humanBytes(out.Size), out.URL, sealed, out.Format, humanBytes(out.EncryptedSize), d.Policy)
	return nil
}

// upload runs one put: the source through a progress counter, and the
// no-overwrite condition.
type upload struct {
	ctx         context.Context
	env         *environment
	s           *store
	noOverwrite bool
	send        func(io.Reader, *blob.AccessConditions) (upResponse, error)
}

type upResponse struct {
	etag            *azcore.ETag
	size, encrypted int64
	stored          string // the stored name, when names are sealed
}

func (u *upload) run(in io.Reader, size int64, name string) (upResponse, error) {
	var conds *blob.AccessConditions
	if u.noOverwrite {
		conds = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	}
	p := u.env.newProgress("uploading "+quoteUntrusted(name), "B", size)
	var r io.Reader = progressReader{in, p}
	if size >= 0 {
		r = sizedReader{r, size} // so that Upload sizes its blocks for it
	}
	resp, err := u.send(r, conds)
	if err != nil {
		return resp, err
	}
	p.done()
	if resp.size == 0 {
		resp.size = p.count()
	}
	if resp.encrypted == 0 {
		if props, err := u.s.cc.NewBlobClient(u.s.loc.blob).GetProperties(u.ctx, nil); err == nil && props.ContentLength != nil {
			resp.encrypted = *props.ContentLength
		}
	}
	return resp, nil
}

// sizedReader reports the size of what it reads, as blobstore.Upload asks
// a source (a Size method) to plan its blocks.
type sizedReader struct {
	io.Reader
	size int64
}

func (r sizedReader) Size() int64 { return r.size }

// decisionJSON is the region decision as put and rewrap print it.
type decisionJSON struct {
	Allowed bool        `json:"allowed"`
	Policy  string      `json:"policy"`
	Reason  string      `json:"reason"`
	Rule    region.Rule `json:"rule"`
}

// metadataOf turns --metadata pairs into blob metadata.
func metadataOf(pairs map[string]string) map[string]*string {
	if len(pairs) == 0 {
		return nil
	}
	md := make(map[string]*string, len(pairs))
	for k, v := range pairs {
		md[k] = &v
	}
	return md
}
