package keyring

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// The provider and algorithm names of the local RSA keyring, as recorded in
// its WrappedKeys.
const (
	ProviderRSA  = "local-rsa"
	AlgorithmRSA = "RSA-OAEP-256"
)

// Limits on RSA keys, enforced wherever an RSA key enters this package: the
// local RSA keyring, the key files, Key Vault keys and PKCS#11 keys. Below
// 2048 bits RSA is not approved for key transport (NIST SP 800-131A); above
// 16384 bits a hostile public key would only make every operation slow.
const (
	MinRSABits = 2048
	maxRSABits = keyfile.MaxRSABits
)

// ErrNoPrivateKey is the attempt error (inside a *NoMatchError) of an RSA
// keyring built from a public key alone, which can wrap but not unwrap.
var ErrNoPrivateKey = errors.New("keyring: RSA keyring has only a public key and cannot unwrap")

// RSAOptions configures a local RSA keyring. The zero value (or nil) is
// valid.
type RSAOptions struct {
	// Logger receives one audit record per Wrap and per unwrap attempt. Nil
	// means no audit.
	Logger *slog.Logger
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many of its own wrapped keys one Unwrap tries,
	// that is how many private-key operations it makes. Zero means
	// DefaultMaxAttempts.
	MaxAttempts int
}

// RSA is a keyring holding a local RSA key. It wraps data keys with
// RSA-OAEP, SHA-256 and MGF1-SHA-256 and an empty label, the RSA-OAEP-256 of
// JSON Web Algorithms, Azure Key Vault and PKCS#11 HSMs. A keyring made from
// a public key alone wraps, for a recipient who keeps the private key
// elsewhere; unwrapping needs the private key.
//
// RSA-OAEP does not authenticate the encryption context: anyone holding the
// public key can make a valid wrapped key, so a wrapped key proves nothing
// about the context it was made for. (The OAEP label could carry it, but
// Key Vault and most HSMs accept no label, and this keyring stays
// interchangeable with them.) The envelope format authenticates the context
// in the object header with a key derived from the data key, which is what
// protects it for RSA recipients.
//
// RSA is safe for concurrent use.
type RSA struct {
	pub    *rsa.PublicKey
	priv   *rsa.PrivateKey // nil for a public-only keyring
	keyID  string
	logger *slog.Logger
	max    int
	// maxAttempts is RSAOptions.MaxAttempts.
	maxAttempts int
}

// NewRSAPublic returns a keyring that wraps to pub, a key of at least
// MinRSABits. Its Unwrap fails with ErrNoPrivateKey.
func NewRSAPublic(pub *rsa.PublicKey, opts *RSAOptions) (*RSA, error) {
	return newRSA(pub, nil, opts)
}

// NewRSAPrivate returns a keyring that wraps to the public half of priv and
// unwraps with priv, a key of at least MinRSABits.
func NewRSAPrivate(priv *rsa.PrivateKey, opts *RSAOptions) (*RSA, error) {
	if priv == nil {
		return nil, errors.New("keyring: nil RSA private key")
	}
	if err := checkRSAPublic(&priv.PublicKey); err != nil {
		return nil, err
	}
	if err := priv.Validate(); err != nil {
		return nil, fmt.Errorf("keyring: invalid RSA private key: %w", err)
	}
	return newRSA(&priv.PublicKey, priv, opts)
}

func newRSA(pub *rsa.PublicKey, priv *rsa.PrivateKey, opts *RSAOptions) (*RSA, error) {
	if err := checkRSAPublic(pub); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &RSAOptions{}
	}
	id, err := rsaKeyID(pub)
	if err != nil {
		return nil, err
	}
	return &RSA{pub: pub, priv: priv, keyID: id, logger: opts.Logger, max: opts.MaxWrappedKeys, maxAttempts: opts.MaxAttempts}, nil
}

