package csev2

import (
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/keywrap"
)

// Key wrap algorithm names, as Azure Key Vault and the SDKs spell them.
const (
	// AlgorithmA256KW is AES key wrap (RFC 3394) under a 256-bit key.
	AlgorithmA256KW = "A256KW"
	// AlgorithmRSAOAEP is RSA-OAEP with SHA-1 and MGF1-SHA-1. Not FIPS 140
	// approved in this process: refused in FIPS 140-only mode.
	AlgorithmRSAOAEP = "RSA-OAEP"
	// AlgorithmRSAOAEP256 is RSA-OAEP with SHA-256 and MGF1-SHA-256.
	AlgorithmRSAOAEP256 = "RSA-OAEP-256"
)

// A KeyEncryptionKey wraps and unwraps content keys. It mirrors the SDKs'
// key-encryption-key abstraction (.NET IKeyEncryptionKey, Java
// AsyncKeyEncryptionKey, Python's key_encryption_key object): a key id stored
// in the metadata, and wrap and unwrap by algorithm name.
type KeyEncryptionKey interface {
	// KeyID identifies the key; it is stored in the metadata, and a
	// KeyResolver finds the key by it.
	KeyID() string
	// WrapKey encrypts key with algorithm.
	WrapKey(ctx context.Context, algorithm string, key []byte) ([]byte, error)
	// UnwrapKey decrypts wrapped with algorithm. It must return an error,
	// and no bytes, when wrapped does not authenticate or decrypt.
	UnwrapKey(ctx context.Context, algorithm string, wrapped []byte) ([]byte, error)
}

// A KeyResolver finds the key-encryption key a blob's metadata names.
// Resolve returns an error matching ErrKeyNotFound when it has no such key.
type KeyResolver interface {
	Resolve(ctx context.Context, keyID string) (KeyEncryptionKey, error)
}

// KeyResolverFunc adapts a function to KeyResolver.
type KeyResolverFunc func(ctx context.Context, keyID string) (KeyEncryptionKey, error)

// Resolve calls f.
func (f KeyResolverFunc) Resolve(ctx context.Context, keyID string) (KeyEncryptionKey, error) {
	return f(ctx, keyID)
}

// Keys returns a KeyResolver that resolves each of keks by its KeyID.
func Keys(keks ...KeyEncryptionKey) KeyResolver {
	m := make(map[string]KeyEncryptionKey, len(keks))
	for _, k := range keks {
		m[k.KeyID()] = k
	}
	return KeyResolverFunc(func(_ context.Context, keyID string) (KeyEncryptionKey, error) {
		if k, ok := m[keyID]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
	})
}

// errAlgorithm is returned for an algorithm a key does not implement.
var errAlgorithm = errors.New("csev2: key wrap algorithm not supported by this key")

// LocalAESKEK returns a key-encryption key that wraps with A256KW (RFC 3394
// AES key wrap) under the 32-byte key kek. The key is copied.
//
// The key wrap runs in geoseal's own code (internal/keywrap), which is not
// part of Go's FIPS 140 validated module: in FIPS 140-only mode wrapping and
// unwrapping fail with an error matching ErrNotApproved, before any work.
// Keep such keys in Key Vault, Managed HSM or an HSM instead.
func LocalAESKEK(keyID string, kek []byte) (KeyEncryptionKey, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("csev2: A256KW needs a 32-byte key, got %d bytes", len(kek))
	}
	return &aesKEK{id: keyID, key: append([]byte(nil), kek...)}, nil
}

type aesKEK struct {
	id  string
	key []byte
}

func (k *aesKEK) KeyID() string                            { return k.id }
func (k *aesKEK) KeyType(context.Context) (KeyType, error) { return KeyTypeAES, nil }

func (k *aesKEK) WrapKey(_ context.Context, algorithm string, key []byte) ([]byte, error) {
	if algorithm != AlgorithmA256KW {
		return nil, fmt.Errorf("%w: %q (this key does %s)", errAlgorithm, algorithm, AlgorithmA256KW)
	}
	return localKeyWrap(keywrap.Wrap(k.key, key))
}

