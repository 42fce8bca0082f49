package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/cryptobyte"

	"github.com/geoseal/geoseal/internal/kvurl"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// TinkKeyVaultScheme starts the Tink key URIs of Azure Key Vault and Managed
// HSM keys: azure-keyvault://{vault-host}/keys/{name}[/{version}], which
// names the key https://{vault-host}/keys/{name}[/{version}].
const TinkKeyVaultScheme = "azure-keyvault://"

// Format of the ciphertexts of the Key Vault Tink AEAD:
//
//	uint8  version (1)
//	uint8  len(alg)     || alg          Key Vault wrapping algorithm
//	uint8  len(kv)      || kv           key version that wrapped the key
//	uint16 len(wrapped) || wrapped      wrapped 256-bit AES key
//	nonce (12) || AES-256-GCM ciphertext || tag (16)
//
// with big-endian lengths. The GCM associated data is tinkKVLabel, the
// header (everything before the nonce) and the caller's associated data.
const (
	tinkKVVersion = 1
	tinkKVLabel   = "geoseal tink azure-keyvault AEAD v1\x00"
	// maxTinkKVWrapped bounds the wrapped key: an RSA-OAEP ciphertext under
	// a 16384-bit key.
	maxTinkKVWrapped  = maxRSABits / 8
	tinkKVGCMOverhead = 12 + 16
)

var (
	errTinkKVFormat = errors.New("keyring: not a Key Vault Tink AEAD ciphertext")
	errTinkKVOpen   = errors.New("keyring: Key Vault Tink AEAD ciphertext does not authenticate (wrong associated data, or corrupted)")
)

// NewTinkKMSClient returns a Tink KMS client (Tink has none for Azure) for the
// Key Vault and Managed HSM keys whose URIs start with keyURIPrefix, such as
// "azure-keyvault://contoso.vault.azure.net/keys/" or a single key's full
// URI. As Tink's own KMS clients do, the prefix limits which keys a keyset
// can make the client use with cred; the bare TinkKeyVaultScheme allows any
// vault. Register the client with registry.RegisterKMSClient, or call
// GetAEAD directly.
//
// GetAEAD builds a [KeyVault] keyring with opts (one GET key per key URI; the
// keyring is kept for later calls, so a versionless URI keeps the version it
// resolved first) and returns an AEAD that is an envelope of its own: Encrypt
// draws a fresh AES-256 key, wraps it with the Key Vault key exactly as
// KeyVault.Wrap does (locally with RSA-OAEP-256 for an RSA key, in the HSM
// with A256KW for an oct-HSM key), and seals the plaintext with AES-256-GCM
// under a random nonce, binding the associated data. Decrypt asks the vault
// to unwrap (with the key version recorded in the ciphertext, so rotation
// does not break old ciphertexts) and opens. The vault's own wrapkey has no
// associated data, hence the local GCM layer; every algorithm involved is
// FIPS 140 approved.
//
// The returned AEAD also implements tink.AEADWithContext; its plain Encrypt
// and Decrypt use context.Background, so bound their time with the retry
// options in opts.ClientOptions.
func NewTinkKMSClient(keyURIPrefix string, cred azcore.TokenCredential, opts *KeyVaultOptions) (registry.KMSClient, error) {
	if !strings.HasPrefix(keyURIPrefix, TinkKeyVaultScheme) {
		return nil, fmt.Errorf("keyring: Tink key URI prefix %s does not start with %s", untrusted.Quote(keyURIPrefix), TinkKeyVaultScheme)
	}
	if cred == nil {
		return nil, errors.New("keyring: NewTinkKMSClient needs a credential")
	}
	c := &tinkKMSClient{prefix: keyURIPrefix, cred: cred, keyrings: map[string]*KeyVault{}}
	if opts != nil {
		c.opts = *opts
	}
	return c, nil
}

type tinkKMSClient struct {
	prefix string
	cred   azcore.TokenCredential
	opts   KeyVaultOptions

	mu       sync.Mutex
	keyrings map[string]*KeyVault // by key URL
}

// Supported reports whether keyURI is a well-formed Key Vault key URI under
// the client's prefix.
func (c *tinkKMSClient) Supported(keyURI string) bool {
	_, err := c.keyURL(keyURI)
	return err == nil
}

