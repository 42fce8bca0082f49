package main

import (
	"context"
	"crypto"
	"flag"
	"fmt"
	"strings"

	"github.com/geoseal/geoseal/keyring"
)

// keyringFlags are the flags that name key-encryption keys. Each is
// repeatable; all the keys given together form one keyring.NewMulti,
// which wraps for every one of them and unwraps with whichever can.
type keyringFlags struct {
	prefix        string // "" or "to-" (rewrap's new keys)
	keyFiles      listFlag
	rsaPublic     listFlag
	rsaPrivate    listFlag
	keyVault      listFlag
	pkcs11Modules listFlag
	pkcs11Tokens  listFlag
	pkcs11Keys    listFlag
	pkcs11SHA1    bool
	// fromEnv names the variables the keys came from, when no key flag
	// was given (GEOSEAL_KEY_FILE, GEOSEAL_KEYVAULT).
	fromEnv []string
}

func (k *keyringFlags) register(fs *flag.FlagSet) {
	p := k.prefix
	fs.Var(&k.keyFiles, p+"key-file", "local AES-256 key file (from geoseal keygen)")
	fs.Var(&k.rsaPublic, p+"rsa-public", "RSA public key PEM (wrap only)")
	fs.Var(&k.rsaPrivate, p+"rsa-private", "RSA private key PEM")
	fs.Var(&k.keyVault, p+"keyvault", "Azure Key Vault / Managed HSM key URL")
	fs.Var(&k.pkcs11Modules, p+"pkcs11-module", "PKCS#11 module path")
	fs.Var(&k.pkcs11Tokens, p+"pkcs11-token", "PKCS#11 token label")
	fs.Var(&k.pkcs11Keys, p+"pkcs11-key", "PKCS#11 key label")
	fs.BoolVar(&k.pkcs11SHA1, p+"pkcs11-oaep-sha1", false, "RSA-OAEP with SHA-1 for PKCS#11 RSA keys (SoftHSM2)")
}

// given reports whether any key flag was given.
func (k *keyringFlags) given() bool {
	return len(k.keyFiles)+len(k.rsaPublic)+len(k.rsaPrivate)+len(k.keyVault)+
		len(k.pkcs11Modules)+len(k.pkcs11Tokens)+len(k.pkcs11Keys) > 0 || k.pkcs11SHA1
}

// useEnvDefaults fills in the keys of $GEOSEAL_KEY_FILE and
// $GEOSEAL_KEYVAULT when no key flag was given: the flags, as a group,
// win over the environment, so that --keyvault alone never also wraps for
// a key file named in the environment. New keys (--to-*) are never taken
// from the environment: a rotation names them.
func (k *keyringFlags) useEnvDefaults(env *environment) {
	if k.prefix != "" || k.given() || k.fromEnv != nil {
		return
	}
	k.fromEnv = []string{}
	if f := env.getenv(envKeyFile); f != "" {
		k.keyFiles = append(k.keyFiles, f)
		k.fromEnv = append(k.fromEnv, envKeyFile)
	}
	if u := env.getenv(envKeyVault); u != "" {
		k.keyVault = append(k.keyVault, u)
		k.fromEnv = append(k.fromEnv, envKeyVault)
	}
}

// keyringHelp documents the keyring flags; prefix is "" or "to-".
func keyringHelp(prefix string) string {
	rows := []struct{ flag, text string }{
		{"key-file FILE", "local AES-256 key (geoseal keygen; mode 0600)"},
		{"rsa-public PEM", "RSA public key (PKIX or PKCS#1 PEM): wraps only"},
		{"rsa-private PEM", "RSA private key (PKCS#8 or PKCS#1 PEM, mode 0600)"},
		{"keyvault KEY-URL", "Azure Key Vault or Managed HSM key,\nhttps://VAULT/keys/NAME[/VERSION]; credentials from\nazidentity's default chain (environment, workload or\nmanaged identity, az login)"},
		{"pkcs11-module PATH", "PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so"},
		{"pkcs11-token LABEL", "the token's label"},
		{"pkcs11-key LABEL", "the key's label (an AES key, or an RSA key pair);\nthe user PIN is read from $" + envPKCS11PIN},
		{"pkcs11-oaep-sha1", "RSA-OAEP with SHA-1 for PKCS#11 RSA keys (SoftHSM2\nsupports no other; refused under GODEBUG=fips140=only)"},
	}
	width := 0
	for _, r := range rows {
		width = max(width, len("--"+prefix+r.flag))
	}
	var b strings.Builder
	for _, r := range rows {
		for i, line := range strings.Split(r.text, "\n") {
			name := ""
			if i == 0 {
				name = "--" + prefix + r.flag
			}
			fmt.Fprintf(&b, "\t%-*s  %s\n", width, name, line)
		}
	}
	b.WriteString("\tEach is repeatable (PKCS#11 flags in matching triples): several keys\n" +
		"\ttogether wrap every data key for each of them, and any one of them unwraps.\n")
	if prefix == "" {
		b.WriteString("\tWith no key flag, the keys of $" + envKeyFile + " and $" + envKeyVault + " are used.\n")
	}
	return b.String()
}

