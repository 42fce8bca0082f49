// Package keyring wraps and unwraps data keys with keys the customer
// controls.
//
// A data key (DEK) is a random 256-bit key that encrypts one object. It never
// leaves the process in the clear: before an object is stored, a [Wrapper]
// encrypts the DEK under a key-encryption key (KEK) held somewhere the
// customer controls (a local key file, an Azure Key Vault or Managed HSM key,
// an on-premises HSM reached over PKCS#11, a Tink AEAD), and only the
// resulting [WrappedKey] is stored next to the data. Whoever cannot unwrap one
// of an object's wrapped keys cannot read the object: that is the whole of
// the end-to-end encryption argument, so where the KEK lives matters more
// than anything else in this package.
//
// The two interfaces are deliberately small, in the manner of age's
// Recipient and Identity: a [Wrapper] produces wrapped keys, an [Unwrapper]
// recovers a DEK from a list of them. Every keyring in this package
// implements both ([Keyring]); a public-key keyring built from a public key
// alone wraps but returns an error on unwrap.
//
// Keyrings that can authenticate the encryption [Context] (those built on
// AES-GCM) bind it to the wrapped key, so a wrapped key moved to an object
// with another context does not unwrap.
//
// Every keyring accepts a *slog.Logger for an audit trail: one record per
// Wrap or Unwrap with the provider, key id, algorithm, outcome and duration,
// and never any key bytes. Keyrings are silent by default.
//
// In FIPS 140-only mode (GODEBUG=fips140=only), algorithms that are not
// approved, such as RSA-OAEP with SHA-1, fail with an error that matches
// [ErrNotApproved] instead of running.
//
// # Local keys
//
// [AES] ([NewAES], [LoadAESKeyFile]) holds an AES-256 key in the process and
// wraps with AES-256-GCM, binding the encryption context. [RSA]
// ([NewRSAPublic], [NewRSAPrivate], [LoadRSAPublicPEM], [LoadRSAPrivatePEM])
// wraps with RSA-OAEP-256 to a public key, so a writer needs no secret at
// all; it cannot bind the context (anyone with the public key can make a
// wrapped key), which the envelope format makes up for by authenticating the
// context in the object header. [TinkAEAD] ([NewTinkAEAD]) turns any Tink
// AEAD, including Tink's cloud KMS AEADs, into a key-encryption key.
//
// A key in a file is only as safe as the file, the host and every backup of
// either: for export-controlled data prefer a key that never leaves Key
// Vault, a Managed HSM or an on-premises HSM, and keep local keys for tests,
// air-gapped sites and break-glass recovery.
//
// The AES and RSA keyrings identify their key by a fingerprint
// ([AES.KeyID], [RSA.KeyID]), a TinkAEAD by the name it is given; the id is
// stored in the clear in every wrapped key, and each keyring only tries the
// wrapped keys that carry its own.
//
// # Several keys, and fewer calls
//
// [Multi] ([NewMulti]) wraps every data key for several keyrings at once (an
// object readable by the Key Vault key of two regions, or by an HSM key and
// an offline break-glass RSA key) and unwraps with the first that can. A
// wrap fails if any keyring fails, so no object is ever stored with fewer
// recipients than configured.
//
// [Cache] ([NewCache]) sits in front of a remote keyring: it remembers
// unwrapped data keys for a bounded time and number of uses, and on encrypt
// can reuse one data key for several objects, so that a thousand small
// objects do not cost a thousand KMS round trips. Cached keys are zeroed
// when dropped and never logged. The usual stack is
//
//	keyring.NewCache(keyring.NewMulti(primary, recovery), opts)
//
// # Hostile input
//
// Wrapped keys come from stored objects, which an attacker may have written.
// Unwrap refuses a list longer than its MaxWrappedKeys option
// ([DefaultMaxWrappedKeys] by default) before trying any, never panics on
// malformed wrapped keys, and reports failure as a [*NoMatchError] that
// lists what was tried and why, with every string from the object quoted.
//
// Each wrapped key costs the reader a Key Vault request, an HSM operation or
// a private-key operation, so each keyring bounds the work one object can
// cause: it tries identical wrapped keys once, at most MaxAttempts of its own
// ([DefaultMaxAttempts] by default), and stops at the first failure of its
// key service or device (throttling, a server error, an HSM device error)
// rather than meet it again for every wrapped key. A [Cache] or a [Multi] in
// front changes how often a keyring is asked, not what it tries.
//
// [UnwrapChecked] hands the caller's check of each recovered data key (the
// envelope package checks the object's key commitment) to the keyrings'
// loops, so that a wrapped key holding some other data key is one more failed
// attempt and the next is tried, the same way with or without a Cache or a
// Multi in front.
package keyring

