package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/geoseal/geoseal/keyring"
)

const keygenHelp = `Usage:

	geoseal keygen --out FILE [--json]

keygen draws a random 256-bit AES key from crypto/rand and writes it, in
standard base64 on one line, to FILE, created with mode 0600. It never
overwrites: if anything exists under FILE, keygen fails and leaves it
alone, /dev/null, a FIFO and a symbolic link (even one pointing to
nothing) included, where a key would be lost or land somewhere unexpected.
It prints the key's id (a fingerprint that reveals nothing about the key),
which geoseal inspect shows for the objects the key wraps.

Use the file with --key-file in encrypt, decrypt, put, get and rewrap. For
--format azure-cse-v2 the same file is the A256KW key-encryption key.

A key file is a secret: keep it off shared disks and out of version control,
or better, keep the key in Azure Key Vault or an HSM (--keyvault, --pkcs11-*).

Flags:

	--out FILE  where to write the key: a new regular file (required; refuses
	            anything that exists, stdout included)
	--json      print {"key_file": ..., "key_id": ...} instead of text

Exit status: 0 written, 1 usage error or FILE exists or cannot be written.
`

type keygenCmd struct {
	out  string
	json bool
}

func (c *keygenCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "out", "", "key file to create")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *keygenCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	if c.out == "" || c.out == "-" {
		return usageErrorf("--out FILE is required (keys are not written to stdout)")
	}
	key, err := keyring.GenerateAESKey()
	if err != nil {
		return err
	}
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		return err
	}
	encoded := base64.StdEncoding.EncodeToString(key) + "\n"
	clear(key)
	// O_EXCL: never replace a key, which would strand every object it wraps,
	// and never write one where it would be lost: O_EXCL refuses whatever
	// is at the name already, /dev/null, a FIFO or a symbolic link included
	// (it does not follow links).
	f, err := os.OpenFile(c.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: keygen writes a new regular file and never overwrites anything, nor writes a key to a device, FIFO or link", err)
	}
	if err != nil {
		return err
	}
	// Sync before reporting success: a key lost in a crash strands the
	// objects encrypted with it meanwhile.
	_, err = io.WriteString(f, encoded)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(c.out)
		return err
	}
	if c.json {
		return printJSON(env.stdout, map[string]string{"key_file": c.out, "key_id": kr.KeyID()})
	}
	fmt.Fprintf(env.stdout, "wrote AES-256 key %s to %s (mode 0600)\n", kr.KeyID(), c.out)
	return nil
}