// closers collects what must be released when a command ends.
type closers []func() error

func (c *closers) close() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// build returns the keyring the flags name. purpose is "encrypt" (public
// keys are enough) or "decrypt" (every key must be able to unwrap). The
// caller must run cl.close() when done (PKCS#11 sessions).
func (k *keyringFlags) build(ctx context.Context, env *environment, purpose string, cl *closers) (keyring.Keyring, error) {
	krs, err := k.buildEach(ctx, env, purpose, cl)
	if err != nil {
		return nil, err
	}
	switch len(krs) {
	case 0:
		hint := ""
		if k.prefix == "" {
			hint = " (or set $" + envKeyFile + " or $" + envKeyVault + ")"
		}
		return nil, usageErrorf("no key given: use --%[1]skey-file, --%[1]srsa-public/--%[1]srsa-private, --%[1]skeyvault or --%[1]spkcs11-*%[2]s", k.prefix, hint)
	case 1:
		return krs[0], nil
	}
	return keyring.NewMulti(krs[0], krs[1:]...), nil
}

// buildEach returns the keyrings the flags (or the environment's
// defaults) name, one per key, and none when no key is given: build makes
// them one keyring, audit describes each.
func (k *keyringFlags) buildEach(ctx context.Context, env *environment, purpose string, cl *closers) ([]keyring.Keyring, error) {
	k.useEnvDefaults(env)
	var krs []keyring.Keyring
	if purpose == "decrypt" && len(k.rsaPublic) > 0 {
		return nil, fmt.Errorf("--%srsa-public cannot decrypt; give --%srsa-private", k.prefix, k.prefix)
	}
	for _, f := range k.keyFiles {
		kr, err := keyring.LoadAESKeyFile(f, nil)
		if err != nil {
			return nil, err
		}
		krs = append(krs, kr)
	}
	for _, f := range k.rsaPublic {
		kr, err := keyring.LoadRSAPublicPEM(f, nil)
		if err != nil {
			return nil, err
		}
		krs = append(krs, kr)
	}
	for _, f := range k.rsaPrivate {
		kr, err := keyring.LoadRSAPrivatePEM(f, nil)
		if err != nil {
			return nil, err
		}
		krs = append(krs, kr)
	}
	if len(k.keyVault) > 0 {
		cred, err := env.azureCredential("--" + k.prefix + "keyvault")
		if err != nil {
			return nil, err
		}
		for _, u := range k.keyVault {
			kr, err := keyring.NewKeyVault(ctx, u, cred, &keyring.KeyVaultOptions{ClientOptions: env.keyVaultOptions()})
			if err != nil {
				return nil, fmt.Errorf("--%skeyvault %s: %w", k.prefix, u, err)
			}
			krs = append(krs, kr)
		}
	}
	n := len(k.pkcs11Keys)
	if len(k.pkcs11Modules) != n || len(k.pkcs11Tokens) != n {
		return nil, fmt.Errorf("--%[1]spkcs11-module, --%[1]spkcs11-token and --%[1]spkcs11-key go together (got %d, %d and %d)",
			k.prefix, len(k.pkcs11Modules), len(k.pkcs11Tokens), n)
	}
	pin := env.getenv(envPKCS11PIN)
	if n > 0 && pin == "" {
		return nil, fmt.Errorf("PKCS#11 needs the user PIN in $%s", envPKCS11PIN)
	}
	for i := range n {
		opts := &keyring.PKCS11Options{
			Module:     k.pkcs11Modules[i],
			TokenLabel: k.pkcs11Tokens[i],
			KeyLabel:   k.pkcs11Keys[i],
			PIN:        pin,
		}
		if k.pkcs11SHA1 {
			opts.OAEPHash = crypto.SHA1
		}
		// Without cgo, NewPKCS11 fails with keyring.ErrPKCS11NoCgo.
		kr, err := keyring.NewPKCS11(opts)
		if err != nil {
			return nil, fmt.Errorf("PKCS#11 key %s/%s: %w", opts.TokenLabel, opts.KeyLabel, err)
		}
		*cl = append(*cl, kr.Close)
		krs = append(krs, kr)
	}
	return krs, nil
}
