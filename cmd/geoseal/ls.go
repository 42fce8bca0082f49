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

const lsHelp = `Usage:

	geoseal ls CONTAINER-URL [--prefix P] [--json]
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

` + containerHelp + `
Flags:

	--prefix P   only blobs whose names start with P
	--json       one JSON object per line, one line per blob, as the listing
	             streams: name, format, size (null when unknown),
	             encrypted_size, last_modified, etag

Without --json the result is a table (SIZE, FORMAT, LAST MODIFIED, NAME),
and a last line that counts the blobs by format.

Exit status: 0, or 1 on any error.
`

type lsCmd struct {
	where  containerFlags
	prefix string
	json   bool
}

func (c *lsCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, false)
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
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
	client, s, err := env.openKeyless(loc)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.stdout)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	if !c.json {
		fmt.Fprintln(tw, "SIZE\tFORMAT\tLAST MODIFIED\tNAME")
	}
	counts := map[string]int{}
	total := 0
	pager := client.NewListPager(&blobstore.ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return s.fail(err)
		}
		for _, it := range page.Items {
			total++
			counts[it.Format]++
			e := lsEntry{Name: it.Name, Format: it.Format, EncryptedSize: it.EncryptedSize, LastModified: it.LastModified.UTC(), ETag: string(it.ETag)}
			if it.Size >= 0 {
				e.Size = &it.Size
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", size, e.Format, e.LastModified.Format(time.RFC3339), quoteUntrusted(e.Name))
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
	_, err = fmt.Fprintf(env.stdout, "%s in %s\n", summary, s.loc.containerURL())
	return err
}
