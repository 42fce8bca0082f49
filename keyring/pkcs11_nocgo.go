//go:build !cgo

package keyring

import (
	"context"
	"errors"
	"fmt"
)

// ErrPKCS11NoCgo is returned by NewPKCS11 in a binary built without cgo
// (CGO_ENABLED=0): PKCS#11 modules are C libraries. It also matches
// errors.ErrUnsupported.
var ErrPKCS11NoCgo = fmt.Errorf("keyring: PKCS#11 needs cgo, and this binary was built with CGO_ENABLED=0: %w", errors.ErrUnsupported)

// PKCS11 is a keyring whose key-encryption key lives in an HSM reached
// through PKCS#11. This build has no cgo, so NewPKCS11 always fails with
// ErrPKCS11NoCgo; rebuild with CGO_ENABLED=1 to use an HSM.
type PKCS11 struct{ _ struct{} }

// NewPKCS11 returns ErrPKCS11NoCgo: this binary was built without cgo.
func NewPKCS11(*PKCS11Options) (*PKCS11, error) { return nil, ErrPKCS11NoCgo }

// KeyID returns "".
func (*PKCS11) KeyID() string { return "" }

// Wrap returns ErrPKCS11NoCgo.
func (*PKCS11) Wrap(context.Context, []byte, Context) ([]WrappedKey, error) {
	return nil, ErrPKCS11NoCgo
}

// Unwrap returns ErrPKCS11NoCgo.
func (*PKCS11) Unwrap(context.Context, []WrappedKey, Context) ([]byte, error) {
	return nil, ErrPKCS11NoCgo
}

// Close returns nil.
func (*PKCS11) Close() error { return nil }