import (
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"strings"

	"github.com/geoseal/geoseal/internal/fips"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// A WrappedKey is a data key encrypted under a key-encryption key. It is
// stored in the clear next to the data it protects.
type WrappedKey struct {
	// Provider names the kind of keyring that made the wrapped key, such as
	// "local-aes", "azure-keyvault" or "pkcs11". An Unwrapper only tries the
	// wrapped keys of its own provider.
	Provider string
	// KeyID identifies the key-encryption key within its provider: a key
	// fingerprint, a versioned Key Vault key URL, a token and key label.
	KeyID string
	// Algorithm names the wrapping algorithm, such as "A256GCM",
	// "RSA-OAEP-256" or "A256KW".
	Algorithm string
	// Ciphertext is the wrapped data key.
	Ciphertext []byte
}

// A Wrapper encrypts a data key under one or more key-encryption keys.
//
// Wrap returns at least one WrappedKey, or an error. The dek is not retained.
type Wrapper interface {
	Wrap(ctx context.Context, dek []byte, ec Context) ([]WrappedKey, error)
}

// An Unwrapper recovers a data key from a list of wrapped keys.
//
// Unwrap considers only the wrapped keys whose Provider and KeyID it owns and
// returns the first data key one of them yields, within its limits on the
// work one call may do (see DefaultMaxAttempts). When none does, it returns
// a *NoMatchError. Callers must not modify keys during the call. The returned
// data key belongs to the caller, who should zero it when done (envelope
// does); a keyring must not keep a reference to it.
type Unwrapper interface {
	Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error)
}

// A Keyring both wraps and unwraps.
type Keyring interface {
	Wrapper
	Unwrapper
}

// A DataKeyGenerator is a Wrapper that can supply the data key itself,
// together with its wrapped keys. The envelope package uses it, when the
// Wrapper it is given implements it, instead of drawing a fresh DEK and
// calling Wrap: a caching keyring reuses one DEK (and one wrap call to a
// remote KMS) for several objects within limits. Each object still gets its
// own content key, derived from the DEK and the object's random message id.
//
// The returned dek belongs to the caller, who may zero it.
type DataKeyGenerator interface {
	GenerateDataKey(ctx context.Context, ec Context) (dek []byte, keys []WrappedKey, err error)
}

// DefaultMaxWrappedKeys is how many wrapped keys an Unwrap call accepts
// unless configured otherwise. A hostile object could otherwise list
// thousands of wrapped keys and make each one cost an HSM round trip.
const DefaultMaxWrappedKeys = 16

// ErrNotApproved is matched (with errors.Is) by the errors of operations that
// are refused because they would use an algorithm that is not FIPS 140
// approved while the process runs in FIPS 140-only mode. It also matches
// errors.ErrUnsupported.
var ErrNotApproved = fips.NotApproved("keyring: algorithm not approved in FIPS 140-only mode")

// ErrTooManyKeys is returned by Unwrap, before any key is tried, when the
// list of wrapped keys is longer than the keyring accepts.
var ErrTooManyKeys = errors.New("keyring: too many wrapped keys")

// fipsOnly reports whether non-approved algorithms must be refused.
// crypto/fips140.Enforced reports GODEBUG=fips140=only.
func fipsOnly() bool { return fips140.Enforced() }

// refuseInFIPSMode returns an error wrapping ErrNotApproved when the process
// runs in FIPS 140-only mode, and nil otherwise.
func refuseInFIPSMode(algorithm string) error {
	if fipsOnly() {
		return fmt.Errorf("%w: %s", ErrNotApproved, algorithm)
	}
	return nil
}

// checkCount enforces a limit on the number of wrapped keys, before any of
// them is looked at. A max of zero or less means DefaultMaxWrappedKeys.
func checkCount(keys []WrappedKey, max int) error {
	if max <= 0 {
		max = DefaultMaxWrappedKeys
	}
	if len(keys) > max {
		return fmt.Errorf("%w: %d, at most %d accepted", ErrTooManyKeys, len(keys), max)
	}
	return nil
}

// An Attempt records one wrapped key an Unwrapper tried, and why it failed.
type Attempt struct {
	Provider, KeyID, Algorithm string
	Err                        error
}

// NoMatchError is returned by Unwrap when no wrapped key could be unwrapped.
// Tried lists the wrapped keys that were attempted (empty when none belonged
// to the keyring) and Available the ones the object offered.
//
// The strings of wrapped keys come from the object, which an attacker may
// have written: Error quotes them (see internal/untrusted), so that they
// cannot carry terminal escapes or fake lines into a message. Callers that
// print the fields themselves must do the same.
type NoMatchError struct {
	Tried []Attempt
	// Skipped counts the wrapped keys a keyring owned but did not try: its
	// attempt limit was reached (see DefaultMaxAttempts), or the key
	// service or device failed and the rest would have failed the same way.
	Skipped   int
	Available []WrappedKey
}

func (e *NoMatchError) Error() string {
	var b strings.Builder
	b.WriteString("keyring: no wrapped key could be unwrapped")
	if len(e.Tried) == 0 && e.Skipped == 0 {
		b.WriteString(": none belongs to this keyring; the object offers ")
		if len(e.Available) == 0 {
			b.WriteString("none")
		}
		for i, k := range e.Available {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s", untrusted.Quote(k.Provider), untrusted.Quote(k.KeyID))
		}
		return b.String()
	}
	b.WriteString(": ")
	for i, a := range e.Tried {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s (%s): %v", untrusted.Quote(a.Provider), untrusted.Quote(a.KeyID), untrusted.Quote(a.Algorithm), a.Err)
	}
	if e.Skipped > 0 {
		fmt.Fprintf(&b, "; %d more wrapped keys of the keyring not tried (attempt limit, or the key service failed)", e.Skipped)
	}
	return b.String()
}

// Unwrap returns the errors of the attempts, so that errors.Is and errors.As
// see through a NoMatchError to, for example, ErrNotApproved or a Key Vault
// *azcore.ResponseError.
func (e *NoMatchError) Unwrap() []error {
	var errs []error
	for _, a := range e.Tried {
		if a.Err != nil {
			errs = append(errs, a.Err)
		}
	}
	return errs
}
