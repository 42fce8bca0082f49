package keyring

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/kvurl"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// ProviderKeyVault is the provider name of the Azure Key Vault and Managed
// HSM keyring, as recorded in its WrappedKeys. Their KeyID is the versioned
// key id, https://{vault}/keys/{name}/{version}, and their Algorithm the Key
// Vault (JWA) algorithm name.
const ProviderKeyVault = "azure-keyvault"

// Key Vault wrapping algorithms, by their azkeys names. New wrapped keys use
// RSA-OAEP-256 (RSA keys) or A256KW (oct-HSM keys, unless
// KeyVaultOptions.Algorithm says otherwise); RSA-OAEP is accepted for
// unwrapping only.
const (
	kvRSAOAEP256 = string(azkeys.EncryptionAlgorithmRSAOAEP256)
	kvRSAOAEP    = string(azkeys.EncryptionAlgorithmRSAOAEP)
	kvA128KW     = string(azkeys.EncryptionAlgorithmA128KW)
	kvA192KW     = string(azkeys.EncryptionAlgorithmA192KW)
	kvA256KW     = string(azkeys.EncryptionAlgorithmA256KW)
)

// ErrKeyVaultKey is matched by the error NewKeyVault returns when the Key
// Vault key exists but cannot serve as a key-encryption key: an RSA key
// smaller than MinRSABits, an elliptic-curve key, a disabled, expired or
// not-yet-valid key, or one whose key_ops do not allow wrapKey and
// unwrapKey.
var ErrKeyVaultKey = errors.New("keyring: unusable Key Vault key")

// KeyVaultOptions configures a Key Vault keyring. The zero value (or nil) is
// valid.
type KeyVaultOptions struct {
	// ClientOptions configures the azkeys client: transport, retries (by
	// default azcore retries 408, 429, 500, 502, 503 and 504 responses
	// three times, honouring Retry-After), telemetry, and
	// DisableChallengeResourceVerification. Nil means the azkeys defaults.
	ClientOptions *azkeys.ClientOptions
	// Logger receives one audit record per Wrap and per unwrap attempt.
	// Nil means no audit.
	Logger *slog.Logger
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many of its own wrapped keys one Unwrap sends to
	// the vault (unwrapkey operations, each retried by azcore as
	// ClientOptions says). Zero means DefaultMaxAttempts.
	MaxAttempts int
	// Algorithm overrides the wrapping algorithm of a symmetric (oct,
	// oct-HSM) key: "A128KW", "A192KW" or "A256KW" (the default), which
	// must match the key's size. RSA keys always wrap with RSA-OAEP-256;
	// setting Algorithm for one is an error.
	Algorithm string
}

// KeyVault is a keyring backed by an Azure Key Vault or Managed HSM key,
// through the azkeys client.
//
// With an RSA key (kty RSA or RSA-HSM), Wrap encrypts the data key locally
// with the key's public half, fetched once by NewKeyVault, using RSA-OAEP
// with SHA-256 (RSA-OAEP-256, FIPS 140 approved): writing objects costs no
// round trip and cannot be throttled. Unwrap asks the vault (the unwrapkey
// operation), so reading needs the unwrapKey permission, and is what a
// [Cache] saves.
//
// With a symmetric key (kty oct-HSM in a Managed HSM, or oct), both Wrap and
// Unwrap run in the HSM with AES key wrap (A256KW, RFC 3394); the key never
// leaves it.
//
// Every WrappedKey records the full versioned key id. Rotating the key in
// the vault does not strand old objects: Unwrap accepts wrapped keys made
// with any version of the same key (same vault, same name) and asks the vault
// to unwrap with the version they name. A KeyVault keeps wrapping with the
// version it resolved when it was created; create a new one to start using a
// newer version.
//
// Neither RSA-OAEP nor AES key wrap can authenticate the encryption
// Context; Wrap and Unwrap ignore it. The envelope format authenticates the
// context with the data key.
//
// RSA-OAEP with SHA-1 ("RSA-OAEP"), written by other tools, is accepted in
// existing wrapped keys and unwrapped by the vault, except in FIPS 140-only
// mode, where it is refused with an error matching ErrNotApproved before any
// request, as the PKCS#11 keyring and package csev2 refuse it: FIPS-only
// mode runs SHA-2 OAEP only, wherever the operation would run. This process
// never computes SHA-1 and never wraps with RSA-OAEP.
//
// A KeyVault is safe for concurrent use.
type KeyVault struct {
	client  *azkeys.Client
	vault   string // https://host, host lower-case, without a default port
	name    string // as the vault spells it
	kid     string // versioned key id resolved at creation
	version string
	pub     *rsa.PublicKey // nil for a symmetric key
	alg     string         // wrapping algorithm of new wrapped keys
	logger  *slog.Logger
	maxKeys int
	// maxAttempts is KeyVaultOptions.MaxAttempts.
	maxAttempts int
	// info is what the key's bundle said of it, for Info.
	info KeyVaultKeyInfo
}

