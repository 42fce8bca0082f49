package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

// --seal-names: the commands that name blobs (put, get, stat, ls, rm,
// rewrap, rewrap-all) take logical names and keep them, the metadata and
// the tags from the storage service (blobstore.ClientOptions.SealNames).
// The container's name key is wrapped by the keys given, so every command
// but a plain ls then needs a key that can unwrap it.

// sealNamesHelp is the help of --seal-names, shared by the commands.
const sealNamesHelp = `
Sealed names (--seal-names): the blob name given is a logical name, stored
as keyed HMAC-SHA-256 hashes of its '/'-separated segments, so the service
sees neither it nor, with put, the --metadata and --tag given (sealed with
AES-256-GCM, and tag tokens). The keys come from the container's name key,
.geoseal/names.key, wrapped by the keys given; the first put --seal-names
creates it. Give --seal-names to every command on such a container; without
it, ls shows the stored names and says they are sealed. Each blob's size,
and when it is written and read, still show.
`

func registerSealNames(fs *flag.FlagSet, v *bool) {
	fs.BoolVar(v, "seal-names", false, "names, metadata and tags are sealed: the blob name is a logical name")
}

// canUnwrap reports whether the keys include one that can unwrap (not only
// RSA public keys), as sealed names need for the container's name key.
func (k *keyringFlags) canUnwrap() bool {
	return len(k.keyFiles)+len(k.rsaPrivate)+len(k.keyVault)+len(k.pkcs11Keys) > 0
}

// openSealed connects to the container of loc for a command that opens no
// object (ls, rm) but names blobs by their logical names: its blob client
// unwraps the container's name key with keys.
func (e *environment) openSealed(ctx context.Context, loc location, keys *keyringFlags, cl *closers) (*blobstore.Client, *store, error) {
	s, err := e.openContainer(loc)
	if err != nil {
		return nil, nil, err
	}
	kr, err := keys.build(ctx, e, "decrypt", cl)
	if err != nil {
		return nil, nil, err
	}
	client, err := blobstore.NewClient(s.cc, kr, readGuard(), &blobstore.ClientOptions{SealNames: true})
	return client, s, err
}

// checkSealKeys refuses --seal-names without a key that can unwrap the
// container's name key.
func checkSealKeys(env *environment, keys *keyringFlags) error {
	keys.useEnvDefaults(env)
	if !keys.canUnwrap() {
		return usageErrorf("--seal-names needs a key that can unwrap the container's name key (--key-file, --rsa-private, --keyvault or --pkcs11-key)")
	}
	return nil
}

// storedAs describes where a sealed name is stored, for a result line.
func storedAs(s *store, stored string) string {
	return fmt.Sprintf("name sealed, stored as %s", s.loc.blobURL(stored))
}
