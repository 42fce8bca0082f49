package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/geoseal/geoseal/internal/untrusted"
)

// DefaultMaxAttempts is how many of the wrapped keys it owns a keyring tries
// in one Unwrap unless configured otherwise (the MaxAttempts option of each
// keyring).
//
// An honest object holds one wrapped key per key-encryption key. A hostile
// one can list DefaultMaxWrappedKeys wrapped keys that all name the reader's
// key (or versions of a Key Vault key), and every one the keyring tries costs
// a Key Vault request, an HSM operation or a private-key operation. The limit
// bounds that cost per object; a second attempt is allowed so that a wrapped
// key that fails (or holds a data key that fails the caller's check, see
// UnwrapChecked) does not hide a good one after it.
const DefaultMaxAttempts = 2

// UnwrapChecked recovers a data key from keys with u, as u.Unwrap does, and
// hands each data key it recovers to check before accepting it. A data key
// that check rejects is one more failed attempt, and the next wrapped key u
// owns is tried, within u's attempt limits.
//
// This is how envelope verifies an object's key commitment: an object that
// anyone holding a public key could have written may list a wrapped key
// holding some other data key before the genuine one, and the answer must
// not depend on which comes first, nor on whether a Cache or a Multi sits in
// front of the keyrings. The keyrings of this package (AES, RSA, KeyVault,
// PKCS11, TinkAEAD, Multi, Cache) run check inside their own Unwrap loop;
// any other Unwrapper is called once, and the data key it returns is checked.
//
// When data keys were recovered but check rejected every one, UnwrapChecked
// returns an error wrapping the error check returned first (so errors.Is
// matches it); when none could be unwrapped, a *NoMatchError. check must not
// modify or keep dek. A nil check makes UnwrapChecked u.Unwrap.
func UnwrapChecked(ctx context.Context, u Unwrapper, keys []WrappedKey, ec Context, check func(dek []byte) error) ([]byte, error) {
	if check == nil {
		return u.Unwrap(ctx, keys, ec)
	}
	dek, _, err := unwrapWith(ctx, u, keys, ec, check)
	if err == nil {
		return dek, nil
	}
	var nm *NoMatchError
	if errors.As(err, &nm) {
		for _, a := range nm.Tried {
			var r *rejectedError
			if !errors.As(a.Err, &r) {
				continue
			}
			if a.Provider == "" {
				return nil, fmt.Errorf("keyring: the data key fails the check: %w", r.err)
			}
			return nil, fmt.Errorf("keyring: the data key of wrapped key %s %s fails the check: %w", untrusted.Quote(a.Provider), untrusted.Quote(a.KeyID), r.err)
		}
	}
	return nil, err
}

// A checkedUnwrapper is an Unwrapper that can apply a caller's check to each
// data key inside its own loop, and say which wrapped key yielded the data
// key (the index in keys), or -1 if it cannot tell. Every keyring of this
// package is one; the interface is unexported because the index is a
// promise only they need to keep.
type checkedUnwrapper interface {
	unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) (dek []byte, index int, err error)
}

// unwrapWith unwraps with u, through its checked loop if it has one. Any
// other Unwrapper is called once and its data key checked afterwards; the
// index is then unknown (-1).
func unwrapWith(ctx context.Context, u Unwrapper, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	if cu, ok := u.(checkedUnwrapper); ok {
		return cu.unwrapChecked(ctx, keys, ec, check)
	}
	dek, err := u.Unwrap(ctx, keys, ec)
	if err != nil {
		return nil, -1, err
	}
	if check != nil {
		if cerr := check(dek); cerr != nil {
			clear(dek)
			return nil, -1, &NoMatchError{
				Tried:     []Attempt{{Err: &rejectedError{cerr}}},
				Available: append([]WrappedKey(nil), keys...),
			}
		}
	}
	return dek, -1, nil
}

// rejectedError is the attempt error of a wrapped key that unwrapped to a
// data key the caller's check rejected.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string {
	return "keyring: the data key fails the caller's check: " + e.err.Error()
}

func (e *rejectedError) Unwrap() error { return e.err }