// KeyVaultKeyInfo describes a Key Vault or Managed HSM key as NewKeyVault
// read it: what a compliance review asks of a key-encryption key.
type KeyVaultKeyInfo struct {
	// KeyID is the versioned key id (KeyVault.KeyID).
	KeyID string
	// KeyType is the key's JWK type: RSA, RSA-HSM, oct or oct-HSM.
	KeyType string
	// HSM reports a key held in a hardware security module: a key of an
	// -HSM type, or any key of a Managed HSM. An RSA or oct key of a vault
	// is software-protected.
	HSM bool
	// ManagedHSM reports a key of a Managed HSM (…managedhsm.azure.net).
	ManagedHSM bool
	// Exportable reports that the key's attributes allow it to leave the
	// HSM under a release policy (Exportable is false or absent
	// otherwise).
	Exportable bool
}

// NewKeyVault returns a keyring for the Key Vault or Managed HSM key at
// keyURL, https://{vault-host}/keys/{name} or
// https://{vault-host}/keys/{name}/{version}; without a version, the key's
// current version is used. It reads the key once (GET key), so the
// credential needs the get permission, and checks that it can serve as a
// key-encryption key (see ErrKeyVaultKey). Errors from the service are
// *azcore.ResponseError values, reachable with errors.As.
func NewKeyVault(ctx context.Context, keyURL string, cred azcore.TokenCredential, opts *KeyVaultOptions) (*KeyVault, error) {
	if opts == nil {
		opts = &KeyVaultOptions{}
	}
	vault, name, version, err := kvurl.Parse(keyURL)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if cred == nil {
		return nil, errors.New("keyring: NewKeyVault needs a credential")
	}
	client, err := azkeys.NewClient(vault, cred, opts.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("keyring: Key Vault client for %s: %w", vault, err)
	}
	resp, err := client.GetKey(ctx, name, version, nil)
	if err != nil {
		return nil, fmt.Errorf("keyring: reading Key Vault key %s: %w", keyURL, err)
	}
	k := &KeyVault{client: client, vault: vault, logger: opts.Logger, maxKeys: opts.MaxWrappedKeys, maxAttempts: opts.MaxAttempts}
	if err := k.useKey(resp.KeyBundle, name, opts.Algorithm); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrKeyVaultKey, keyURL, err)
	}
	return k, nil
}

