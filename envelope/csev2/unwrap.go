package csev2

import (
	"context"
	"crypto/fips140"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/geoseal/geoseal/internal/keywrap"
)

// The metadata of a blob is not authenticated: whoever can write to the
// container chooses the key wrap algorithm it names. Left to the metadata, a
// blob naming RSA1_5 would make the organisation's RSA key a PKCS #1 v1.5
// decryption oracle (Bleichenbacher), in Key Vault as much as in the process.
// So this file, where every content key is unwrapped, decides what reaches a
// key-encryption key: only the algorithms of the key's type, checked before
// any call, and every failure after that reported as one opaque ErrUnwrap.

// A KeyType is the type of key behind a KeyEncryptionKey. It decides which
// key wrap algorithms this package passes to the key, whatever a blob's
// metadata asks for.
type KeyType string

const (
	// KeyTypeRSA is an RSA key: RSA-OAEP-256, or RSA-OAEP (SHA-1; refused
	// in FIPS 140-only mode).
	KeyTypeRSA KeyType = "RSA"
	// KeyTypeAES is a 256-bit AES key: A256KW.
	KeyTypeAES KeyType = "AES"
)

// A KeyTyper is a KeyEncryptionKey that knows its key type. Before each wrap
// and unwrap this package asks it, and passes the key only the algorithms of
// that type: A256KW to an AES key, RSA-OAEP-256 and RSA-OAEP to an RSA key.
// Every key-encryption key of this package implements it; the Key Vault one
// asks the vault once per key version. A KeyEncryptionKey that does not
// implement it is passed any of the three, and nothing else.
type KeyTyper interface {
	KeyType(ctx context.Context) (KeyType, error)
}

// algorithmsOf lists the key wrap algorithms passed to a key of type t; the
// zero KeyType (a key that does not say) gets all of them.
func algorithmsOf(t KeyType) []string {
	switch t {
	case KeyTypeRSA:
		return []string{AlgorithmRSAOAEP256, AlgorithmRSAOAEP}
	case KeyTypeAES:
		return []string{AlgorithmA256KW}
	}
	return []string{AlgorithmA256KW, AlgorithmRSAOAEP256, AlgorithmRSAOAEP}
}

// algorithmRSA is the name the Python SDK's own RSA key-wrapper helper
// (tests/encryption_test_helper.py, RSAKeyWrapper) writes for RSA-OAEP with
// SHA-1. It is read as RSA-OAEP for local RSA keys only: a vault is never
// sent a name it does not define.
const algorithmRSA = "RSA"

// checkAlgorithm reports, before anything is sent to kek, whether kek may be
// asked to use alg: an error matching errAlgorithmRefused (whose text is the
// reason, for the audit log) when kek's type does not do alg, and one
// matching ErrNotApproved when FIPS 140-only mode forbids it. alg must be one
// of the three names, not an alias.
func checkAlgorithm(ctx context.Context, kek KeyEncryptionKey, alg string) error {
	// The names nobody may ask for are refused before the key type is
	// looked up, which for a vault key can cost a request.
	if !slices.Contains(algorithmsOf(""), alg) {
		return fmt.Errorf("%w: %q is not a key wrap algorithm of CSE", errAlgorithmRefused, alg)
	}
	var kt KeyType
	if t, ok := kek.(KeyTyper); ok {
		var err error
		if kt, err = t.KeyType(ctx); err != nil {
			return fmt.Errorf("%w: key type of %q: %w", errAlgorithmRefused, kek.KeyID(), err)
		}
	}
	if !slices.Contains(algorithmsOf(kt), alg) {
		return fmt.Errorf("%w: %s is not for a key of type %s", errAlgorithmRefused, alg, kt)
	}
	if fips140.Enforced() {
		if alg == AlgorithmRSAOAEP {
			return fmt.Errorf("%w: %s uses SHA-1", ErrNotApproved, AlgorithmRSAOAEP)
		}
		if _, local := kek.(*aesKEK); local {
			return errLocalKeyWrap
		}
	}
	return nil
}

// errLocalKeyWrap refuses A256KW with a local key in FIPS 140-only mode: the
// key wrap runs in internal/keywrap, geoseal's own code, which is outside
// Go's validated module however approved the AES inside it is.
var errLocalKeyWrap = fmt.Errorf("%w: %s with a local key runs in geoseal's own key wrap code, outside the validated module; wrap and unwrap in Key Vault, Managed HSM or an HSM instead", ErrNotApproved, AlgorithmA256KW)

// errAlgorithmRefused is what checkAlgorithm refuses with; unwrapping turns it
// into ErrUnwrap, wrapping reports it as it is.
var errAlgorithmRefused = errors.New("csev2: key wrap algorithm refused")

