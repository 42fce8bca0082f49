package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
)

var rewrapHelp = `Usage:

	geoseal rewrap URL [keys] [new keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT) [--seal-names] [--json]
	geoseal rewrap --container NAME --blob NAME ...

rewrap rotates the key-encryption keys of one blob: it unwraps the object's
data key with the keys given, wraps it with the new keys (--to-*), and
replaces only the header block; no chunk is downloaded, re-encrypted or
uploaded. Afterwards only the new keys open the object. The commit is
conditional on the blob's ETag: a blob changed meanwhile is left alone. A
new header is a write, so the region guard is asked first.

Revoking a key takes more than a rewrap: snapshots and previous versions of
the blob keep the old header and still open with the old key, as do
soft-deleted copies and backups. Delete them (geoseal rewrap-all
--delete-snapshots reports and deletes snapshots and versions), or disable
the old key in Key Vault or the HSM.

` + containerHelp + `
` + guardHelp + `
Keys that open the object now:

` + keyringHelp("") + `
New keys (the object will be wrapped for exactly these):

` + keyringHelp("to-") + `
Flags:

	--blob NAME    the blob, with --container
	--seal-names   the blob name is a logical name (below)
	--json         print the result as JSON
` + sealNamesHelp + `
Exit status: 0 rewrapped, 3 refused by the region policy, 1 any other error.
`

type rewrapCmd struct {
	rewrapFlags
	json bool
}

// rewrapFlags are the flags rewrap and rewrap-all share: where, the guard,
// the keys that open the objects now and the new ones.
type rewrapFlags struct {
	where     containerFlags
	guard     guardFlags
	keys, to  keyringFlags
	sealNames bool
}

func (f *rewrapFlags) register(fs *flag.FlagSet, withBlob bool) {
	f.where.register(fs, withBlob)
	f.guard.register(fs)
	registerSealNames(fs, &f.sealNames)
	f.to.prefix = "to-"
	f.keys.register(fs)
	f.to.register(fs)
}

func (c *rewrapCmd) flags(fs *flag.FlagSet) {
	c.rewrapFlags.register(fs, true)
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// client builds the blob client (opened with the current keys) and the new
// keys, once the guard has allowed the account.
func (f *rewrapFlags) client(ctx context.Context, env *environment, loc location, cl *closers) (*blobstore.Client, *store, keyring.Wrapper, error) {
	// The new header is wrapped for the new keys: theirs are the vaults
	// that will hold the means of decryption.
	guard, err := f.guard.build(env, f.to.keyVault)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := env.openContainer(loc)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := guard.CheckURL(ctx, s.loc.containerURL()); err != nil {
		return nil, nil, nil, err
	}
	kr, err := f.keys.build(ctx, env, "decrypt", cl)
	if err != nil {
		return nil, nil, nil, err
	}
	newKR, err := f.to.build(ctx, env, "encrypt", cl)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("new keys: %w", err)
	}
	client, err := blobstore.NewClient(s.cc, kr, guard, &blobstore.ClientOptions{SealNames: f.sealNames})
	if err != nil {
		return nil, nil, nil, err
	}
	return client, s, newKR, nil
}

func (c *rewrapCmd) run(ctx context.Context, env *environment, args []string) error {
	loc, err := c.where.locateArg(args)
	if err != nil {
		return err
	}
	if loc.blob == "" {
		return usageErrorf("rewrap needs a blob: geoseal rewrap URL")
	}
	var cl closers
	defer cl.close()
	client, s, newKR, err := c.client(ctx, env, loc, &cl)
	if err != nil {
		return err
	}
	resp, err := client.Rewrap(ctx, loc.blob, newKR, nil)
	if err != nil {
		return s.fail(err)
	}
	if c.json {
		wk := wrappedKeyInfos(resp.WrappedKeys)
		out := map[string]any{"container": loc.container, "blob": loc.blob, "url": s.loc.blobURL(loc.blob), "header_size": resp.HeaderSize, "wrapped_keys": wk}
		if c.sealNames {
			out["stored_name"] = resp.StoredName
		}
		return printJSON(env.stdout, out)
	}
	sealed := ""
	if c.sealNames {
		sealed = " (" + storedAs(s, resp.StoredName) + ")"
	}
	fmt.Fprintf(env.stdout, "rewrapped %s%s: new %d-byte header, wrapped for %s\n", s.loc.blobURL(loc.blob), sealed, resp.HeaderSize, describeKeys(resp.WrappedKeys))
	return nil
}

func describeKeys(keys []keyring.WrappedKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s %s (%s)", quoteUntrusted(k.Provider), quoteUntrusted(k.KeyID), quoteUntrusted(k.Algorithm)))
	}
	return strings.Join(s, ", ")
}
