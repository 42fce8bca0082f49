package csev2

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/geoseal/geoseal/internal/kvurl"
)

// KeyVaultKEK returns a key-encryption key held in Azure Key Vault or Managed
// HSM: wrap and unwrap run in the vault, through client, and the key never
// enters the process. keyID is the versioned key URL
// (https://VAULT/keys/NAME/VERSION), which is what the SDKs store as KeyId;
// a URL without a version is refused, because unwrapping with "the latest
// version" breaks when the key rotates.
//
// The key's type decides the wrap algorithms the vault is asked for: A256KW
// for an AES key (oct, oct-HSM, as in Managed HSM), RSA-OAEP-256 (the default
// for writing) or RSA-OAEP for an RSA key of at least keyring.MinRSABits;
// whatever a blob's metadata names, nothing else is sent to the vault. The
// KEK learns the type with one GET of the key, the first time it needs it,
// so the principal needs the keys/get permission as well as wrapKey or
// unwrapKey. RSA-OAEP with SHA-1 is refused in FIPS 140-only mode, as it is
// for a local key.
func KeyVaultKEK(client *azkeys.Client, keyID string) (KeyEncryptionKey, error) {
	return newVaultKEK(client, keyID, new(vaultKeyTypes))
}

func newVaultKEK(client *azkeys.Client, keyID string, types *vaultKeyTypes) (*vaultKEK, error) {
	if client == nil {
		return nil, errors.New("csev2: nil azkeys.Client")
	}
	name, version, err := parseKeyVaultID(keyID)
	if err != nil {
		return nil, err
	}
	return &vaultKEK{client: client, id: keyID, name: name, version: version, types: types}, nil
}

// CurrentKeyVaultKEK is KeyVaultKEK for writing with the current version of
// a key: when keyURL names no version (https://VAULT/keys/NAME), it asks the
// vault for the key's current version, one GET, and returns a KEK bound to
// that versioned key id, which is what the blob's metadata will record.
func CurrentKeyVaultKEK(ctx context.Context, client *azkeys.Client, keyURL string) (KeyEncryptionKey, error) {
	if client == nil {
		return nil, errors.New("csev2: nil azkeys.Client")
	}
	_, name, version, err := kvurl.Parse(keyURL)
	if err != nil {
		return nil, fmt.Errorf("csev2: %w", err)
	}
	types := new(vaultKeyTypes)
	if version == "" {
		resp, err := client.GetKey(ctx, name, "", nil)
		if err != nil {
			return nil, fmt.Errorf("csev2: current version of %s: %w", keyURL, err)
		}
		if resp.Key == nil || resp.Key.KID == nil {
			return nil, fmt.Errorf("csev2: current version of %s: the vault returned no key id", keyURL)
		}
		keyURL = string(*resp.Key.KID)
		// The same GET says the key's type: writing needs no second one.
		if kt, err := vaultKeyType(resp.Key); err == nil {
			types.put(keyURL, kt)
		}
	}
	return newVaultKEK(client, keyURL, types)
}

// KeyVaultResolver returns a KeyResolver for blobs whose key id names a
// version of the Key Vault or Managed HSM key at keyURL
// (https://VAULT/keys/NAME): it resolves each such key id to a KeyVaultKEK,
// so blobs written before and after a rotation of the key all decrypt, and
// refuses any other key id with ErrKeyNotFound before a request is made. A
// keyURL with a version accepts that version only. The KEKs it returns share
// what they learn of each version's key type, so reading many blobs costs
// one GET per key version, not one per blob.
func KeyVaultResolver(client *azkeys.Client, keyURL string) (KeyResolver, error) {
	if client == nil {
		return nil, errors.New("csev2: nil azkeys.Client")
	}
	vault, name, version, err := kvurl.Parse(keyURL)
	if err != nil {
		return nil, fmt.Errorf("csev2: %w", err)
	}
	types := new(vaultKeyTypes)
	return KeyResolverFunc(func(_ context.Context, keyID string) (KeyEncryptionKey, error) {
		v, n, ver, err := kvurl.Parse(keyID)
		if err != nil || v != vault || !strings.EqualFold(n, name) || ver == "" || (version != "" && ver != version) {
			return nil, fmt.Errorf("%w: the metadata names %q, not a version of %s", ErrKeyNotFound, keyID, keyURL)
		}
		return newVaultKEK(client, keyID, types)
	}), nil
}

