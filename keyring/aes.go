package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/geoseal/geoseal/internal/keyfile"

	"github.com/geoseal/geoseal/internal/untrusted"
)

// The provider and algorithm names of the local AES keyring, as recorded in
// its WrappedKeys.
const (
	ProviderAES  = "local-aes"
	AlgorithmAES = "A256GCM"
)

// AESKeySize is the size of a local AES key-encryption key: AES-256.
const AESKeySize = 32

// dataKeySize is the size of every data key the local keyrings wrap. The
// envelope format uses 256-bit data keys; refusing anything else lets Unwrap
// check exact lengths before decrypting.
const dataKeySize = 32

const (
	// aesWrappedSize is nonce || encrypted DEK || tag, as produced by
	// cipher.NewGCMWithRandomNonce.
	aesWrappedSize = 12 + dataKeySize + 16

	// aesAADLabel separates the associated data of this keyring from any
	// other use of the same key: a wrapped key cannot be replayed as
	// something else, nor something else as a wrapped key.
	aesAADLabel = "geoseal keyring local-aes A256GCM v1"

	// aesKeyIDInfo is the HKDF info that derives the key id from the key:
	// a label of its own, as every value derived from the key has, so the
	// published id is never equal to anything else computed from the key.
	aesKeyIDInfo = "geoseal keyring local-aes key id v2"

	// aesLegacyKeyIDLabel is the HMAC message of the key id that geoseal
	// derived before aesKeyIDInfo, which objects written then carry:
	// HMAC-SHA-256(key, label), truncated.
	aesLegacyKeyIDLabel = "geoseal keyring local-aes key id v1"

	// aesKeyIDSize is the size of a key id, 128 bits, so that distinct keys
	// do not collide.
	aesKeyIDSize = 16
)

// AESOptions configures a local AES keyring. The zero value (or nil) is
// valid.
type AESOptions struct {
	// Logger receives one audit record per Wrap and per unwrap attempt. Nil
	// means no audit.
	Logger *slog.Logger
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many of its own wrapped keys one Unwrap tries.
	// Zero means DefaultMaxAttempts.
	MaxAttempts int
	// LegacyKeyID makes Wrap record, and KeyID return, the key id of
	// geoseal's first release (HMAC-SHA-256 of a fixed label under the
	// key), the only one older readers look for. Set it while readers of
	// an older version must open new objects, and not otherwise. Unwrap
	// accepts wrapped keys with either key id whatever it says.
	LegacyKeyID bool
}

// AES is a keyring holding a local AES-256 key-encryption key. It wraps data
// keys with AES-256-GCM under a random 96-bit nonce, and authenticates, as
// associated data, a label of its own, its key id and the encryption
// context: a wrapped key copied to an object with a different context, or
// presented to a different key, does not unwrap.
//
// A key can wrap at most 2^32 data keys before the chance of a nonce
// collision stops being negligible; rotate it well before that.
//
// AES is safe for concurrent use.
type AES struct {
	aead        cipher.AEAD
	keyID       string // what Wrap records
	keyIDs      [2]string
	logger      *slog.Logger
	max         int
	maxAttempts int
}

// GenerateAESKey returns a new random AES-256 key-encryption key, for
// NewAES or a key file read by LoadAESKeyFile.
func GenerateAESKey() ([]byte, error) {
	key := make([]byte, AESKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}

// NewAES returns a keyring for the 32-byte AES-256 key. The key is not
// retained: the caller may zero it once NewAES returns.
func NewAES(key []byte, opts *AESOptions) (*AES, error) {
	if len(key) != AESKeySize {
		return nil, fmt.Errorf("keyring: local AES key has %d bytes, want %d", len(key), AESKeySize)
	}
	if opts == nil {
		opts = &AESOptions{}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: local AES key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: local AES key: %w", err)
	}
	k := &AES{aead: aead, logger: opts.Logger, max: opts.MaxWrappedKeys, maxAttempts: opts.MaxAttempts}
	if k.keyIDs[0], err = aesKeyID(key); err != nil {
		return nil, err
	}
	k.keyIDs[1] = aesLegacyKeyID(key)
	k.keyID = k.keyIDs[0]
	if opts.LegacyKeyID {
		k.keyID = k.keyIDs[1]
	}
	return k, nil
}

// aesKeyID is hex(HKDF-SHA-256(key, salt = none, info = aesKeyIDInfo)),
// 16 bytes: stable for a key and safe to publish.
//
// Any id computed from the key alone lets whoever holds a candidate key
// check it (so does a wrapped key, which is a ciphertext under it): what
// keeps a key from being guessed is that it is random, which is why the key
// file readers refuse keys that are text.
func aesKeyID(key []byte) (string, error) {
	id, err := hkdf.Key(sha256.New, key, nil, aesKeyIDInfo, aesKeyIDSize)
	if err != nil {
		return "", fmt.Errorf("keyring: local AES key id: %w", err)
	}
	return hex.EncodeToString(id), nil
}

// aesLegacyKeyID is the key id of objects written before aesKeyID:
// hex(HMAC-SHA-256(key, aesLegacyKeyIDLabel)[:16]).
func aesLegacyKeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(aesLegacyKeyIDLabel))
	return hex.EncodeToString(m.Sum(nil)[:aesKeyIDSize])
}