func (k *aesKEK) UnwrapKey(_ context.Context, algorithm string, wrapped []byte) ([]byte, error) {
	if algorithm != AlgorithmA256KW {
		return nil, fmt.Errorf("%w: %q (this key does %s)", errAlgorithm, algorithm, AlgorithmA256KW)
	}
	return localKeyWrap(keywrap.Unwrap(k.key, wrapped))
}

// localKeyWrap turns keywrap's FIPS 140-only refusal into this package's.
func localKeyWrap(b []byte, err error) ([]byte, error) {
	if errors.Is(err, keywrap.ErrNotApproved) {
		return nil, errLocalKeyWrap
	}
	return b, err
}

// LocalRSAKEK returns a key-encryption key that wraps with RSA-OAEP-256 (or
// RSA-OAEP, SHA-1, on request) under pub and unwraps with priv. Either may be
// nil (priv alone implies pub): a key with only pub wraps, one without priv
// cannot unwrap.
//
// The key must have keyring.MinRSABits (2048) to 16384 bits. RSA-OAEP with
// SHA-1 is refused in FIPS 140-only mode with an error matching
// ErrNotApproved, before any hashing.
func LocalRSAKEK(keyID string, priv *rsa.PrivateKey, pub *rsa.PublicKey) (KeyEncryptionKey, error) {
	if pub == nil && priv != nil {
		pub = &priv.PublicKey
	}
	if pub == nil {
		return nil, errors.New("csev2: LocalRSAKEK needs a key")
	}
	if priv != nil && !priv.PublicKey.Equal(pub) {
		return nil, errors.New("csev2: LocalRSAKEK: private and public keys differ")
	}
	if err := checkRSABits(pub.N.BitLen()); err != nil {
		return nil, err
	}
	return &rsaKEK{id: keyID, priv: priv, pub: pub}, nil
}

// checkRSABits holds every RSA key that enters this package, local or in a
// vault, to geoseal's one rule for RSA sizes (keyfile.CheckRSABits): at least
// keyring.MinRSABits, as below 2048 bits RSA is not approved for key
// transport (NIST SP 800-131A), and at most keyfile.MaxRSABits, whose wraps
// fill maxWrappedKeySize.
func checkRSABits(bits int) error {
	if err := keyfile.CheckRSABits(bits); err != nil {
		return fmt.Errorf("csev2: %w", err)
	}
	return nil
}

type rsaKEK struct {
	id   string
	priv *rsa.PrivateKey
	pub  *rsa.PublicKey
}

func (k *rsaKEK) KeyID() string                            { return k.id }
func (k *rsaKEK) KeyType(context.Context) (KeyType, error) { return KeyTypeRSA, nil }

// oaepHash returns the hash of an RSA-OAEP algorithm name. It checks the
// FIPS mode before SHA-1 is ever instantiated: SHA-1 hashing panics in
// FIPS 140-only mode.
func oaepHash(algorithm string) (hash.Hash, error) {
	switch algorithm {
	case AlgorithmRSAOAEP256:
		return sha256.New(), nil
	case AlgorithmRSAOAEP:
		if fips140.Enforced() {
			return nil, fmt.Errorf("%w: %s uses SHA-1", ErrNotApproved, AlgorithmRSAOAEP)
		}
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("%w: %q (this key does %s and %s)", errAlgorithm, algorithm, AlgorithmRSAOAEP256, AlgorithmRSAOAEP)
}

func (k *rsaKEK) WrapKey(_ context.Context, algorithm string, key []byte) ([]byte, error) {
	h, err := oaepHash(algorithm)
	if err != nil {
		return nil, err
	}
	return rsa.EncryptOAEP(h, rand.Reader, k.pub, key, nil)
}

func (k *rsaKEK) UnwrapKey(_ context.Context, algorithm string, wrapped []byte) ([]byte, error) {
	if k.priv == nil {
		return nil, fmt.Errorf("csev2: RSA key %q has no private key to unwrap with", k.id)
	}
	h, err := oaepHash(algorithm)
	if err != nil {
		return nil, err
	}
	return rsa.DecryptOAEP(h, rand.Reader, k.priv, wrapped, nil)
}