// parseKeyVaultID returns the key name and version of a versioned key id,
// https://VAULT/keys/NAME/VERSION: unwrapping with "the latest version"
// would break as soon as the key rotates.
func parseKeyVaultID(keyID string) (name, version string, err error) {
	_, name, version, err = kvurl.Parse(keyID)
	if err != nil {
		return "", "", fmt.Errorf("csev2: Key Vault key id: %w", err)
	}
	if version == "" {
		return "", "", fmt.Errorf("csev2: Key Vault key id %q has no version: want https://VAULT/keys/NAME/VERSION", keyID)
	}
	return name, version, nil
}

type vaultKEK struct {
	client        *azkeys.Client
	id            string
	name, version string
	types         *vaultKeyTypes
}

func (k *vaultKEK) KeyID() string { return k.id }

// KeyType returns the type of the vault's key, asking the vault (one GET)
// the first time.
func (k *vaultKEK) KeyType(ctx context.Context) (KeyType, error) {
	if kt, ok := k.types.get(k.id); ok {
		return kt, nil
	}
	resp, err := k.client.GetKey(ctx, k.name, k.version, nil)
	if err != nil {
		return "", err
	}
	kt, err := vaultKeyType(resp.Key)
	if err != nil {
		return "", err
	}
	k.types.put(k.id, kt)
	return kt, nil
}

// vaultKeyType maps a vault key to the KeyType whose algorithms it may be
// asked for. RSA keys outside [keyring.MinRSABits, 16384] are refused, as
// local ones are.
func vaultKeyType(jwk *azkeys.JSONWebKey) (KeyType, error) {
	if jwk == nil || jwk.Kty == nil {
		return "", errors.New("the vault returned no key type")
	}
	switch *jwk.Kty {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		if err := checkRSABits(new(big.Int).SetBytes(jwk.N).BitLen()); err != nil {
			return "", err
		}
		return KeyTypeRSA, nil
	case azkeys.KeyTypeOct, azkeys.KeyTypeOctHSM:
		return KeyTypeAES, nil
	}
	return "", fmt.Errorf("key type %q cannot wrap keys", *jwk.Kty)
}

// vaultKeyTypes remembers the key type of vault key versions. A version's
// key never changes, so what was learned once stays true. It holds at most
// maxVaultKeyTypes versions: key ids come from blob metadata, and only
// versions the vault confirmed are kept, but the bound keeps a pathological
// container from growing it without end.
type vaultKeyTypes struct {
	mu sync.Mutex
	m  map[string]KeyType
}

const maxVaultKeyTypes = 1024

func (c *vaultKeyTypes) get(kid string) (KeyType, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kt, ok := c.m[kid]
	return kt, ok
}

func (c *vaultKeyTypes) put(kid string, kt KeyType) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]KeyType)
	}
	if len(c.m) < maxVaultKeyTypes {
		c.m[kid] = kt
	}
}

func (k *vaultKEK) WrapKey(ctx context.Context, algorithm string, key []byte) ([]byte, error) {
	if err := checkAlgorithm(ctx, k, algorithm); err != nil {
		return nil, err
	}
	alg := azkeys.EncryptionAlgorithm(algorithm)
	resp, err := k.client.WrapKey(ctx, k.name, k.version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: key}, nil)
	if err != nil {
		return nil, err
	}
	if len(resp.Result) == 0 {
		return nil, errors.New("csev2: Key Vault returned an empty wrapped key")
	}
	return resp.Result, nil
}

// UnwrapKey unwraps in the vault, after checking that algorithm is one of the
// key's type: this KEK never forwards a name such as RSA1_5, whoever calls it.
func (k *vaultKEK) UnwrapKey(ctx context.Context, algorithm string, wrapped []byte) ([]byte, error) {
	if err := checkAlgorithm(ctx, k, algorithm); err != nil {
		return nil, err
	}
	alg := azkeys.EncryptionAlgorithm(algorithm)
	resp, err := k.client.UnwrapKey(ctx, k.name, k.version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: wrapped}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Result, nil
}
