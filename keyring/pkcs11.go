//go:build cgo

package keyring

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mathbits "math/bits"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// PKCS11 is a keyring whose key-encryption key lives in an HSM reached
// through PKCS#11. The key never leaves the HSM; the data key crosses the
// PKCS#11 boundary in the clear, as it must, since this process encrypts
// the data with it.
//
// With an AES key it wraps with AES key wrap with padding (RFC 5649,
// "AES-KWP"): CKM_AES_KEY_WRAP_KWP where the token has it, else
// CKM_AES_KEY_WRAP_PAD, the name PKCS#11 2.40 and SoftHSM2 use for it.
// With an RSA key pair it wraps with the public key and CKM_RSA_PKCS_OAEP
// ("RSA-OAEP-256", or "RSA-OAEP" with SHA-1) and unwraps with the private
// key. The key id of its WrappedKeys is "token-label/key-label": the label,
// not the key material, identifies the key, so rotate a key under a new
// label and keep the old one until no object needs it.
//
// How it drives the HSM. A KEK made for wrapping has CKA_WRAP and
// CKA_UNWRAP and, on many HSMs, nothing else: C_Encrypt and C_Decrypt are
// refused, and SoftHSM2 2.6.1 offers CKM_AES_KEY_WRAP_PAD for wrapping only.
// So Wrap imports the data key as a short-lived session object
// (CKK_GENERIC_SECRET, not a token object, sensitive, extractable),
// C_WrapKeys it and destroys it; Unwrap C_UnwrapKeys into a session object
// that is extractable and not sensitive, reads its CKA_VALUE and destroys it.
// Both work on SoftHSM2 and on HSMs in their usual configuration. An HSM
// whose policy forbids importing plaintext keys or unwrapping to a readable
// key (some in a strict FIPS mode) refuses these calls with a PKCS#11 error;
// the wrapped bytes are the same as those of C_Encrypt with the same
// mechanism, so a keyring using that instead would read the same objects.
// The binding copies attribute values, the data key among them, through C
// memory that it frees without clearing; the data key is in this process's
// memory in any case.
//
// In FIPS terms the key wrapping is done by the HSM's validated module; this
// process only moves bytes. RSA-OAEP with SHA-1 is still refused in FIPS
// 140-only mode, since SHA-1 is not approved for it.
//
// Neither mechanism authenticates the encryption context; the envelope format
// authenticates it in the object header with a key derived from the data
// key.
//
// PKCS11 holds a pool of sessions, logged in once: a PKCS#11 login belongs to
// the process and covers every session on the token. Keyrings of one process
// on one token share that login (and must agree on the PIN); the last one
// closed logs out. If code outside this package logged the process in first,
// the PIN cannot be checked: PKCS#11 answers CKR_USER_ALREADY_LOGGED_IN
// without looking at it.
//
// The keyring calls the module through cgo (github.com/miekg/pkcs11), so it
// exists only in builds with cgo enabled; without cgo the rest of the package
// builds as usual.
//
// PKCS11 is safe for concurrent use. A call that waits for a free session
// gives up when its context is done; a call already in the HSM cannot be
// interrupted. Close releases the sessions, the login and the module.
type PKCS11 struct {
	mod   *pkcs11Module
	slot  uint
	login *pkcs11Login

	sessions  chan pkcs11.SessionHandle
	nsessions int
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	wrapKey, unwrapKey pkcs11.ObjectHandle // 0 (CK_INVALID_HANDLE) when absent
	mechanism          uint
	oaepHash, oaepMGF  uint // for CKM_RSA_PKCS_OAEP
	algorithm          string
	wrappedSize        int
	keyID              string
	logger             *slog.Logger
	max                int
	maxAttempts        int
}