// LoadAESKeyFile returns a keyring for the AES-256 key in the file at path.
// The file holds either the 32 raw key bytes, or their standard base64
// encoding (44 characters) optionally surrounded by white space, as written
// by `geoseal keygen`. A key of 32 printable characters, raw or base64
// encoded, is refused: it is a password or a hex string, not a random key.
//
// On Unix systems the file must not be readable or writable by group or
// others (mode 0600 or 0400, as ssh requires of private keys): a key file
// anyone on the host can read does not keep anything secret. The check is
// made on the opened file.
func LoadAESKeyFile(path string, opts *AESOptions) (*AES, error) {
	key, err := keyfile.ReadAESKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return NewAES(key, opts)
}

// KeyID returns the key's fingerprint, the KeyID of the wrapped keys it
// makes: 32 hexadecimal digits derived from the key with HKDF-SHA-256 under
// a label of its own (or, with AESOptions.LegacyKeyID, the HMAC-derived id
// of geoseal's first release). It identifies the key without revealing
// anything about it. Unwrap accepts wrapped keys with either id.
func (k *AES) KeyID() string { return k.keyID }

// aesAAD returns the associated data that binds a wrapped key to this keyring's
// purpose, the key id it records and the encryption context.
func aesAAD(keyID string, ecb []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddBytes([]byte(aesAADLabel))
	b.AddUint8(0)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(keyID)) })
	b.AddBytes(ecb)
	return b.Bytes()
}

// Wrap encrypts the 32-byte dek with AES-256-GCM, binding ec. It returns one
// WrappedKey.
func (k *AES) Wrap(ctx context.Context, dek []byte, ec Context) (keys []WrappedKey, err error) {
	start := time.Now()
	defer func() { audit(ctx, k.logger, "wrap", ProviderAES, k.keyID, AlgorithmAES, start, err) }()
	if err := checkDataKey(dek); err != nil {
		return nil, err
	}
	ecb, err := ec.MarshalBinary()
	if err != nil {
		return nil, err
	}
	aad, err := aesAAD(k.keyID, ecb)
	if err != nil {
		return nil, err
	}
	ct := k.aead.Seal(make([]byte, 0, aesWrappedSize), nil, dek, aad)
	return []WrappedKey{{Provider: ProviderAES, KeyID: k.keyID, Algorithm: AlgorithmAES, Ciphertext: ct}}, nil
}

// Unwrap tries, in order, the wrapped keys made by this key, at most
// MaxAttempts of them, and returns the data key of the first that
// authenticates under ec. Otherwise it returns a *NoMatchError.
func (k *AES) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := k.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (k *AES) unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	ecb, err := ec.MarshalBinary()
	if err != nil {
		return nil, -1, err
	}
	l := leaf{
		provider: ProviderAES, logger: k.logger, maxKeys: k.max, maxAttempts: k.maxAttempts,
		owns: func(wk WrappedKey) bool {
			return wk.Provider == ProviderAES && (wk.KeyID == k.keyIDs[0] || wk.KeyID == k.keyIDs[1])
		},
		precheck: func(wk WrappedKey) error {
			if wk.Algorithm != AlgorithmAES {
				return fmt.Errorf("keyring: unsupported algorithm %s for %s", untrusted.Quote(wk.Algorithm), ProviderAES)
			}
			if len(wk.Ciphertext) != aesWrappedSize {
				return fmt.Errorf("keyring: %s wrapped key has %d bytes, want %d", ProviderAES, len(wk.Ciphertext), aesWrappedSize)
			}
			return nil
		},
		open: func(wk WrappedKey) ([]byte, error) {
			// The key id is authenticated: a wrapped key is opened with
			// the id it was made with, the current or the legacy one.
			aad, err := aesAAD(wk.KeyID, ecb)
			if err != nil {
				return nil, err
			}
			dek, err := k.aead.Open(make([]byte, 0, dataKeySize), nil, wk.Ciphertext, aad)
			if err != nil {
				return nil, errAESOpen
			}
			return dek, nil
		},
	}
	return l.unwrap(ctx, keys, check)
}

// errAESOpen is the attempt error of an AES-GCM wrapped key that does not
// authenticate: made under another key, for another context, or altered.
var errAESOpen = errors.New("keyring: wrapped key does not authenticate (wrong key, wrong encryption context, or corrupted)")

// checkDataKey checks a data key handed to Wrap.
func checkDataKey(dek []byte) error {
	if len(dek) != dataKeySize {
		return fmt.Errorf("keyring: data key has %d bytes, want %d", len(dek), dataKeySize)
	}
	return nil
}
