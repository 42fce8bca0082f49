package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/region"
)

var putHelp = `Usage:

	geoseal put --container NAME --blob NAME --in FILE [keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--context KEY=VALUE]... [--chunk-size N] [--create-container] [--json]

put asks the region guard whether the container's storage account may hold
data under --policy, then encrypts --in ("-": stdin) in this process and
uploads it as a geoseal object: the header in the first block, the body in
4 MiB blocks, the block list committed only when everything is staged (a
failed upload leaves the previous blob, or none). If the guard refuses, put
exits 3 with the guard's explanation and nothing is sent.

` + containerHelp + `
` + guardHelp + `
Keys (at least one; the data key is wrapped for each):

` + keyringHelp("") + `
Flags:

	--blob NAME             the blob name (default: the base name of --in)
	--in FILE               the plaintext, or - for stdin
	--context KEY=VALUE     encryption context pair (repeatable; in the clear)
	--chunk-size N          plaintext bytes per chunk (power of two, 4 KiB-16 MiB)
	--create-container      create the container if it does not exist
	--json                  print the result as JSON (blob, sizes, etag, decision)

Exit status: 0 uploaded, 3 refused by the region policy, 1 any other error.
`

type putCmd struct {
	where     containerFlags
	guard     guardFlags
	keys      keyringFlags
	in        string
	context   contextFlag
	chunkSize int
	create    bool
	json      bool
}

func (c *putCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	c.guard.register(fs)
	fs.StringVar(&c.in, "in", "", "plaintext file, or - for stdin")
	fs.Var(&c.context, "context", "encryption context KEY=VALUE (repeatable)")
	fs.IntVar(&c.chunkSize, "chunk-size", 0, "plaintext bytes per chunk")
	fs.BoolVar(&c.create, "create-container", false, "create the container if missing")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.keys.register(fs)
}

func (c *putCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	if c.in == "" {
		return usageErrorf("--in is required")
	}
	if c.where.blob == "" {
		if c.in == "-" {
			return usageErrorf("--blob is required with --in -")
		}
		c.where.blob = filepath.Base(c.in)
	}
	guard, err := c.guard.build(env, c.keys.keyVault)
	if err != nil {
		return err
	}
	cc, err := env.containerClient(&c.where)
	if err != nil {
		return err
	}
	// Ask the guard before anything else (the keyring included), so a
	// refusal costs nothing and says so; Upload asks again itself.
	if _, err := guard.CheckURL(ctx, cc.URL()); err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	kr, err := c.keys.build(ctx, env, "encrypt", &cl)
	if err != nil {
		return err
	}
	src, size, closeIn, err := openInput(c.in, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	fail := func(err error) error {
		return &blobError{container: c.where.container, blob: c.where.blob, canCreate: !c.create, err: err}
	}
	if c.create {
		if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return fail(err)
		}
	}
	client, err := envelope.NewBlobClient(cc, kr, guard, nil)
	if err != nil {
		return err
	}
	p := env.newProgress("uploading "+c.where.blob, "B", size)
	resp, err := client.Upload(ctx, c.where.blob, progressReader{src, p}, &envelope.UploadOptions{Context: c.context.ctx, ChunkSize: c.chunkSize})
	if err != nil {
		return fail(err)
	}
	p.done()
	d := resp.Decision
	if c.json {
		out := map[string]any{
			"container": c.where.container, "blob": c.where.blob, "url": cc.NewBlobClient(c.where.blob).URL(),
			"size": resp.Size, "encrypted_size": resp.EncryptedSize,
		}
		if resp.ETag != nil {
			out["etag"] = string(*resp.ETag)
		}
		if d != nil {
			out["decision"] = decisionJSON{d.Allowed, d.Policy, d.Reason, d.Rule}
		}
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "uploaded %s (%d bytes, %d encrypted) to %s/%s\n", c.in, resp.Size, resp.EncryptedSize, c.where.container, c.where.blob)
	if d != nil {
		fmt.Fprintf(env.stdout, "region guard: allowed under %s: %s\n", d.Policy, d.Reason)
	}
	return nil
}

// decisionJSON is the region decision as put and rewrap print it.
type decisionJSON struct {
	Allowed bool        `json:"allowed"`
	Policy  string      `json:"policy"`
	Reason  string      `json:"reason"`
	Rule    region.Rule `json:"rule"`
}