// useKey checks the key bundle NewKeyVault read and takes what it needs.
func (k *KeyVault) useKey(b azkeys.KeyBundle, name, alg string) error {
	jwk := b.Key
	if jwk == nil || jwk.KID == nil || jwk.Kty == nil {
		return errors.New("the service returned no key, key id or key type")
	}
	kidVault, kidName, kidVersion, err := kvurl.Parse(string(*jwk.KID))
	if err != nil || kidVault != k.vault || !strings.EqualFold(kidName, name) || kidVersion == "" {
		return fmt.Errorf("the service returned the key id %s, not a version of %s/keys/%s", untrusted.Quote(string(*jwk.KID)), k.vault, name)
	}
	k.name, k.version = kidName, kidVersion
	k.kid = k.vault + "/keys/" + k.name + "/" + k.version
	k.info = KeyVaultKeyInfo{KeyID: k.kid, KeyType: string(*jwk.Kty), ManagedHSM: kvurl.IsManagedHSM(k.vault)}
	k.info.HSM = k.info.ManagedHSM || strings.HasSuffix(k.info.KeyType, "-HSM")
	if a := b.Attributes; a != nil && a.Exportable != nil {
		k.info.Exportable = *a.Exportable
	}

	if a := b.Attributes; a != nil {
		now := time.Now()
		switch {
		case a.Enabled != nil && !*a.Enabled:
			return errors.New("the key is disabled")
		case a.Expires != nil && now.After(*a.Expires):
			return fmt.Errorf("the key expired at %v", a.Expires.UTC())
		case a.NotBefore != nil && now.Before(*a.NotBefore):
			return fmt.Errorf("the key is not valid before %v", a.NotBefore.UTC())
		}
	}
	// The key's permitted operations bind us even where the vault cannot
	// enforce them: an RSA key is used to wrap locally.
	if len(jwk.KeyOps) > 0 {
		for _, need := range []azkeys.KeyOperation{azkeys.KeyOperationWrapKey, azkeys.KeyOperationUnwrapKey} {
			if !slices.ContainsFunc(jwk.KeyOps, func(op *azkeys.KeyOperation) bool { return op != nil && *op == need }) {
				return fmt.Errorf("the key's key_ops do not include %s", need)
			}
		}
	}

	switch *jwk.Kty {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		if alg != "" {
			return fmt.Errorf("KeyVaultOptions.Algorithm %q is for symmetric keys; RSA keys wrap with %s", alg, kvRSAOAEP256)
		}
		pub, err := keyVaultRSAPublicKey(jwk.N, jwk.E)
		if err != nil {
			return err
		}
		k.pub, k.alg = pub, kvRSAOAEP256
	case azkeys.KeyTypeOct, azkeys.KeyTypeOctHSM:
		switch alg {
		case "":
			alg = kvA256KW
		case kvA128KW, kvA192KW, kvA256KW:
		default:
			return fmt.Errorf("KeyVaultOptions.Algorithm %q is not an AES key wrap algorithm (A128KW, A192KW, A256KW)", alg)
		}
		k.alg = alg
	default:
		return fmt.Errorf("key type %s cannot wrap keys; use an RSA or oct-HSM key", untrusted.Quote(string(*jwk.Kty)))
	}
	return nil
}

func keyVaultRSAPublicKey(n, e []byte) (*rsa.PublicKey, error) {
	// Bound the encodings before any big-number work.
	if len(n) == 0 || len(n) > maxRSABits/8 || len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("the RSA key has a %d-byte modulus and a %d-byte exponent", len(n), len(e))
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if err := keyfile.CheckRSAPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// KeyID returns the versioned key id that Wrap records:
// https://{vault}/keys/{name}/{version}.
func (k *KeyVault) KeyID() string { return k.kid }

// Info describes the key: its type, whether an HSM holds it, whether it
// is exportable. It makes no request (NewKeyVault read the key).
func (k *KeyVault) Info() KeyVaultKeyInfo { return k.info }

// Wrap wraps dek, which must be 32 bytes, with the Key Vault key: locally
// with RSA-OAEP-256 for an RSA key, in the HSM with AES key wrap for a
// symmetric key. ec is not bound (see KeyVault). It returns one WrappedKey.
func (k *KeyVault) Wrap(ctx context.Context, dek []byte, ec Context) (keys []WrappedKey, err error) {
	start := time.Now()
	defer func() { audit(ctx, k.logger, "wrap", ProviderKeyVault, k.kid, k.alg, start, err) }()
	if len(dek) != dataKeySize {
		return nil, fmt.Errorf("keyring: Key Vault keyring wraps %d-byte data keys, got %d bytes", dataKeySize, len(dek))
	}
	var ct []byte
	if k.pub != nil {
		ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, k.pub, dek, nil)
		if err != nil {
			return nil, fmt.Errorf("keyring: RSA-OAEP-256 with %s: %w", k.kid, err)
		}
	} else {
		resp, err := k.client.WrapKey(ctx, k.name, k.version, azkeys.KeyOperationParameters{
			Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(k.alg)),
			Value:     dek,
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("keyring: Key Vault wrapkey with %s: %w", k.kid, err)
		}
		if len(resp.Result) != len(dek)+8 {
			return nil, fmt.Errorf("keyring: Key Vault wrapkey with %s returned %d bytes, want %d", k.kid, len(resp.Result), len(dek)+8)
		}
		ct = resp.Result
	}
	return []WrappedKey{{Provider: ProviderKeyVault, KeyID: k.kid, Algorithm: k.alg, Ciphertext: ct}}, nil
}