func (c *tinkKMSClient) keyURL(keyURI string) (string, error) {
	if !strings.HasPrefix(keyURI, c.prefix) {
		return "", fmt.Errorf("keyring: Tink key URI %s is not under the client's prefix %s", untrusted.Quote(keyURI), untrusted.Quote(c.prefix))
	}
	keyURL := "https://" + strings.TrimPrefix(keyURI, TinkKeyVaultScheme)
	if _, _, _, err := kvurl.Parse(keyURL); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	return keyURL, nil
}

// GetAEAD returns the AEAD of the key keyURI names.
func (c *tinkKMSClient) GetAEAD(keyURI string) (tink.AEAD, error) {
	keyURL, err := c.keyURL(keyURI)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kv := c.keyrings[keyURL]
	if kv == nil {
		opts := c.opts
		kv, err = NewKeyVault(context.Background(), keyURL, c.cred, &opts)
		if err != nil {
			return nil, err
		}
		c.keyrings[keyURL] = kv
	}
	return &keyVaultAEAD{kv: kv}, nil
}

// keyVaultAEAD is the tink.AEAD (and tink.AEADWithContext) of a Key Vault key.
type keyVaultAEAD struct{ kv *KeyVault }

var (
	_ tink.AEAD            = (*keyVaultAEAD)(nil)
	_ tink.AEADWithContext = (*keyVaultAEAD)(nil)
)

func (a *keyVaultAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return a.EncryptWithContext(context.Background(), plaintext, associatedData)
}

func (a *keyVaultAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return a.DecryptWithContext(context.Background(), ciphertext, associatedData)
}

func (a *keyVaultAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	key := make([]byte, dataKeySize)
	rand.Read(key)
	defer clear(key)
	wks, err := a.kv.Wrap(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	wk := wks[0]
	_, _, version, err := kvurl.Parse(wk.KeyID)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var b cryptobyte.Builder
	b.AddUint8(tinkKVVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(wk.Algorithm)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(version)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(wk.Ciphertext) })
	header, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keyring: Key Vault Tink AEAD header: %w", err)
	}
	gcm, err := tinkKVGCM(key)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(header, nil, plaintext, tinkKVAAD(header, associatedData)), nil
}

func (a *keyVaultAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	c, err := parseTinkKVCiphertext(ciphertext)
	if err != nil {
		return nil, err
	}
	wk := WrappedKey{
		Provider:   ProviderKeyVault,
		KeyID:      a.kv.vault + "/keys/" + a.kv.name + "/" + c.version,
		Algorithm:  c.alg,
		Ciphertext: c.wrapped,
	}
	key, err := a.kv.Unwrap(ctx, []WrappedKey{wk}, nil)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	gcm, err := tinkKVGCM(key)
	if err != nil {
		return nil, err
	}
	plaintext, err := gcm.Open(nil, nil, c.sealed, tinkKVAAD(c.header, associatedData))
	if err != nil {
		return nil, errTinkKVOpen
	}
	return plaintext, nil
}

// tinkKVCiphertext is a parsed Key Vault Tink AEAD ciphertext; its slices
// alias the input.
type tinkKVCiphertext struct {
	alg, version    string
	wrapped, sealed []byte
	header          []byte // the bytes before sealed
}

func parseTinkKVCiphertext(ciphertext []byte) (*tinkKVCiphertext, error) {
	s := cryptobyte.String(ciphertext)
	var format uint8
	var alg, version, wrapped cryptobyte.String
	if !s.ReadUint8(&format) || format != tinkKVVersion ||
		!s.ReadUint8LengthPrefixed(&alg) || !s.ReadUint8LengthPrefixed(&version) ||
		!s.ReadUint16LengthPrefixed(&wrapped) || len(wrapped) > maxTinkKVWrapped ||
		len(s) < tinkKVGCMOverhead {
		return nil, errTinkKVFormat
	}
	return &tinkKVCiphertext{
		alg:     string(alg),
		version: string(version),
		wrapped: wrapped,
		sealed:  s,
		header:  ciphertext[:len(ciphertext)-len(s)],
	}, nil
}

func tinkKVGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func tinkKVAAD(header, associatedData []byte) []byte {
	aad := make([]byte, 0, len(tinkKVLabel)+len(header)+len(associatedData))
	aad = append(aad, tinkKVLabel...)
	aad = append(aad, header...)
	return append(aad, associatedData...)
}