// NewPKCS11 loads the module, finds the token and the key by their labels,
// opens the session pool and logs in. Errors match ErrPKCS11TokenNotFound,
// ErrPKCS11KeyNotFound or ErrPKCS11PINIncorrect where those apply, and
// otherwise wrap the module's pkcs11.Error. The caller must Close the
// keyring.
func NewPKCS11(opts *PKCS11Options) (*PKCS11, error) {
	if opts == nil {
		return nil, errors.New("keyring: NewPKCS11 needs options naming the module, token and key")
	}
	o := *opts
	if o.Module == "" {
		return nil, errors.New("keyring: PKCS#11 module path is empty")
	}
	if o.TokenLabel == "" || len(o.TokenLabel) > 32 {
		return nil, fmt.Errorf("keyring: PKCS#11 token label must be 1 to 32 bytes, got %d", len(o.TokenLabel))
	}
	if o.KeyLabel == "" || len(o.KeyLabel) > pkcs11MaxLabel {
		return nil, fmt.Errorf("keyring: PKCS#11 key label must be 1 to %d bytes, got %d", pkcs11MaxLabel, len(o.KeyLabel))
	}
	if o.PIN == "" {
		o.PIN = os.Getenv(pkcs11PINVariable)
	}
	if o.PIN == "" {
		return nil, fmt.Errorf("keyring: no PKCS#11 PIN: set PKCS11Options.PIN or %s", pkcs11PINVariable)
	}
	switch {
	case o.Sessions == 0:
		o.Sessions = pkcs11DefaultSessions
	case o.Sessions < 0 || o.Sessions > pkcs11MaxSessions:
		return nil, fmt.Errorf("keyring: PKCS#11 session pool size must be 1 to %d, got %d", pkcs11MaxSessions, o.Sessions)
	}
	p := &PKCS11{
		nsessions:   o.Sessions,
		sessions:    make(chan pkcs11.SessionHandle, o.Sessions),
		done:        make(chan struct{}),
		keyID:       o.TokenLabel + "/" + o.KeyLabel,
		logger:      o.Logger,
		max:         o.MaxWrappedKeys,
		maxAttempts: o.MaxAttempts,
	}
	switch o.OAEPHash {
	case 0, crypto.SHA256:
		p.oaepHash, p.oaepMGF = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	case crypto.SHA1:
		p.oaepHash, p.oaepMGF = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
	default:
		return nil, fmt.Errorf("keyring: PKCS#11 RSA-OAEP hash must be SHA-256 or SHA-1, got %v", o.OAEPHash)
	}

	var err error
	if p.mod, err = pkcs11OpenModule(o.Module); err != nil {
		return nil, err
	}
	var opened []pkcs11.SessionHandle
	fail := func(err error) (*PKCS11, error) {
		pkcs11Registry.Lock()
		defer pkcs11Registry.Unlock()
		if p.login != nil && len(opened) > 0 {
			p.mod.logout(p.slot, p.login, opened[0])
		}
		for _, s := range opened {
			p.mod.ctx.CloseSession(s)
		}
		p.mod.release()
		return nil, err
	}
	if p.slot, err = p.mod.findSlot(o.TokenLabel); err != nil {
		return fail(err)
	}
	for range o.Sessions {
		// Read-only sessions: the keyring creates session objects only,
		// which PKCS#11 allows in them, and HSMs often limit read-write
		// sessions more tightly.
		s, err := p.mod.ctx.OpenSession(p.slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			return fail(fmt.Errorf("keyring: PKCS#11 C_OpenSession on token %q: %w", o.TokenLabel, err))
		}
		opened = append(opened, s)
	}
	if p.login, err = p.mod.loginShared(p.slot, opened[0], o.TokenLabel, o.PIN); err != nil {
		return fail(err)
	}
	if err := p.findKey(opened[0], o.TokenLabel, o.KeyLabel); err != nil {
		return fail(err)
	}
	for _, s := range opened {
		p.sessions <- s
	}
	return p, nil
}

