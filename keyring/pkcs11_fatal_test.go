//go:build cgo

package keyring

import (
	"context"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestPKCS11Fatal checks which HSM errors end an Unwrap: those about the
// wrapped key move on to the next one; device, session, login and keyring
// errors stop.
func TestPKCS11Fatal(t *testing.T) {
	wrap := func(e uint) error { return fmt.Errorf("keyring: PKCS#11 C_UnwrapKey: %w", pkcs11.Error(e)) }
	for _, tc := range []struct {
		err   error
		fatal bool
	}{
		{wrap(pkcs11.CKR_GENERAL_ERROR), false}, // SoftHSM2's failed integrity check
		{wrap(pkcs11.CKR_WRAPPED_KEY_INVALID), false},
		{wrap(pkcs11.CKR_ENCRYPTED_DATA_INVALID), false},
		{wrap(pkcs11.CKR_DEVICE_ERROR), true},
		{wrap(pkcs11.CKR_DEVICE_REMOVED), true},
		{wrap(pkcs11.CKR_SESSION_HANDLE_INVALID), true},
		{wrap(pkcs11.CKR_USER_NOT_LOGGED_IN), true},
		{wrap(pkcs11.CKR_KEY_HANDLE_INVALID), true},
		{wrap(pkcs11.CKR_DEVICE_MEMORY), true},
		{ErrPKCS11Closed, true},
		{context.Canceled, true},
	} {
		if got := pkcs11Fatal(tc.err); got != tc.fatal {
			t.Errorf("pkcs11Fatal(%v) = %v, want %v", tc.err, got, tc.fatal)
		}
	}
}