// unwrapContentKey finds the key-encryption key ed names through kr and
// unwraps the content key, returning a key of cekSize bytes the caller must
// clear. For protocol 2.x the wrapped payload must be the protocol string
// NUL-padded to 8 bytes followed by the key, and the prefix must be the
// protocol ed names (the SDKs' downgrade protection, checked on all 8 bytes
// as Python does); for 1.0 it is the bare key.
//
// A key that cannot be found is ErrKeyNotFound and an algorithm FIPS 140-only
// mode forbids is ErrNotApproved. Every other failure, whatever step it is
// in (an algorithm the key does not do, the key's or the vault's refusal,
// the wrong key, a bad length or prefix), is ErrUnwrap with the same text:
// telling them apart would tell an attacker which forgery got how far. The
// detail goes to log, when there is one, and never to the error.
func unwrapContentKey(ctx context.Context, ed *EncryptionData, kr KeyResolver, log *slog.Logger) (cek []byte, err error) {
	if kr == nil {
		return nil, errors.New("csev2: nil KeyResolver")
	}
	wk := ed.WrappedContentKey
	kek, err := kr.Resolve(ctx, wk.KeyID)
	if err != nil {
		return nil, err
	}
	if kek == nil {
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, wk.KeyID)
	}
	if kek.KeyID() != wk.KeyID {
		// As Python's _validate_and_unwrap_cek: a resolver must not hand
		// back some other key.
		return nil, fmt.Errorf("%w: resolver returned key %q for %q", ErrKeyNotFound, kek.KeyID(), wk.KeyID)
	}

	start := time.Now()
	var reason string // why it failed, for the audit log only
	defer func() {
		if log == nil {
			return
		}
		attrs := []slog.Attr{
			slog.String("key_id", wk.KeyID),
			slog.String("algorithm", wk.Algorithm),
			slog.String("protocol", ed.EncryptionAgent.Protocol),
			slog.Duration("duration", time.Since(start)),
		}
		level := slog.LevelWarn
		switch {
		case err == nil:
			level = slog.LevelInfo
			attrs = append(attrs, slog.String("outcome", "ok"))
		case errors.Is(err, ErrNotApproved):
			attrs = append(attrs, slog.String("outcome", "refused"), slog.String("reason", err.Error()))
		default:
			attrs = append(attrs, slog.String("outcome", "failed"), slog.String("reason", reason))
		}
		log.LogAttrs(ctx, level, "csev2 unwrap", attrs...)
	}()
	opaque := fmt.Errorf("%w (key %q)", ErrUnwrap, wk.KeyID)

	alg := wk.Algorithm
	if alg == algorithmRSA {
		if _, local := kek.(*rsaKEK); !local {
			reason = "the name RSA is read only for local RSA keys"
			return nil, opaque
		}
		alg = AlgorithmRSAOAEP
	}
	if err := checkAlgorithm(ctx, kek, alg); err != nil {
		if errors.Is(err, ErrNotApproved) {
			return nil, err
		}
		reason = err.Error()
		return nil, opaque
	}
	raw, err := kek.UnwrapKey(ctx, alg, wk.EncryptedKey)
	if err != nil {
		if errors.Is(err, ErrNotApproved) || errors.Is(err, keywrap.ErrNotApproved) {
			// A caller's KEK may use internal/keywrap too.
			return nil, fmt.Errorf("%w: %w", ErrNotApproved, err)
		}
		reason = "key-encryption key: " + err.Error()
		if ctx.Err() != nil {
			// A cancelled read is no forgery; say so.
			return nil, fmt.Errorf("%w: %w", opaque, ctx.Err())
		}
		return nil, opaque
	}
	defer clear(raw)
	if ed.isV1() {
		// 1.0 wraps the bare key: there is no protocol to bind.
		if len(raw) != cekSize {
			reason = fmt.Sprintf("unwrapped %d bytes, want %d", len(raw), cekSize)
			return nil, opaque
		}
		return append(make([]byte, 0, cekSize), raw...), nil
	}
	if len(raw) != versionPrefixSize+cekSize {
		reason = fmt.Sprintf("unwrapped %d bytes, want %d", len(raw), versionPrefixSize+cekSize)
		return nil, opaque
	}
	want := versionPrefix(ed.EncryptionAgent.Protocol)
	if subtle.ConstantTimeCompare(raw[:versionPrefixSize], want[:]) != 1 {
		reason = "the wrapped protocol prefix is not the metadata's protocol"
		return nil, opaque
	}
	return append(make([]byte, 0, cekSize), raw[versionPrefixSize:]...), nil
}