// findKey looks the KEK up by label: an AES secret key, else an RSA public
// key, private key or both. It sets the mechanism and sizes to use.
func (p *PKCS11) findKey(s pkcs11.SessionHandle, tokenLabel, keyLabel string) error {
	ctx := p.mod.ctx
	find := func(class uint) (pkcs11.ObjectHandle, error) {
		if err := ctx.FindObjectsInit(s, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, keyLabel),
		}); err != nil {
			return 0, fmt.Errorf("keyring: PKCS#11 C_FindObjectsInit: %w", err)
		}
		objs, _, err := ctx.FindObjects(s, 2)
		if ferr := ctx.FindObjectsFinal(s); err == nil && ferr != nil {
			err = ferr
		}
		switch {
		case err != nil:
			return 0, fmt.Errorf("keyring: PKCS#11 C_FindObjects: %w", err)
		case len(objs) > 1:
			return 0, fmt.Errorf("keyring: PKCS#11 token %q holds several keys of class %d labelled %q; the label must name one key", tokenLabel, class, keyLabel)
		case len(objs) == 1:
			return objs[0], nil
		}
		return 0, nil
	}
	keyType := func(o pkcs11.ObjectHandle) (uint, error) {
		a, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
		if err != nil {
			return 0, fmt.Errorf("keyring: PKCS#11 reading the key type of %q: %w", keyLabel, err)
		}
		return pkcs11Uint(a[0].Value), nil
	}

	secret, err := find(pkcs11.CKO_SECRET_KEY)
	if err != nil {
		return err
	}
	if secret != 0 {
		if t, err := keyType(secret); err != nil {
			return err
		} else if t != pkcs11.CKK_AES {
			return fmt.Errorf("keyring: PKCS#11 secret key %q is of key type %#x, not AES", keyLabel, t)
		}
		p.wrapKey, p.unwrapKey = secret, secret
		p.mechanism, p.algorithm, p.wrappedSize = p.kwpMechanism(), pkcs11AESKWP, pkcs11KWPSize
		return nil
	}

	if p.wrapKey, err = find(pkcs11.CKO_PUBLIC_KEY); err != nil {
		return err
	}
	if p.unwrapKey, err = find(pkcs11.CKO_PRIVATE_KEY); err != nil {
		return err
	}
	if p.wrapKey == 0 && p.unwrapKey == 0 {
		return fmt.Errorf("%w: no AES or RSA key labelled %q on token %q", ErrPKCS11KeyNotFound, keyLabel, tokenLabel)
	}
	var modulus []byte
	for _, o := range []pkcs11.ObjectHandle{p.wrapKey, p.unwrapKey} {
		if o == 0 {
			continue
		}
		if t, err := keyType(o); err != nil {
			return err
		} else if t != pkcs11.CKK_RSA {
			return fmt.Errorf("keyring: PKCS#11 key %q is of key type %#x, neither AES nor RSA", keyLabel, t)
		}
		// The modulus is a public attribute, readable even on a sensitive
		// private key.
		a, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil)})
		if err != nil {
			return fmt.Errorf("keyring: PKCS#11 reading the modulus of %q: %w", keyLabel, err)
		}
		m := a[0].Value
		for len(m) > 0 && m[0] == 0 {
			m = m[1:]
		}
		if modulus != nil && subtle.ConstantTimeCompare(modulus, m) != 1 {
			return fmt.Errorf("keyring: PKCS#11 public and private keys labelled %q do not match", keyLabel)
		}
		modulus = m
	}
	bits := 0
	if len(modulus) > 0 {
		bits = (len(modulus)-1)*8 + mathbits.Len8(modulus[0])
	}
	// MinRSABits, as for every RSA key; the upper bound also bounds the
	// wrapped keys handed to the HSM.
	if err := keyfile.CheckRSABits(bits); err != nil {
		return fmt.Errorf("keyring: PKCS#11 RSA key %q: %w", keyLabel, err)
	}
	p.mechanism, p.wrappedSize = pkcs11.CKM_RSA_PKCS_OAEP, len(modulus)
	p.algorithm = pkcs11RSAOAEP256
	if p.oaepHash == pkcs11.CKM_SHA_1 {
		p.algorithm = pkcs11RSAOAEP
	}
	return nil
}

