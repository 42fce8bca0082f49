package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/cryptobyte"

	"github.com/geoseal/geoseal/internal/untrusted"
)

// The provider and algorithm names of the Tink keyring, as recorded in its
// WrappedKeys. The ciphertext is whatever the Tink AEAD produces, including
// Tink's own key prefix, so the algorithm is named after the interface, not a
// cipher: the keyset decides the cipher.
const (
	ProviderTink  = "tink"
	AlgorithmTink = "TINK-AEAD"
)

const (
	// tinkAADLabel separates the associated data of this keyring from any
	// other use of the same Tink AEAD.
	tinkAADLabel = "geoseal keyring tink AEAD v1"

	// maxTinkCiphertext bounds what Unwrap hands to the AEAD. A 32-byte data
	// key under any Tink AEAD (or KMS envelope) is far smaller.
	maxTinkCiphertext = 4096

	// maxTinkKeyID bounds the caller-chosen key id.
	maxTinkKeyID = 1024
)

// TinkOptions configures a Tink keyring. The zero value (or nil) is valid.
type TinkOptions struct {
	// Logger receives one audit record per Wrap and per unwrap attempt. Nil
	// means no audit.
	Logger *slog.Logger
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many of its own wrapped keys one Unwrap hands
	// to the AEAD. Zero means DefaultMaxAttempts.
	MaxAttempts int
}

// TinkAEAD is a keyring whose key-encryption key is a Tink AEAD: a primitive
// from a Tink keyset handle (aead.New), or a remote AEAD from a Tink KMS
// client such as Google Cloud KMS or AWS KMS. It wraps a data key with
// Encrypt, passing as associated data a label of its own followed by the
// canonical encoding of the encryption context, so a wrapped key moved to
// an object with another context does not unwrap.
//
// TinkAEAD is safe for concurrent use if the Tink AEAD is (Tink's are).
type TinkAEAD struct {
	aead        tink.AEAD
	keyID       string
	logger      *slog.Logger
	max         int
	maxAttempts int
}

// NewTinkAEAD returns a keyring over a. keyID names the key in the wrapped
// keys it makes and selects the wrapped keys it tries; use something stable
// such as the KMS key URI or a keyset name. It must be non-empty and at most
// 1024 bytes.
//
// In FIPS 140-only mode (GODEBUG=fips140=only) NewTinkAEAD returns an error
// matching ErrNotApproved. Tink's AES-GCM chooses its own nonces through
// cipher.NewGCM, which the Go FIPS 140 module refuses in that mode, and this
// keyring cannot tell a keyset AEAD from a KMS one, so it does not run Tink
// code at all rather than fail later or on some keysets only.
func NewTinkAEAD(a tink.AEAD, keyID string, opts *TinkOptions) (*TinkAEAD, error) {
	if err := refuseInFIPSMode("Tink AEAD"); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errors.New("keyring: nil Tink AEAD")
	}
	if keyID == "" || len(keyID) > maxTinkKeyID {
		return nil, fmt.Errorf("keyring: Tink key id must have 1 to %d bytes, has %d", maxTinkKeyID, len(keyID))
	}
	if opts == nil {
		opts = &TinkOptions{}
	}
	return &TinkAEAD{aead: a, keyID: keyID, logger: opts.Logger, max: opts.MaxWrappedKeys, maxAttempts: opts.MaxAttempts}, nil
}

// KeyID returns the key id given to NewTinkAEAD.
func (k *TinkAEAD) KeyID() string { return k.keyID }

func tinkAAD(ec Context) ([]byte, error) {
	ecb, err := ec.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddBytes([]byte(tinkAADLabel))
	b.AddUint8(0)
	b.AddBytes(ecb)
	return b.Bytes()
}

// Wrap encrypts the 32-byte dek with the Tink AEAD, binding ec. It returns
// one WrappedKey. The ctx is not passed to Tink's AEAD interface, which
// takes none.
func (k *TinkAEAD) Wrap(ctx context.Context, dek []byte, ec Context) (keys []WrappedKey, err error) {
	start := time.Now()
	defer func() { audit(ctx, k.logger, "wrap", ProviderTink, k.keyID, AlgorithmTink, start, err) }()
	if err := checkDataKey(dek); err != nil {
		return nil, err
	}
	aad, err := tinkAAD(ec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ct, err := k.aead.Encrypt(dek, aad)
	if err != nil {
		return nil, fmt.Errorf("keyring: Tink AEAD encrypt: %w", err)
	}
	if len(ct) > maxTinkCiphertext {
		return nil, fmt.Errorf("keyring: Tink AEAD ciphertext of %d bytes, at most %d accepted", len(ct), maxTinkCiphertext)
	}
	return []WrappedKey{{Provider: ProviderTink, KeyID: k.keyID, Algorithm: AlgorithmTink, Ciphertext: ct}}, nil
}

// Unwrap tries, in order, the wrapped keys with this keyring's key id, at
// most MaxAttempts of them, and returns the data key of the first that the
// Tink AEAD decrypts under ec. Otherwise it returns a *NoMatchError. A Tink
// AEAD's errors do not say whether a remote KMS failed or the ciphertext is
// not its own, so every failure counts as the latter: the attempt limit
// alone bounds the calls.
func (k *TinkAEAD) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := k.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (k *TinkAEAD) unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	aad, err := tinkAAD(ec)
	if err != nil {
		return nil, -1, err
	}
	l := leaf{
		provider: ProviderTink, logger: k.logger, maxKeys: k.max, maxAttempts: k.maxAttempts,
		owns: func(wk WrappedKey) bool { return wk.Provider == ProviderTink && wk.KeyID == k.keyID },
		precheck: func(wk WrappedKey) error {
			if wk.Algorithm != AlgorithmTink {
				return fmt.Errorf("keyring: unsupported algorithm %s for %s", untrusted.Quote(wk.Algorithm), ProviderTink)
			}
			if len(wk.Ciphertext) > maxTinkCiphertext {
				return fmt.Errorf("keyring: %s wrapped key of %d bytes, at most %d accepted", ProviderTink, len(wk.Ciphertext), maxTinkCiphertext)
			}
			return nil
		},
		open: func(wk WrappedKey) ([]byte, error) {
			dek, err := k.aead.Decrypt(wk.Ciphertext, aad)
			if err != nil {
				return nil, fmt.Errorf("keyring: Tink AEAD decrypt: %w", err)
			}
			return dek, nil
		},
	}
	return l.unwrap(ctx, keys, check)
}
