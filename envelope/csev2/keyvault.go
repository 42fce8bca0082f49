package csev2

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// The default wrap algorithm is RSA-OAEP-256 (for RSA keys); pass
// WriterOptions.KeyWrapAlgorithm "A256KW" for a Managed HSM AES key. RSA-OAEP
// with SHA-1 runs in the vault, not in this process, so FIPS 140-only mode
// does not refuse it here; the vault's own validation applies.
func KeyVaultKEK(client *azkeys.Client, keyID string) (KeyEncryptionKey, error) {
	if client == nil {
		return nil, errors.New("csev2: nil azkeys.Client")
	}
	name, version, err := parseKeyVaultID(keyID)
	if err != nil {
		return nil, err
	}
	return &vaultKEK{client: client, id: keyID, name: name, version: version}, nil
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
	if version == "" {
		resp, err := client.GetKey(ctx, name, "", nil)
		if err != nil {
			return nil, fmt.Errorf("csev2: current version of %s: %w", keyURL, err)
		}
		if resp.Key == nil || resp.Key.KID == nil {
			return nil, fmt.Errorf("csev2: current version of %s: the vault returned no key id", keyURL)
		}
		keyURL = string(*resp.Key.KID)
	}
	return KeyVaultKEK(client, keyURL)
}

// KeyVaultResolver returns a KeyResolver for blobs whose key id names a
// version of the Key Vault or Managed HSM key at keyURL
// (https://VAULT/keys/NAME): it resolves each such key id to a KeyVaultKEK,
// so blobs written before and after a rotation of the key all decrypt, and
// refuses any other key id with ErrKeyNotFound before a request is made. A
// keyURL with a version accepts that version only.
func KeyVaultResolver(client *azkeys.Client, keyURL string) (KeyResolver, error) {
	if client == nil {
		return nil, errors.New("csev2: nil azkeys.Client")
	}
	vault, name, version, err := kvurl.Parse(keyURL)
	if err != nil {
		return nil, fmt.Errorf("csev2: %w", err)
	}
	return KeyResolverFunc(func(_ context.Context, keyID string) (KeyEncryptionKey, error) {
		v, n, ver, err := kvurl.Parse(keyID)
		if err != nil || v != vault || !strings.EqualFold(n, name) || ver == "" || (version != "" && ver != version) {
			return nil, fmt.Errorf("%w: the metadata names %q, not a version of %s", ErrKeyNotFound, keyID, keyURL)
		}
		return KeyVaultKEK(client, keyID)
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
}

func (k *vaultKEK) KeyID() string                   { return k.id }
func (k *vaultKEK) defaultKeyWrapAlgorithm() string { return AlgorithmRSAOAEP256 }

func (k *vaultKEK) WrapKey(ctx context.Context, algorithm string, key []byte) ([]byte, error) {
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

func (k *vaultKEK) UnwrapKey(ctx context.Context, algorithm string, wrapped []byte) ([]byte, error) {
	alg := azkeys.EncryptionAlgorithm(algorithm)
	resp, err := k.client.UnwrapKey(ctx, k.name, k.version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: wrapped}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Result, nil
}