// kwpMechanism picks the PKCS#11 mechanism for RFC 5649. PKCS#11 2.40 names
// it CKM_AES_KEY_WRAP_PAD, and SoftHSM2 implements RFC 5649 under that
// number; PKCS#11 3.0 gave RFC 5649 its own number, CKM_AES_KEY_WRAP_KWP,
// and redefined CKM_AES_KEY_WRAP_PAD as PKCS#7 padding followed by RFC 3394.
// So the keyring uses CKM_AES_KEY_WRAP_KWP where the token offers it for
// wrapping and unwrapping, and CKM_AES_KEY_WRAP_PAD otherwise. Should a
// token's CKM_AES_KEY_WRAP_PAD be the PKCS#7 kind, nothing wrong is stored:
// it wraps a 32-byte key into 48 bytes, not RFC 5649's 40, which Wrap
// refuses, and its unwrap fails RFC 5649's integrity check.
func (p *PKCS11) kwpMechanism() uint {
	info, err := p.mod.ctx.GetMechanismInfo(p.slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11CKMAESKeyWrapKWP, nil)})
	const both = pkcs11.CKF_WRAP | pkcs11.CKF_UNWRAP
	if err == nil && info.Flags&both == both {
		return pkcs11CKMAESKeyWrapKWP
	}
	return pkcs11.CKM_AES_KEY_WRAP_PAD
}

// pkcs11CKMAESKeyWrapKWP is CKM_AES_KEY_WRAP_KWP of PKCS#11 3.0, which the
// binding predates.
const pkcs11CKMAESKeyWrapKWP = 0x0000210B

// KeyID returns the key id the keyring records in its WrappedKeys,
// "token-label/key-label".
func (p *PKCS11) KeyID() string { return p.keyID }

// Wrap wraps dek, which must be 32 bytes, in the HSM. The encryption context
// is not bound (see the type's documentation). Each Wrap is one session
// object created, one C_WrapKey and one object destroyed.
func (p *PKCS11) Wrap(ctx context.Context, dek []byte, _ Context) ([]WrappedKey, error) {
	start := time.Now()
	ct, err := p.wrap(ctx, dek)
	audit(ctx, p.logger, "wrap", ProviderPKCS11, p.keyID, p.algorithm, start, err)
	if err != nil {
		return nil, err
	}
	return []WrappedKey{{Provider: ProviderPKCS11, KeyID: p.keyID, Algorithm: p.algorithm, Ciphertext: ct}}, nil
}

func (p *PKCS11) wrap(ctx context.Context, dek []byte) (_ []byte, err error) {
	if err := checkDataKey(dek); err != nil {
		return nil, err
	}
	if p.wrapKey == 0 {
		return nil, fmt.Errorf("keyring: PKCS#11 token has no public key labelled as %q to wrap with", p.keyID)
	}
	if err := p.refuseSHA1(); err != nil {
		return nil, err
	}
	s, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	healthy := true
	defer func() { p.release(s, healthy) }()
	hsm := p.mod.ctx
	obj, err := hsm.CreateObject(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, dek),
	})
	if err != nil {
		healthy = pkcs11SessionAlive(err)
		return nil, fmt.Errorf("keyring: PKCS#11 C_CreateObject for the data key: %w", err)
	}
	defer func() {
		if derr := hsm.DestroyObject(s, obj); derr != nil {
			// Closing the session destroys its objects, the data key
			// among them.
			healthy = false
		}
	}()
	ct, err := hsm.WrapKey(s, p.mech(), p.wrapKey, obj)
	if err != nil {
		healthy = pkcs11SessionAlive(err)
		return nil, fmt.Errorf("keyring: PKCS#11 C_WrapKey with %s: %w", p.algorithm, err)
	}
	if len(ct) != p.wrappedSize {
		return nil, fmt.Errorf("keyring: PKCS#11 C_WrapKey returned %d bytes, want %d", len(ct), p.wrappedSize)
	}
	return ct, nil
}