func checkRSAPublic(pub *rsa.PublicKey) error {
	if err := keyfile.CheckRSAPublicKey(pub); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

// rsaKeyID is the hex of the first 16 bytes of SHA-256 over the PKIX
// (SubjectPublicKeyInfo) DER encoding of pub, the fingerprint tools such as
// openssl can reproduce.
func rsaKeyID(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("keyring: RSA public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16]), nil
}

// KeyID returns the key's fingerprint, the KeyID of the wrapped keys it
// makes: the first 16 bytes, in hexadecimal, of the SHA-256 of the public
// key's PKIX DER encoding (`openssl pkey -pubin -outform DER | sha256sum`).
func (k *RSA) KeyID() string { return k.keyID }

// Wrap encrypts the 32-byte dek to the public key with RSA-OAEP-256. It
// returns one WrappedKey. The context is not bound; see the type's
// documentation.
func (k *RSA) Wrap(ctx context.Context, dek []byte, ec Context) (keys []WrappedKey, err error) {
	start := time.Now()
	defer func() { audit(ctx, k.logger, "wrap", ProviderRSA, k.keyID, AlgorithmRSA, start, err) }()
	if err := checkDataKey(dek); err != nil {
		return nil, err
	}
	// Validate ec anyway, so that a context every other keyring refuses is
	// not accepted silently here.
	if _, err := ec.MarshalBinary(); err != nil {
		return nil, err
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, k.pub, dek, nil)
	if err != nil {
		return nil, fmt.Errorf("keyring: RSA-OAEP-256: %w", err)
	}
	return []WrappedKey{{Provider: ProviderRSA, KeyID: k.keyID, Algorithm: AlgorithmRSA, Ciphertext: ct}}, nil
}

// Unwrap tries, in order, the wrapped keys made to this key, at most
// MaxAttempts of them, and returns the data key of the first that decrypts.
// Otherwise it returns a *NoMatchError; for a public-only keyring, with
// ErrNoPrivateKey as the error of each attempt.
func (k *RSA) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := k.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (k *RSA) unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	if _, err := ec.MarshalBinary(); err != nil {
		return nil, -1, err
	}
	l := leaf{
		provider: ProviderRSA, logger: k.logger, maxKeys: k.max, maxAttempts: k.maxAttempts,
		owns: func(wk WrappedKey) bool { return wk.Provider == ProviderRSA && wk.KeyID == k.keyID },
		precheck: func(wk WrappedKey) error {
			switch {
			case wk.Algorithm != AlgorithmRSA:
				return fmt.Errorf("keyring: unsupported algorithm %s for %s", untrusted.Quote(wk.Algorithm), ProviderRSA)
			case k.priv == nil:
				return ErrNoPrivateKey
			case len(wk.Ciphertext) != k.priv.Size():
				return errRSAOpen // the size is public; no private-key operation is spent on it
			}
			return nil
		},
		open: func(wk WrappedKey) ([]byte, error) { return rsaOAEP256Open(k.priv, wk.Ciphertext, nil) },
	}
	return l.unwrap(ctx, keys, check)
}

// errRSAOpen is the single error of every failed RSA-OAEP decryption:
// distinguishing padding failures from others is what Manger's attack needs.
var errRSAOpen = errors.New("keyring: RSA-OAEP-256 decryption failed (wrong key or corrupted wrapped key)")

// rsaOAEP256Open is the RSA-OAEP (SHA-256, MGF1-SHA-256) decryption the
// keyring uses, label included so the Wycheproof vectors can drive it.
func rsaOAEP256Open(priv *rsa.PrivateKey, ciphertext, label []byte) ([]byte, error) {
	// Bound the input before any big-number work.
	if len(ciphertext) != priv.Size() {
		return nil, errRSAOpen
	}
	pt, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ciphertext, label)
	if err != nil {
		return nil, errRSAOpen
	}
	return pt, nil
}

// LoadRSAPublicPEM returns a public-only keyring for the RSA public key in
// the PEM file at path: a "PUBLIC KEY" block (PKIX, as `openssl pkey
// -pubout` writes) or an "RSA PUBLIC KEY" block (PKCS #1). The first PEM
// block of the file is used.
func LoadRSAPublicPEM(path string, opts *RSAOptions) (*RSA, error) {
	pub, err := keyfile.ReadRSAPublicPEM(path)
	if err != nil {
		return nil, err
	}
	return NewRSAPublic(pub, opts)
}

// LoadRSAPrivatePEM returns a keyring for the RSA private key in the PEM file
// at path: a "PRIVATE KEY" block (PKCS #8) or an "RSA PRIVATE KEY" block
// (PKCS #1), unencrypted. The first PEM block of the file is used.
//
// Like LoadAESKeyFile, it refuses, on Unix systems, a file that group or
// others can access.
func LoadRSAPrivatePEM(path string, opts *RSAOptions) (*RSA, error) {
	priv, err := keyfile.ReadRSAPrivatePEM(path)
	if err != nil {
		return nil, err
	}
	return NewRSAPrivate(priv, opts)
}
