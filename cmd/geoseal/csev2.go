package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/kvurl"
)

// cseFlags are the flags of --format azure-cse-v2 and azure-cse-v1.
type cseFlags struct {
	keyID        string
	metadata     string // decrypt: the encryptiondata JSON
	metadataOut  string // encrypt: where to write it
	regionLength int64
}

func (c *cseFlags) registerEncrypt(fs *flag.FlagSet) {
	fs.StringVar(&c.keyID, "key-id", "", "CSE v2: key id stored in the metadata")
	fs.StringVar(&c.metadataOut, "metadata-out", "", "CSE v2: file for the encryptiondata JSON")
	fs.Int64Var(&c.regionLength, "region-length", 0, "CSE v2: protocol 2.1 region length")
}

func (c *cseFlags) registerPut(fs *flag.FlagSet) {
	fs.StringVar(&c.keyID, "key-id", "", "CSE v2: key id stored in the metadata")
	fs.Int64Var(&c.regionLength, "region-length", 0, "CSE v2: protocol 2.1 region length")
}

func (c *cseFlags) registerDecrypt(fs *flag.FlagSet) {
	fs.StringVar(&c.keyID, "key-id", "", "CSE: key id of --key-file or --rsa-private")
	fs.StringVar(&c.metadata, "metadata", "", "CSE: the blob's encryptiondata JSON")
}

func (c *cseFlags) used() bool {
	return c.keyID != "" || c.metadata != "" || c.metadataOut != "" || c.regionLength != 0
}

