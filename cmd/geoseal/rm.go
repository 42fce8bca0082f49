package main

import (
	"context"
	"flag"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

var rmHelp = `Usage:

	geoseal rm URL [--delete-snapshots] [--json]
	geoseal rm URL --seal-names [keys] ...
	geoseal rm --container NAME --blob NAME ...

rm deletes the blob URL names, geoseal object or not; it reads nothing and
needs no key. A blob with snapshots is not deleted unless
--delete-snapshots deletes them with it. With soft delete on in the
account, the blob can be undeleted for the retention period, still under
its keys. With --seal-names the blob is named by its logical name, which a
key that unwraps the container's name key maps to the stored name. The
container's name key itself, .geoseal/names.key, is never deleted: every
sealed name would go with it.
` + sealNamesHelp + `
` + containerHelp + `
Keys (with --seal-names):

` + keyringHelp("") + `
Flags:

	--blob NAME           the blob, with --container
	--delete-snapshots    delete the blob's snapshots too
	--seal-names          the blob name is a logical name (above)
	--json                print the result as JSON (container, blob, url,
	                      deleted, and with --seal-names stored_name)

Exit status: 0 deleted, 1 on any error (a missing blob included).
`

type rmCmd struct {
	where           containerFlags
	deleteSnapshots bool
	sealNames       bool
	keys            keyringFlags
	json            bool
}

func (c *rmCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, true)
	fs.BoolVar(&c.deleteSnapshots, "delete-snapshots", false, "delete the blob's snapshots too")
	registerSealNames(fs, &c.sealNames)
	c.keys.register(fs)
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
	var cl closers
	defer cl.close()
	var client *blobstore.Client
	var s *store
	switch {
	case c.sealNames:
		if err := checkSealKeys(env, &c.keys); err != nil {
			return err
		}
		client, s, err = env.openSealed(ctx, loc, &c.keys, &cl)
	case c.keys.given():
		return usageErrorf("rm needs no key, except with --seal-names")
	default:
		client, s, err = env.openKeyless(loc)
	}
	if err != nil {
		return err
	}
	resp, err := client.Delete(ctx, loc.blob, &blobstore.DeleteOptions{DeleteSnapshots: c.deleteSnapshots})
	if err != nil {
		return s.fail(err)
	}
	url := s.loc.blobURL(loc.blob)
	res := map[string]any{"container": loc.container, "blob": loc.blob, "url": url, "deleted": true}
	if !c.sealNames {
		return env.result(false, c.json, res, "deleted %s", url)
	}
	res["stored_name"] = resp.StoredName
	return env.result(false, c.json, res, "deleted %s (%s)", url, storedAs(s, resp.StoredName))
}
