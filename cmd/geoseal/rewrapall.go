package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/region"
)

var rewrapAllHelp = `Usage:

	geoseal rewrap-all CONTAINER-URL [--prefix P] [keys] [new keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT) [--json]
	geoseal rewrap-all --container NAME ...

rewrap-all does what geoseal rewrap does for every geoseal object in the
container whose name starts with --prefix (or the URL's path after the
container), several at a time: the rotation of a key-encryption key, or the
revocation of a recipient, across a container. Blobs that are not geoseal
objects are skipped (--verbose lists them). A blob that fails does not stop
the others; each failure is printed. Unless --quiet, it first counts the
geoseal objects from the listing (a request per 5,000 blobs), so that its
progress says how many remain and when it will end.

` + containerHelp + `
` + guardHelp + `
Keys that open the objects now:

` + keyringHelp("") + `
New keys:

` + keyringHelp("to-") + `
Flags:

	--prefix P    only blobs whose names start with P
	--json        print the result as JSON (rewrapped, skipped, failed)

Exit status: 0 all rewrapped, 3 refused by the region policy, 1 if any blob
failed or on any other error.
`

type rewrapAllCmd struct {
	rewrapFlags
	prefix string
	json   bool
}

func (c *rewrapAllCmd) flags(fs *flag.FlagSet) {
	c.rewrapFlags.register(fs, false)
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// listPrefix is the prefix of a command over a container's blobs: the
// path a URL gives after the container, or --prefix, not both.
func listPrefix(loc location, prefix string) (string, error) {
	switch {
	case loc.blob != "" && prefix != "":
		return "", usageErrorf("give the prefix in the URL or with --prefix, not both")
	case loc.blob != "":
		return loc.blob, nil
	}
	return prefix, nil
}

// countGeoseal counts the geoseal objects under prefix by the listing's
// metadata, as RewrapAll classes them: the total its progress reports
// against. It costs a request per page of 5,000 blobs.
func countGeoseal(ctx context.Context, client *blobstore.Client, prefix string) (int64, error) {
	var n int64
	pager := client.NewListPager(&blobstore.ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, it := range page.Items {
			if it.Format == blobstore.FormatGeoseal {
				n++
			}
		}
	}
	return n, nil
}

func (c *rewrapAllCmd) run(ctx context.Context, env *environment, args []string) error {
	loc, err := c.where.locateArg(args)
	if err != nil {
		return err
	}
	if c.prefix, err = listPrefix(loc, c.prefix); err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	client, s, newKR, err := c.client(ctx, env, loc, &cl)
	if err != nil {
		return err
	}
	total := int64(-1)
	if !env.common.quiet {
		if total, err = countGeoseal(ctx, client, c.prefix); err != nil {
			return s.fail(err)
		}
	}
	p := env.newProgress("rewrapping "+quoteUntrusted(loc.container), "blobs", total)
	resp, err := client.RewrapAll(ctx, newKR, &blobstore.RewrapAllOptions{
		Prefix:   c.prefix,
		Progress: func(rp blobstore.RewrapProgress) { p.set(int64(rp.Done), 0) },
	})
	p.done()
	var v *region.Violation
	if errors.As(err, &v) && resp.Rewrapped == 0 {
		return err
	}
	if c.json {
		failed := []map[string]string{}
		for _, f := range resp.Failed {
			failed = append(failed, map[string]string{"blob": f.Blob, "error": oneLine(redactSAS(f.Err.Error()))})
		}
		skipped := resp.Skipped
		if skipped == nil {
			skipped = []string{}
		}
		if err := printJSON(env.stdout, map[string]any{"container": loc.container, "prefix": c.prefix, "rewrapped": resp.Rewrapped, "skipped": skipped, "failed": failed}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "rewrapped %d blobs in %s; %d skipped (not geoseal objects); %d failed\n", resp.Rewrapped, s.loc.containerURL(), len(resp.Skipped), len(resp.Failed))
		if env.common.verbose {
			// Blob names are chosen by whoever can write to the container.
			for _, s := range resp.Skipped {
				fmt.Fprintf(env.stdout, "  skipped %s\n", quoteUntrusted(s))
			}
		}
	}
	for _, f := range resp.Failed {
		be := s.blobError(f.Err)
		be.blob = f.Blob
		line, _ := describe(ctx, be)
		fmt.Fprintln(env.stderr, shorten(oneLine(redactSAS("geoseal rewrap-all: "+quoteUntrusted(f.Blob)+": "+line)), maxLine))
	}
	if err != nil {
		if len(resp.Failed) == 0 {
			return s.fail(err)
		}
		return shown{err}
	}
	return nil
}