// Unwrap tries the wrapped keys made by this keyring's key (provider
// "pkcs11" and this key id), in order, at most MaxAttempts of them, and
// returns the first data key one yields, or a *NoMatchError. It stops at
// the first failure of the HSM that is not about the wrapped key itself (a
// device, session or login error, a closed keyring), since the next wrapped
// key would meet it too. It writes one audit record per attempt.
func (p *PKCS11) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := p.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (p *PKCS11) unwrapChecked(ctx context.Context, keys []WrappedKey, _ Context, check func([]byte) error) ([]byte, int, error) {
	l := leaf{
		provider: ProviderPKCS11, logger: p.logger, maxKeys: p.max, maxAttempts: p.maxAttempts,
		owns:     func(wk WrappedKey) bool { return wk.Provider == ProviderPKCS11 && wk.KeyID == p.keyID },
		precheck: p.precheck,
		open:     func(wk WrappedKey) ([]byte, error) { return p.unwrap(ctx, wk) },
		fatal:    pkcs11Fatal,
	}
	return l.unwrap(ctx, keys, check)
}

// precheck refuses, without a call to the HSM, a wrapped key this key
// cannot have made, or one the keyring cannot unwrap at all.
func (p *PKCS11) precheck(wk WrappedKey) error {
	if wk.Algorithm != p.algorithm {
		return fmt.Errorf("keyring: PKCS#11 wrapped key uses %s, this key %q", untrusted.Quote(wk.Algorithm), p.algorithm)
	}
	if len(wk.Ciphertext) != p.wrappedSize {
		return fmt.Errorf("keyring: PKCS#11 %s wrapped key has %d bytes, want %d", p.algorithm, len(wk.Ciphertext), p.wrappedSize)
	}
	if p.unwrapKey == 0 {
		return fmt.Errorf("keyring: PKCS#11 token has no private key labelled as %q to unwrap with", p.keyID)
	}
	return p.refuseSHA1()
}

// pkcs11Fatal reports whether an error of unwrap stops Unwrap: anything but
// the HSM's verdict that the wrapped key is not one its key opens. SoftHSM2
// reports a failed integrity check of AES-KWP as CKR_GENERAL_ERROR, and
// other HSMs use CKR_WRAPPED_KEY_INVALID, CKR_ENCRYPTED_DATA_INVALID and
// their kin; a device, session, login or memory error, a closed keyring or
// a done context would fail the next wrapped key as well.
func pkcs11Fatal(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return true
	}
	switch e {
	case pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE,
		pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR:
		return false
	}
	return true
}

// unwrap is one C_UnwrapKey, and the reading and destroying of the session
// object it makes.
func (p *PKCS11) unwrap(ctx context.Context, wk WrappedKey) (_ []byte, err error) {
	s, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	healthy := true
	defer func() { p.release(s, healthy) }()
	hsm := p.mod.ctx
	obj, err := hsm.UnwrapKey(s, p.mech(), p.unwrapKey, wk.Ciphertext, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Readable, because this process must encrypt with it.
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	})
	if err != nil {
		healthy = pkcs11SessionAlive(err)
		// A wrapped key that fails its integrity check is an error like
		// any other (SoftHSM2 reports CKR_GENERAL_ERROR for it).
		return nil, fmt.Errorf("keyring: PKCS#11 C_UnwrapKey with %s: %w", p.algorithm, err)
	}
	defer func() {
		if derr := hsm.DestroyObject(s, obj); derr != nil {
			healthy = false
		}
	}()
	a, err := hsm.GetAttributeValue(s, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		healthy = pkcs11SessionAlive(err)
		return nil, fmt.Errorf("keyring: PKCS#11 reading the unwrapped data key: %w", err)
	}
	// The Unwrap loop checks (and clears) a data key of the wrong size.
	return a[0].Value, nil
}

// mech returns the mechanism to wrap and unwrap with, new for every call
// because the binding converts it to C memory per call.
func (p *PKCS11) mech() []*pkcs11.Mechanism {
	if p.mechanism == pkcs11.CKM_RSA_PKCS_OAEP {
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
			pkcs11.NewOAEPParams(p.oaepHash, p.oaepMGF, pkcs11.CKZ_DATA_SPECIFIED, nil))}
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(p.mechanism, nil)}
}

// refuseSHA1 refuses RSA-OAEP with SHA-1 in FIPS 140-only mode.
func (p *PKCS11) refuseSHA1() error {
	if p.algorithm == pkcs11RSAOAEP {
		return refuseInFIPSMode("PKCS#11 RSA-OAEP with SHA-1")
	}
	return nil
}