// Unwrap asks the vault to unwrap the first of keys that was made with any
// version of this keyring's key, trying them in order, at most MaxAttempts
// of them. Wrapped keys of other providers, vaults or key names are skipped
// without a request. When none unwraps it returns a *NoMatchError whose
// attempts carry the service errors (*azcore.ResponseError, after azcore's
// retries of 429 and 5xx responses).
//
// Only a 400 (the vault could not unwrap this ciphertext) or a 404 (no such
// key version) moves on to the next wrapped key. Any other failure (still
// throttled or failing after azcore's retries, denied, unreachable) stops
// Unwrap: the next wrapped key would cost as many requests and fail the same
// way.
func (k *KeyVault) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := k.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (k *KeyVault) unwrapChecked(ctx context.Context, keys []WrappedKey, _ Context, check func([]byte) error) ([]byte, int, error) {
	l := leaf{
		provider: ProviderKeyVault, logger: k.logger, maxKeys: k.maxKeys, maxAttempts: k.maxAttempts,
		owns:     func(wk WrappedKey) bool { _, ok := k.owns(wk); return ok },
		precheck: k.precheck,
		open: func(wk WrappedKey) ([]byte, error) {
			version, _ := k.owns(wk)
			return k.unwrapOne(ctx, wk, version)
		},
		fatal: keyVaultFatal,
	}
	dek, i, err := l.unwrap(ctx, keys, check)
	var nm *NoMatchError
	if errors.As(err, &nm) && len(nm.Tried) == 0 {
		audit(ctx, k.logger, "unwrap", ProviderKeyVault, k.vault+"/keys/"+k.name, "", time.Now(), errors.New("no wrapped key of this key"))
	}
	return dek, i, err
}

// keyVaultFatal reports whether an unwrapkey error stops Unwrap: anything
// but a 400 or a 404 from the vault.
func keyVaultFatal(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode != http.StatusBadRequest && re.StatusCode != http.StatusNotFound
	}
	return true
}

// owns reports whether wk was made by some version of this key, and which.
func (k *KeyVault) owns(wk WrappedKey) (version string, ok bool) {
	if wk.Provider != ProviderKeyVault {
		return "", false
	}
	vault, name, version, err := kvurl.Parse(wk.KeyID)
	if err != nil || version == "" || vault != k.vault || !strings.EqualFold(name, k.name) {
		return "", false
	}
	return version, true
}

// precheck refuses what no key of this type could have produced before
// asking the vault, so that a hostile object cannot spend our request quota
// on nonsense. Lengths are those of MinRSABits to 16384-bit RSA moduli and of
// a wrapped 32-byte key.
func (k *KeyVault) precheck(wk WrappedKey) error {
	switch {
	case k.pub != nil && (wk.Algorithm == kvRSAOAEP256 || wk.Algorithm == kvRSAOAEP):
		if wk.Algorithm == kvRSAOAEP {
			if err := refuseInFIPSMode("Key Vault RSA-OAEP with SHA-1"); err != nil {
				return err
			}
		}
		if n := len(wk.Ciphertext); n < MinRSABits/8 || n > maxRSABits/8 {
			return fmt.Errorf("keyring: %s wrapped key of %d bytes; no RSA key of %d to %d bits makes that", wk.Algorithm, n, MinRSABits, maxRSABits)
		}
	case k.pub == nil && (wk.Algorithm == kvA128KW || wk.Algorithm == kvA192KW || wk.Algorithm == kvA256KW):
		if n := len(wk.Ciphertext); n != dataKeySize+8 {
			return fmt.Errorf("keyring: %s wrapped key of %d bytes, want %d", wk.Algorithm, n, dataKeySize+8)
		}
	default:
		return fmt.Errorf("keyring: algorithm %s is not one this Key Vault key unwraps: %w", untrusted.Quote(wk.Algorithm), errors.ErrUnsupported)
	}
	return nil
}

// unwrapOne is one unwrapkey request. The Unwrap loop checks (and clears) a
// result that is not a 32-byte data key.
func (k *KeyVault) unwrapOne(ctx context.Context, wk WrappedKey, version string) ([]byte, error) {
	resp, err := k.client.UnwrapKey(ctx, k.name, version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(wk.Algorithm)),
		Value:     wk.Ciphertext,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("keyring: Key Vault unwrapkey with %s: %w", untrusted.Quote(wk.KeyID), err)
	}
	return resp.Result, nil
}