// A leaf is a keyring that holds one key-encryption key, described for
// unwrapLeaf, the Unwrap loop they share.
type leaf struct {
	provider    string
	logger      *slog.Logger
	maxKeys     int // MaxWrappedKeys; 0 means DefaultMaxWrappedKeys
	maxAttempts int // MaxAttempts; 0 means DefaultMaxAttempts

	// owns reports whether a wrapped key names this keyring's key.
	owns func(WrappedKey) bool
	// precheck refuses, without using the key, a wrapped key that this key
	// cannot have made (wrong algorithm or size, or a keyring that cannot
	// unwrap at all). Such refusals cost nothing and are not attempts in
	// the sense of the limit. Nil means none.
	precheck func(WrappedKey) error
	// open unwraps wk with the key: one key operation, such as a Key Vault
	// request, an HSM call or a private-key operation.
	open func(WrappedKey) ([]byte, error)
	// fatal reports whether an error of open is a failure of the key
	// service or device (throttling, a server or transport error, an HSM
	// device error), which the next wrapped key would meet as well, rather
	// than "this wrapped key is not one this key opens". After a fatal
	// error the loop stops. Nil means never (local keys).
	fatal func(error) bool
}

// unwrapLeaf is the Unwrap loop of the keyrings that hold one key. It checks
// the count of keys, then tries open on the wrapped keys l owns, in order,
// each distinct wrapped key once (an object may list a wrapped key many
// times), and at most maxAttempts of them; it stops at the first fatal
// error and when ctx is done. Each attempt is audited, one record each. A
// data key that is not 32 bytes, or that check rejects, is a failed attempt.
// It returns the first data key that passes and its index in keys, or a
// *NoMatchError listing the attempts, with Skipped counting the wrapped keys
// of l left untried.
func (l *leaf) unwrap(ctx context.Context, keys []WrappedKey, check func([]byte) error) ([]byte, int, error) {
	if err := checkCount(keys, l.maxKeys); err != nil {
		return nil, -1, err
	}
	limit := l.maxAttempts
	if limit <= 0 {
		limit = DefaultMaxAttempts
	}
	var tried []Attempt
	attempts, skipped, stopped := 0, 0, false
	for i, wk := range keys {
		if !l.owns(wk) || listedBefore(keys[:i], wk) {
			continue
		}
		if stopped || attempts >= limit {
			skipped++
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, -1, err
		}
		start := time.Now()
		var dek []byte
		var err error
		if l.precheck != nil {
			err = l.precheck(wk)
		}
		if err == nil {
			attempts++
			dek, err = l.open(wk)
			switch {
			case err != nil:
				stopped = l.fatal != nil && l.fatal(err)
			case len(dek) != dataKeySize:
				err = fmt.Errorf("keyring: unwrapped data key has %d bytes, want %d", len(dek), dataKeySize)
				clear(dek)
			case check != nil:
				if cerr := check(dek); cerr != nil {
					err = &rejectedError{cerr}
					clear(dek)
				}
			}
		}
		audit(ctx, l.logger, "unwrap", l.provider, wk.KeyID, wk.Algorithm, start, err)
		if err == nil {
			return dek, i, nil
		}
		tried = append(tried, Attempt{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Err: err})
		if cerr := ctx.Err(); cerr != nil {
			if !errors.Is(err, cerr) {
				return nil, -1, cerr
			}
			stopped = true
		}
	}
	// When no wrapped key is this keyring's, no key was used and there is
	// nothing to audit: a multi-keyring or a cache asks every keyring about
	// every wrapped key, and would otherwise flood the audit trail.
	return nil, -1, &NoMatchError{Tried: tried, Skipped: skipped, Available: append([]WrappedKey(nil), keys...)}
}

// listedBefore reports whether wk is in keys, byte for byte.
func listedBefore(keys []WrappedKey, wk WrappedKey) bool {
	for _, k := range keys {
		if k.Provider == wk.Provider && k.KeyID == wk.KeyID && k.Algorithm == wk.Algorithm && bytes.Equal(k.Ciphertext, wk.Ciphertext) {
			return true
		}
	}
	return false
}