// acquire takes a session from the pool, waiting until one is free, ctx is
// done or the keyring is closed.
func (p *PKCS11) acquire(ctx context.Context) (pkcs11.SessionHandle, error) {
	// Checked first because select picks at random among ready cases.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case <-p.done:
		return 0, ErrPKCS11Closed
	default:
	}
	select {
	case s := <-p.sessions:
		select {
		case <-p.done:
			// Close is collecting the sessions; hand this one over.
			p.sessions <- s
			return 0, ErrPKCS11Closed
		default:
			return s, nil
		}
	case <-p.done:
		return 0, ErrPKCS11Closed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// release returns a session to the pool. A session that may hold a leftover
// data-key object, or that the HSM no longer knows, is closed and replaced.
// If no new session can be opened the old handle goes back anyway, so the
// pool keeps its size: its next user gets the HSM's error and tries again.
func (p *PKCS11) release(s pkcs11.SessionHandle, healthy bool) {
	if !healthy {
		p.mod.ctx.CloseSession(s)
		if fresh, err := p.mod.ctx.OpenSession(p.slot, pkcs11.CKF_SERIAL_SESSION); err == nil {
			s = fresh
		}
	}
	p.sessions <- s
}

// pkcs11SessionAlive reports whether err leaves the session usable.
func pkcs11SessionAlive(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return true
	}
	switch e {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_USER_NOT_LOGGED_IN:
		return false
	}
	return true
}

// Close waits for the operations in progress, then closes the sessions,
// logs out if this is the last keyring of the process on the token, and
// finalises and unloads the module if this is the last keyring using it and
// the module was initialised by this package. Calls after Close fail with
// ErrPKCS11Closed. Close is idempotent.
func (p *PKCS11) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		sessions := make([]pkcs11.SessionHandle, 0, p.nsessions)
		for range p.nsessions {
			sessions = append(sessions, <-p.sessions)
		}
		pkcs11Registry.Lock()
		defer pkcs11Registry.Unlock()
		errs := []error{p.mod.logout(p.slot, p.login, sessions[0])}
		for _, s := range sessions {
			if err := p.mod.ctx.CloseSession(s); err != nil {
				errs = append(errs, fmt.Errorf("keyring: PKCS#11 C_CloseSession: %w", err))
			}
		}
		errs = append(errs, p.mod.release())
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// pkcs11Registry holds the modules loaded by PKCS11 keyrings in this process.
//
// A PKCS#11 module is one shared library with one state per process:
// C_Initialize succeeds once, and one C_Finalize ends it for every user, as
// one C_Logout ends the login of every session on the token. Keyrings on the
// same module therefore share its initialisation and their logins, with
// reference counts, so that closing one keyring does not break another.
var pkcs11Registry = struct {
	sync.Mutex
	modules map[string]*pkcs11Module
}{modules: make(map[string]*pkcs11Module)}

// A pkcs11Module is a loaded, initialised PKCS#11 module. Its fields other
// than ctx are guarded by pkcs11Registry.
type pkcs11Module struct {
	key      string
	ctx      *pkcs11.Ctx
	ownsInit bool // C_Initialize succeeded here, so C_Finalize is ours to call
	refs     int
	logins   map[uint]*pkcs11Login
}

// A pkcs11Login is the login state of the process on one token.
type pkcs11Login struct {
	refs int
	// owned means a keyring logged in, so the last one out logs out.
	// Otherwise other code in the process had logged in first, owns the
	// login and the PIN could not be checked.
	owned bool
	// pin is the SHA-256 of the PIN that logged in, to check the PIN of
	// later keyrings, which PKCS#11 itself would not do.
	pin [sha256.Size]byte
}