// cseKEK builds the one key-encryption key Azure CSE allows from the keyring
// flags. Encrypting takes a public RSA key; decrypting a private one.
func cseKEK(ctx context.Context, env *environment, keys *keyringFlags, keyID string, encrypt bool) (csev2.KeyEncryptionKey, csev2.KeyResolver, error) {
	keys.useEnvDefaults(env)
	n := len(keys.keyFiles) + len(keys.rsaPublic) + len(keys.rsaPrivate) + len(keys.keyVault)
	if n != 1 || len(keys.pkcs11Keys)+len(keys.pkcs11Modules)+len(keys.pkcs11Tokens) > 0 {
		return nil, nil, errors.New("--format azure-cse-v2 and azure-cse-v1 take exactly one key: --key-file, --rsa-public (encrypt), --rsa-private or --keyvault")
	}
	if len(keys.keyVault) == 1 {
		if keyID != "" {
			return nil, nil, errors.New("--key-id does not apply to --keyvault: the versioned key URL is the key id")
		}
		return keyVaultKEK(ctx, env, keys.keyVault[0], encrypt)
	}
	if keyID == "" {
		return nil, nil, errors.New("--key-id is required with --key-file and --rsa-*: it names the key in the metadata")
	}
	var kek csev2.KeyEncryptionKey
	var err error
	switch {
	case len(keys.keyFiles) == 1:
		var key []byte
		key, err = keyfile.ReadAESKeyFile(keys.keyFiles[0])
		if err == nil {
			kek, err = csev2.LocalAESKEK(keyID, key)
			clear(key)
		}
	case len(keys.rsaPublic) == 1:
		if !encrypt {
			return nil, nil, errors.New("--rsa-public cannot decrypt; give --rsa-private")
		}
		var pub *rsa.PublicKey
		pub, err = keyfile.ReadRSAPublicPEM(keys.rsaPublic[0])
		if err == nil {
			kek, err = csev2.LocalRSAKEK(keyID, nil, pub)
		}
	default:
		var priv *rsa.PrivateKey
		priv, err = keyfile.ReadRSAPrivatePEM(keys.rsaPrivate[0])
		if err == nil {
			kek, err = csev2.LocalRSAKEK(keyID, priv, nil)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return kek, csev2.Keys(kek), nil
}

// keyVaultKEK returns a Key Vault KEK for encrypting (the key's current
// version, if keyURL names none) and a resolver for decrypting that accepts
// the metadata's key id when it is keyURL, or a version of it.
func keyVaultKEK(ctx context.Context, env *environment, keyURL string, encrypt bool) (csev2.KeyEncryptionKey, csev2.KeyResolver, error) {
	vault, _, _, err := kvurl.Parse(keyURL)
	if err != nil {
		return nil, nil, fmt.Errorf("--keyvault: %w", err)
	}
	cred, err := env.azureCredential("--keyvault " + quoteUntrusted(keyURL))
	if err != nil {
		return nil, nil, err
	}
	client, err := azkeys.NewClient(vault, cred, env.keyVaultOptions())
	if err != nil {
		return nil, nil, err
	}
	if !encrypt {
		resolve, err := csev2.KeyVaultResolver(client, keyURL)
		return nil, resolve, err
	}
	kek, err := csev2.CurrentKeyVaultKEK(ctx, client, keyURL)
	return kek, nil, err
}

func encryptCSEv2(ctx context.Context, env *environment, c *encryptCmd) error {
	in, out, keys, cse := c.in, c.out, &c.keys, &c.cse
	if in == "" || out == "" || cse.metadataOut == "" {
		return usageErrorf("--format azure-cse-v2 needs --in, --out and --metadata-out")
	}
	if cse.metadataOut == "-" && out == "-" {
		return usageErrorf("--out and --metadata-out cannot both be stdout")
	}
	if out == "-" && env.terminal(env.stdout) {
		return usageErrorf("refusing to write ciphertext to a terminal; use --out FILE or a pipe")
	}
	kek, _, err := cseKEK(ctx, env, keys, cse.keyID, true)
	if err != nil {
		return err
	}
	src, size, closeIn, err := openInput(ctx, in, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	dst, err := createOutput(out, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer dst.abort()
	md, err := createOutput(cse.metadataOut, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer md.abort()

	written := &countingWriter{w: dst}
	w, err := csev2.NewWriter(ctx, written, kek, cse.writerOptions())
	if err != nil {
		return err
	}
	p := env.newProgress("encrypting "+quoteUntrusted(displayName(in)), "B", size)
	n, err := copyContext(ctx, w, progressReader{src, p})
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	js, err := w.EncryptionData().Marshal()
	if err != nil {
		return err
	}
	if _, err := md.Write(append(js, '\n')); err != nil {
		return err
	}
	if err := dst.commit(); err != nil {
		return err
	}
	if err := md.commit(); err != nil {
		dst.undo() // a body without its metadata cannot be decrypted
		return err
	}
	p.done()
	return c.result(env, formatCSEv2, n, written.n)
}

// writerOptions are the CSE v2 writer's options the flags ask for.
func (c *cseFlags) writerOptions() *csev2.WriterOptions {
	opts := &csev2.WriterOptions{}
	if c.regionLength != 0 {
		opts.Protocol, opts.RegionLength = csev2.Protocol21, c.regionLength
	}
	return opts
}

// v1Warning is what decrypt says on stderr whenever it reads CSE v1.
const v1Warning = "geoseal: warning: %s is Azure client-side encryption v1 (AES-CBC), which has no integrity protection: the plaintext written is not authenticated, and a modified blob can decrypt to altered data without any error. Re-encrypt it into the geoseal format.\n"

// decryptCSE decrypts an Azure CSE blob body: c.format is azure-cse-v2, or
// azure-cse-v1, which also switches on csev2's v1 reading and must match
// the metadata's protocol.
func decryptCSE(ctx context.Context, env *environment, c *decryptCmd) error {
	in, out, cse, format := c.in, c.out, &c.cse, c.format
	if in == "" || out == "" || cse.metadata == "" {
		return usageErrorf("--format %s needs --in, --out and --metadata", format)
	}
	if c.ranged() && in == "-" {
		return usageErrorf("--offset and --length need --in to be a file, not stdin")
	}
	mdBytes, err := readBounded(cse.metadata, env.stdin, csev2.MaxEncryptionDataSize)
	if err != nil {
		return err
	}
	ed, err := csev2.ParseEncryptionData(bytes.TrimSpace(mdBytes))
	if err != nil {
		return fmt.Errorf("%s: %w", cse.metadata, err)
	}
	v1 := ed.EncryptionAgent.Protocol == csev2.Protocol10
	switch {
	case v1 && format != formatCSEv1:
		return usageErrorf("%s is protocol 1.0 (CSE v1, no integrity): read it with --format azure-cse-v1", quoteUntrusted(cse.metadata))
	case !v1 && format == formatCSEv1:
		return usageErrorf("%s is protocol %s, not CSE v1: read it with --format azure-cse-v2", quoteUntrusted(cse.metadata), quoteUntrusted(ed.EncryptionAgent.Protocol))
	}
	_, resolver, err := cseKEK(ctx, env, &c.keys, cse.keyID, false)
	if err != nil {
		return err
	}
	src, size, closeIn, err := openInput(ctx, in, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	dst, err := createOutput(out, env.stdout, c.noOverwrite)
	if err != nil {
		return err
	}
	defer dst.abort()
	if v1 {
		fmt.Fprintf(env.stderr, v1Warning, quoteUntrusted(displayName(in)))
	}

	opts := &csev2.ReaderOptions{ReadCSEv1: v1}
	return c.decryptFile(ctx, env, format, src, size, dst,
		func(f *os.File, size int64) (sizedReaderAt, error) {
			return csev2.NewReaderAt(ctx, f, size, ed, resolver, opts)
		},
		func(r io.Reader) (io.ReadCloser, error) { return csev2.NewReader(ctx, r, ed, resolver, opts) })
}

// readBounded reads at most limit bytes of path ("-": stdin).
func readBounded(path string, stdin io.Reader, limit int64) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
