package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

var statHelp = `Usage:

	geoseal stat URL [keys] [--require-context KEY=VALUE]... [--format azure-cse-v2|azure-cse-v1 [--key-id KID]] [--seal-names] [--json]
	geoseal stat --container NAME --blob NAME ...

stat shows the authenticated properties of the blob URL names, without
downloading it: the plaintext size (the final chunk was verified), the
encryption context and the wrapped data keys (provider, key id, algorithm:
who can open it), authenticated by unwrapping the data key with a key given
and verifying the header tag and the final chunk; and the blob's ETag,
last-modified time and size. It costs what opening the blob costs: a HEAD
and a ranged GET or two, and one unwrap. (geoseal inspect shows a header
without a key, unauthenticated; geoseal ls lists many blobs from metadata.)

` + containerHelp + `
Keys (at least one that can unwrap):

` + keyringHelp("") + `
Flags:

	--blob NAME                  the blob, with --container
	--require-context KEY=VALUE  refuse an object without this context pair
	--format FORMAT              geoseal (default), or azure-cse-v2 to open
	                             Azure CSE v2 blobs too, or azure-cse-v1 to open
	                             CSE v1 blobs too, which nothing authenticates
	                             (see geoseal get --help)
	--allow-cse-v2               the same as --format azure-cse-v2
	--key-id KID                 the id of --key-file or --rsa-private as a CSE
	                             blob's metadata names it
	--seal-names                 the blob name is a logical name (see below); the
	                             metadata shown is then the sealed metadata,
	                             authenticated
	--json                       print JSON: container, blob, url, format, size,
	                             encrypted_size, etag, last_modified, context,
	                             wrapped_keys [{provider, key_id, algorithm,
	                             wrapped_size}], authenticated, metadata,
	                             metadata_authenticated, name_sealed, stored_name
` + sealNamesHelp + `

Exit status: 0, or 1 on any error.
`

type statCmd struct {
	where containerFlags
	read  readFlags
	json  bool
}

func (c *statCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	c.read.register(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// statResult is `geoseal stat --json`.
type statResult struct {
	Container     string            `json:"container"`
	Blob          string            `json:"blob"`
	URL           string            `json:"url"`
	Format        string            `json:"format"`
	Size          int64             `json:"size"`
	EncryptedSize int64             `json:"encrypted_size"`
	ETag          string            `json:"etag"`
	LastModified  time.Time         `json:"last_modified"`
	Context       map[string]string `json:"context"`
	WrappedKeys   []wrappedKeyInfo  `json:"wrapped_keys"`
	Authenticated bool              `json:"authenticated"`
	// Metadata is the blob's user metadata: sealed, and so authenticated,
	// with --seal-names (MetadataAuthenticated), in the clear otherwise.
	Metadata              map[string]string `json:"metadata"`
	MetadataAuthenticated bool              `json:"metadata_authenticated"`
	// NameSealed reports a blob with a sealed name, StoredName (with
	// --seal-names) the name it is stored as.
	NameSealed bool   `json:"name_sealed"`
	StoredName string `json:"stored_name,omitempty"`
}

func (c *statCmd) run(ctx context.Context, env *environment, args []string) error {
	loc, err := c.where.locateArg(args)
	if err != nil {
		return err
	}
	if loc.blob == "" {
		return usageErrorf("stat needs a blob: geoseal stat URL")
	}
	var cl closers
	defer cl.close()
	client, s, err := c.read.open(ctx, env, loc, &cl)
	if err != nil {
		return err
	}
	props, err := client.GetProperties(ctx, loc.blob, &blobstore.GetPropertiesOptions{RequireContext: c.read.requireContext.ctx})
	if err != nil {
		return s.fail(err)
	}
	out := statResult{
		Container: loc.container, Blob: loc.blob, URL: s.loc.blobURL(loc.blob), Format: props.Format,
		Size: props.Size, EncryptedSize: props.EncryptedSize, ETag: string(props.ETag), LastModified: props.LastModified.UTC(),
		Context: map[string]string(props.Context), WrappedKeys: wrappedKeyInfos(props.WrappedKeys),
		// CSE v1 has no integrity: its size comes from a padding nothing
		// authenticates.
		Authenticated: props.Format != blobstore.FormatCSEv1,
	}
	if !out.Authenticated {
		fmt.Fprintf(env.stderr, v1Warning, quoteUntrusted(loc.blob))
	}
	if out.Context == nil {
		out.Context = map[string]string{}
	}
	out.Metadata, out.MetadataAuthenticated, out.NameSealed = map[string]string{}, c.read.sealNames, props.NameSealed
	for k, v := range props.Metadata {
		if v != nil {
			out.Metadata[k] = *v
		}
	}
	if c.read.sealNames {
		out.StoredName = props.StoredName
	}
	if c.json {
		return printJSON(env.stdout, out)
	}
	w := env.stdout
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "blob:\t%s\n", out.URL)
	fmt.Fprintf(tw, "format:\t%s\n", out.Format)
	fmt.Fprintf(tw, "plaintext:\t%d bytes (%s)\n", out.Size, humanBytes(out.Size))
	fmt.Fprintf(tw, "blob size:\t%d bytes\n", out.EncryptedSize)
	fmt.Fprintf(tw, "etag:\t%s\n", quoteUntrusted(out.ETag))
	fmt.Fprintf(tw, "last modified:\t%s\n", out.LastModified.Format(time.RFC3339))
	if len(out.Context) == 0 {
		fmt.Fprintf(tw, "context:\t(none)\n")
	}
	for _, k := range slices.Sorted(maps.Keys(out.Context)) {
		fmt.Fprintf(tw, "context:\t%s=%s\n", quoteUntrusted(k), quoteUntrusted(out.Context[k]))
	}
	switch {
	case out.StoredName != "":
		fmt.Fprintf(tw, "name:\tsealed, stored as %s\n", s.loc.blobURL(out.StoredName))
	case out.NameSealed:
		fmt.Fprintf(tw, "name:\tsealed (geoseal stat --seal-names with the logical name shows it)\n")
	}
	mdNote := "in the clear, not authenticated"
	if out.MetadataAuthenticated {
		mdNote = "sealed"
	}
	for _, k := range slices.Sorted(maps.Keys(out.Metadata)) {
		fmt.Fprintf(tw, "metadata:\t%s=%s (%s)\n", quoteUntrusted(k), quoteUntrusted(out.Metadata[k]), mdNote)
	}
	tw.Flush()
	writeWrappedKeys(w, out.WrappedKeys)
	if !out.Authenticated {
		_, err = fmt.Fprintln(w, "(NOT authenticated: Azure client-side encryption v1 has no integrity protection)")
		return err
	}
	_, err = fmt.Fprintln(w, "(authenticated: a key given opened the object; its header tag and final chunk verified)")
	return err
}
