package keyring

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
)

// The PKCS#11 keyring's options, names and errors exist in every build, so
// that code configuring it compiles with and without cgo; the keyring itself
// is in pkcs11.go (cgo) and pkcs11_nocgo.go.

// ProviderPKCS11 is the provider name of the PKCS#11 keyring, as recorded in
// its WrappedKeys.
const ProviderPKCS11 = "pkcs11"

// The algorithm names the PKCS#11 keyring records in its WrappedKeys.
const (
	// pkcs11AESKWP is CKM_AES_KEY_WRAP_PAD, AES key wrap with padding
	// (RFC 5649, NIST SP 800-38F KWP).
	pkcs11AESKWP = "AES-KWP"
	// pkcs11RSAOAEP is CKM_RSA_PKCS_OAEP with SHA-1 and MGF1-SHA-1, the
	// only OAEP SoftHSM2 implements. Not approved in FIPS 140-only mode.
	pkcs11RSAOAEP = "RSA-OAEP"
	// pkcs11RSAOAEP256 is CKM_RSA_PKCS_OAEP with SHA-256 and MGF1-SHA-256.
	pkcs11RSAOAEP256 = "RSA-OAEP-256"
)

const (
	// pkcs11PINVariable holds the user PIN when PKCS11Options.PIN is empty.
	pkcs11PINVariable = "GEOSEAL_PKCS11_PIN"
	// pkcs11DefaultSessions is the default size of the session pool.
	pkcs11DefaultSessions = 4
	// pkcs11MaxSessions bounds the pool: HSMs limit sessions per token
	// and application, and a larger pool only queues inside the HSM.
	pkcs11MaxSessions = 256
	// pkcs11KWPSize is the RFC 5649 wrapping of a 32-byte key: an 8-byte
	// integrity check block and the key, already a multiple of 8 bytes.
	pkcs11KWPSize = 8 + dataKeySize
	// pkcs11MaxLabel bounds token and key labels. Token labels are 32 bytes
	// in PKCS#11; key labels have no limit there, but need one here.
	pkcs11MaxLabel = 255
)

// Errors of NewPKCS11. They never contain the PIN.
var (
	// ErrPKCS11TokenNotFound means no slot holds a token with the label.
	ErrPKCS11TokenNotFound = errors.New("keyring: PKCS#11 token not found")
	// ErrPKCS11KeyNotFound means the token holds no AES secret key and no
	// RSA key with the label (or, without a login, none visible).
	ErrPKCS11KeyNotFound = errors.New("keyring: PKCS#11 key not found")
	// ErrPKCS11PINIncorrect means the token refused the PIN, or the PIN
	// differs from the one another PKCS11 keyring of this process logged
	// in to the token with.
	ErrPKCS11PINIncorrect = errors.New("keyring: PKCS#11 PIN incorrect")
)

// ErrPKCS11Closed is returned by the methods of a PKCS11 keyring after Close.
var ErrPKCS11Closed = errors.New("keyring: PKCS#11 keyring is closed")

// PKCS11Options configures a PKCS#11 keyring. Module, TokenLabel and KeyLabel
// are required.
type PKCS11Options struct {
	// Module is the path of the HSM vendor's PKCS#11 library, such as
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel selects the token (and so the slot) by its label.
	TokenLabel string
	// KeyLabel selects the key-encryption key by its CKA_LABEL: an AES
	// secret key, or an RSA key pair whose halves share the label. It must
	// name exactly one key of its class on the token.
	KeyLabel string
	// PIN is the user PIN. If empty, the GEOSEAL_PKCS11_PIN environment
	// variable is used, which keeps the PIN out of configuration files.
	// The keyring never writes the PIN to an error or a log.
	PIN string
	// OAEPHash is the hash of RSA-OAEP, for RSA keys: crypto.SHA256 (the
	// default, "RSA-OAEP-256") or crypto.SHA1 ("RSA-OAEP"), for SoftHSM2,
	// whose OAEP supports nothing else. RSA-OAEP with SHA-1 is refused with
	// an error matching ErrNotApproved in FIPS 140-only mode. AES keys
	// ignore it.
	OAEPHash crypto.Hash
	// Sessions is the size of the pool of logged-in sessions, that is how
	// many operations may run in the HSM at once. Zero means 4.
	Sessions int
	// Logger receives one audit record per Wrap and per unwrap attempt. Nil
	// means no audit.
	Logger *slog.Logger
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many of its own wrapped keys one Unwrap hands
	// to the HSM (C_UnwrapKey calls). Zero means DefaultMaxAttempts.
	MaxAttempts int
}

// Format prints the options with the PIN redacted, so that logging the
// options by mistake does not leak it.
func (o PKCS11Options) Format(f fmt.State, verb rune) {
	pin := ""
	if o.PIN != "" {
		pin = "REDACTED"
	}
	fmt.Fprintf(f, "{Module:%s TokenLabel:%s KeyLabel:%s PIN:%s OAEPHash:%v Sessions:%d MaxWrappedKeys:%d MaxAttempts:%d}",
		o.Module, o.TokenLabel, o.KeyLabel, pin, o.OAEPHash, o.Sessions, o.MaxWrappedKeys, o.MaxAttempts)
}

// LogValue is the options as log/slog records them: without the PIN.
func (o PKCS11Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("module", o.Module),
		slog.String("token_label", o.TokenLabel),
		slog.String("key_label", o.KeyLabel),
		slog.Bool("pin_set", o.PIN != ""),
		slog.String("oaep_hash", o.OAEPHash.String()),
		slog.Int("sessions", o.Sessions),
	)
}
