package main

import (
	"context"
	"flag"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

const rmHelp = `Usage:

	geoseal rm URL [--delete-snapshots] [--json]
	geoseal rm --container NAME --blob NAME ...

rm deletes the blob URL names, geoseal object or not; it reads nothing and
needs no key. A blob with snapshots is not deleted unless
--delete-snapshots deletes them with it. With soft delete on in the
account, the blob can be undeleted for the retention period, still under
its keys.

` + containerHelp + `
Flags:

	--blob NAME           the blob, with --container
	--delete-snapshots    delete the blob's snapshots too
	--json                print the result as JSON (container, blob, url, deleted)

Exit status: 0 deleted, 1 on any error (a missing blob included).
`

type rmCmd struct {
	where           containerFlags
	deleteSnapshots bool
	json            bool
}

func (c *rmCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	fs.BoolVar(&c.deleteSnapshots, "delete-snapshots", false, "delete the blob's snapshots too")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *rmCmd) run(ctx context.Context, env *environment, args []string) error {
	loc, err := c.where.locateArg(args)
	if err != nil {
		return err
	}
	if loc.blob == "" {
		return usageErrorf("rm needs a blob: geoseal rm URL")
	}
	client, s, err := env.openKeyless(loc)
	if err != nil {
		return err
	}
	if _, err := client.Delete(ctx, loc.blob, &blobstore.DeleteOptions{DeleteSnapshots: c.deleteSnapshots}); err != nil {
		return s.fail(err)
	}
	url := s.loc.blobURL(loc.blob)
	return env.result(false, c.json, map[string]any{"container": loc.container, "blob": loc.blob, "url": url, "deleted": true}, "deleted %s", url)
}
