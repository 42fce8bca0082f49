package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

var lsHelp = `Usage:

	geoseal ls CONTAINER-URL [--prefix P] [--json]
	geoseal ls CONTAINER-URL --seal-names [keys] [--prefix P] [--json]
	geoseal ls --container NAME [--prefix P] [--json]

ls lists the blobs of a container whose names start with the URL's path
after the container, or with --prefix: for each its plaintext size, its
format (geoseal, azure-cse-v2, azure-cse-v1, not-encrypted, or unknown
encryption metadata) and its last-modified time. It reads the listing's
metadata alone, a request per page of 5,000 blobs: no blob is read and no
key is needed, so nothing it shows is authenticated (geoseal stat
authenticates a blob). A size the metadata does not vouch for is shown as
"-". Blob names are quoted when they hold spaces, quotes or characters that
do not print.

A blob whose name is sealed (geoseal put --seal-names) is listed by its
stored name, keyed hashes, marked "[sealed name]". With --seal-names and a
key that unwraps the container's name key, ls lists logical names instead
(in the order of their stored names), and --prefix is a logical prefix
matched by whole segments: programs/x57/
lists what is under programs/x57 (a partial segment matches nothing). Without
such a key, --seal-names lists the stored names, and says so.
` + sealNamesHelp + `
` + containerHelp + `
Keys (with --seal-names):

` + keyringHelp("") + `
Flags:

	--prefix P     only blobs whose names start with P
	--seal-names   list logical names (above)
	--json         one JSON object per line, one line per blob, as the listing
	               streams: name, format, size (null when unknown),
	               encrypted_size, last_modified, etag, name_sealed, and with
	               --seal-names stored_name and the sealed metadata

Without --json the result is a table (SIZE, FORMAT, LAST MODIFIED, NAME),
and a last line that counts the blobs by format.

Exit status: 0, or 1 on any error.
`

type lsCmd struct {
	where     containerFlags
	prefix    string
	sealNames bool
	keys      keyringFlags
	json      bool
}

func (c *lsCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, false)
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
	registerSealNames(fs, &c.sealNames)
	c.keys.register(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON lines")
}

// lsEntry is one line of `geoseal ls --json`.
type lsEntry struct {
	Name          string    `json:"name"`
	Format        string    `json:"format"`
	Size          *int64    `json:"size"`
	EncryptedSize int64     `json:"encrypted_size"`
	LastModified  time.Time `json:"last_modified"`
	ETag          string    `json:"etag"`
	// NameSealed marks a blob whose name is sealed; with --seal-names,
	// StoredName is the name it is stored as (Name the logical one, once
	// it opened) and Metadata its sealed metadata.
	NameSealed bool              `json:"name_sealed"`
	StoredName string            `json:"stored_name,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	// SealError says why, with --seal-names, the blob's sealed name did
	// not open.
	SealError string `json:"seal_error,omitempty"`
}

func (c *lsCmd) run(ctx context.Context, env *environment, args []string) error {
	loc, err := c.where.locateArg(args)
	if err != nil {
		return err
	}
	prefix, err := listPrefix(loc, c.prefix)
	if err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	client, s, sealed, err := c.open(ctx, env, loc, prefix, &cl)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.stdout)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	if !c.json {
		fmt.Fprintln(tw, "SIZE\tFORMAT\tLAST MODIFIED\tNAME")
	}
	counts := map[string]int{}
	total, stored, refused := 0, 0, 0
	pager := client.NewListPager(&blobstore.ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return s.fail(err)
		}
		for _, it := range page.Items {
			total++
			counts[it.Format]++
			e := lsEntry{Name: it.Name, Format: it.Format, EncryptedSize: it.EncryptedSize, LastModified: it.LastModified.UTC(), ETag: string(it.ETag), NameSealed: it.NameSealed}
			if it.Size >= 0 {
				e.Size = &it.Size
			}
			shownStored := it.NameSealed && (!sealed || it.SealErr != nil)
			if shownStored {
				stored++
			}
			if sealed && it.NameSealed {
				e.StoredName = it.StoredName
				for k, v := range it.Metadata {
					if e.Metadata == nil {
						e.Metadata = map[string]string{}
					}
					e.Metadata[k] = *v
				}
			}
			if it.SealErr != nil {
				refused++
				e.SealError = oneLine(it.SealErr.Error())
				fmt.Fprintf(env.stderr, "geoseal ls: %s: %s\n", quoteUntrusted(it.StoredName), e.SealError)
			}
			if c.json {
				if err := enc.Encode(e); err != nil {
					return err
				}
				continue
			}
			size := "-"
			if e.Size != nil {
				size = fmt.Sprint(*e.Size)
			}
			name := quoteUntrusted(e.Name)
			if shownStored {
				name += "  [sealed name]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", size, e.Format, e.LastModified.Format(time.RFC3339), name)
		}
		tw.Flush() // a page at a time: a listing of millions streams
	}
	if c.json {
		return nil
	}
	summary := fmt.Sprintf("%d blobs", total)
	var parts []string
	for _, f := range []string{blobstore.FormatGeoseal, blobstore.FormatCSEv2, blobstore.FormatCSEv1, blobstore.FormatNotEncrypted, blobstore.FormatUnknown} {
		if counts[f] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[f], f))
		}
	}
	if len(parts) > 0 {
		summary += ": " + strings.Join(parts, ", ")
	}
	if _, err := fmt.Fprintf(env.stdout, "%s in %s\n", summary, s.loc.containerURL()); err != nil {
		return err
	}
	switch {
	case refused > 0:
		_, err = fmt.Fprintf(env.stdout, "%d sealed names did not open (moved, altered, or sealed under another name key): shown as stored\n", refused)
	case stored > 0 && sealed:
		_, err = fmt.Fprintf(env.stdout, "%d names are sealed and shown as stored\n", stored)
	case stored > 0:
		_, err = fmt.Fprintf(env.stdout, "%d names are sealed and shown as stored: list them with --seal-names and a key that unwraps the container's name key\n", stored)
	}
	return err
}

// open returns the blob client of the listing, and whether it opens
// sealed names: with --seal-names and a key, it does; without a key, ls
// lists the stored names and says so.
func (c *lsCmd) open(ctx context.Context, env *environment, loc location, prefix string, cl *closers) (*blobstore.Client, *store, bool, error) {
	if c.sealNames {
		c.keys.useEnvDefaults(env)
	}
	switch {
	case c.keys.given() && !c.sealNames:
		return nil, nil, false, usageErrorf("ls needs no key, except with --seal-names")
	case c.sealNames && c.keys.given():
		client, s, err := env.openSealed(ctx, loc, &c.keys, cl)
		return client, s, true, err
	case c.sealNames && prefix != "":
		return nil, nil, false, usageErrorf("a prefix with --seal-names is a logical prefix: it needs a key that unwraps the container's name key")
	case c.sealNames && !env.common.quiet:
		fmt.Fprintln(env.stderr, "geoseal ls: no key given: sealed names are shown as stored (--seal-names needs a key that unwraps the container's name key)")
	}
	client, s, err := env.openKeyless(loc)
	return client, s, false, err
}