// pkcs11OpenModule returns the process's instance of the module at path,
// loading and initialising it on first use.
func pkcs11OpenModule(path string) (*pkcs11Module, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("keyring: PKCS#11 module: %w", err)
	}
	// One library under two names (a symbolic link) is still one module.
	key, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: PKCS#11 module: %w", err)
	}
	pkcs11Registry.Lock()
	defer pkcs11Registry.Unlock()
	if m := pkcs11Registry.modules[key]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("keyring: cannot load PKCS#11 module %s (not a PKCS#11 library, or it failed to load)", path)
	}
	m := &pkcs11Module{key: key, ctx: ctx, refs: 1, logins: make(map[uint]*pkcs11Login)}
	switch err := ctx.Initialize(); {
	case err == nil:
		m.ownsInit = true
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		// Other code in the process initialised it and will finalise it.
	default:
		ctx.Destroy()
		return nil, fmt.Errorf("keyring: PKCS#11 C_Initialize of %s: %w", path, err)
	}
	pkcs11Registry.modules[key] = m
	return m, nil
}

// release drops a reference to the module, finalising and unloading it with
// the last one. The caller holds pkcs11Registry.
func (m *pkcs11Module) release() error {
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(pkcs11Registry.modules, m.key)
	var err error
	if m.ownsInit {
		if ferr := m.ctx.Finalize(); ferr != nil {
			err = fmt.Errorf("keyring: PKCS#11 C_Finalize: %w", ferr)
		}
	}
	m.ctx.Destroy()
	return err
}

// findSlot returns the slot of the token labelled label.
func (m *pkcs11Module) findSlot(label string) (uint, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("keyring: PKCS#11 C_GetSlotList: %w", err)
	}
	found, n := uint(0), 0
	for _, slot := range slots {
		info, err := m.ctx.GetTokenInfo(slot)
		if err != nil {
			return 0, fmt.Errorf("keyring: PKCS#11 C_GetTokenInfo: %w", err)
		}
		if info.Label == label && info.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			found, n = slot, n+1
		}
	}
	switch n {
	case 0:
		return 0, fmt.Errorf("%w: no initialised token labelled %q among %d slots", ErrPKCS11TokenNotFound, label, len(slots))
	case 1:
		return found, nil
	}
	return 0, fmt.Errorf("keyring: PKCS#11 module has %d tokens labelled %q; the label must name one", n, label)
}

// loginShared logs the process in to the token in slot with pin, or joins
// the login already made (see pkcs11Login).
func (m *pkcs11Module) loginShared(slot uint, s pkcs11.SessionHandle, tokenLabel, pin string) (*pkcs11Login, error) {
	digest := sha256.Sum256([]byte(pin))
	pkcs11Registry.Lock()
	defer pkcs11Registry.Unlock()
	if l := m.logins[slot]; l != nil {
		if l.owned && subtle.ConstantTimeCompare(l.pin[:], digest[:]) != 1 {
			return nil, fmt.Errorf("%w for token %q: it differs from the PIN this process is logged in with", ErrPKCS11PINIncorrect, tokenLabel)
		}
		l.refs++
		return l, nil
	}
	l := &pkcs11Login{refs: 1, pin: digest}
	switch err := m.ctx.Login(s, pkcs11.CKU_USER, pin); {
	case err == nil:
		l.owned = true
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)):
		// Logged in by code outside this package, which owns the login.
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)):
		return nil, fmt.Errorf("%w for token %q: %w", ErrPKCS11PINIncorrect, tokenLabel, err)
	default:
		// CKR_PIN_LOCKED, CKR_PIN_EXPIRED and the like say what to do.
		return nil, fmt.Errorf("keyring: PKCS#11 C_Login to token %q: %w", tokenLabel, err)
	}
	m.logins[slot] = l
	return l, nil
}

// logout drops a reference to the login on slot, logging out with the last
// one if a keyring logged in. The caller holds pkcs11Registry.
func (m *pkcs11Module) logout(slot uint, l *pkcs11Login, s pkcs11.SessionHandle) error {
	l.refs--
	if l.refs > 0 {
		return nil
	}
	delete(m.logins, slot)
	if !l.owned {
		return nil
	}
	if err := m.ctx.Logout(s); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		return fmt.Errorf("keyring: PKCS#11 C_Logout: %w", err)
	}
	return nil
}

// pkcs11Uint decodes a CK_ULONG attribute value, which is in the host's byte
// order and as wide as a C unsigned long.
func pkcs11Uint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // matches no key type
}
