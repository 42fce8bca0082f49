//go:build cgo

package keyring_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
	"go.uber.org/goleak"

	"github.com/geoseal/geoseal/internal/softhsm"
	"github.com/geoseal/geoseal/internal/wycheproof"
	"github.com/geoseal/geoseal/keyring"
)

// All tests share the process's one SoftHSM2 token (see internal/softhsm), so
// each creates its keys under labels of its own, and closes its keyrings.
var p11LabelSeq atomic.Int64

func p11Label(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, p11LabelSeq.Add(1))
}

// p11AESKey creates a fresh AES KEK on the shared token and returns its label.
func p11AESKey(t *testing.T, tok *softhsm.Token) string {
	t.Helper()
	label := p11Label("aes")
	if err := tok.CreateAESKey(label); err != nil {
		t.Fatal(err)
	}
	return label
}

// p11RSAKey creates a fresh RSA-2048 key pair on the shared token.
func p11RSAKey(t *testing.T, tok *softhsm.Token) string {
	t.Helper()
	label := p11Label("rsa")
	if err := tok.CreateRSAKey(label, 2048); err != nil {
		t.Fatal(err)
	}
	return label
}

// p11Open opens a keyring on the shared token and closes it when the test
// ends.
func p11Open(t *testing.T, tok *softhsm.Token, keyLabel string, opts *keyring.PKCS11Options) *keyring.PKCS11 {
	t.Helper()
	o := keyring.PKCS11Options{}
	if opts != nil {
		o = *opts
	}
	o.Module, o.TokenLabel, o.KeyLabel = tok.Module, tok.Label, keyLabel
	if o.PIN == "" {
		o.PIN = tok.PIN
	}
	kr, err := keyring.NewPKCS11(&o)
	if err != nil {
		t.Fatalf("NewPKCS11: %v", err)
	}
	t.Cleanup(func() {
		if err := kr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return kr
}

func p11DEK(t testing.TB) []byte {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	return dek
}

var p11Ctx = keyring.Context{"purpose": "pkcs11 test"}

func TestPKCS11AESRoundTrip(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := p11AESKey(t, tok)
	kr := p11Open(t, tok, label, nil)
	ctx := context.Background()

	dek := p11DEK(t)
	keys, err := kr.Wrap(ctx, dek, p11Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("Wrap returned %d keys", len(keys))
	}
	wk := keys[0]
	if wk.Provider != "pkcs11" || wk.KeyID != tok.Label+"/"+label || wk.Algorithm != "AES-KWP" || len(wk.Ciphertext) != 40 {
		t.Fatalf("wrapped key %+v: want provider pkcs11, key id %s/%s, AES-KWP, 40 bytes", wk, tok.Label, label)
	}
	if bytes.Contains(wk.Ciphertext, dek[:8]) {
		t.Fatal("the wrapped key contains the data key")
	}
	got, err := kr.Unwrap(ctx, keys, p11Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dek) {
		t.Fatal("unwrapped data key differs")
	}

	// Every altered byte fails RFC 5649's integrity check in the HSM.
	for i := range wk.Ciphertext {
		bad := wk
		bad.Ciphertext = bytes.Clone(wk.Ciphertext)
		bad.Ciphertext[i] ^= 0x01
		dek, err := kr.Unwrap(ctx, []keyring.WrappedKey{bad}, p11Ctx)
		var nm *keyring.NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 || dek != nil {
			t.Fatalf("byte %d altered: %v, %x; want a NoMatchError with one attempt", i, err, dek)
		}
	}
	// Wrong lengths and a mislabelled algorithm are refused before the HSM.
	for _, bad := range []keyring.WrappedKey{
		{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Ciphertext: wk.Ciphertext[:39]},
		{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Ciphertext: append(bytes.Clone(wk.Ciphertext), 0)},
		{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: wk.Algorithm},
		{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: "RSA-OAEP", Ciphertext: wk.Ciphertext},
	} {
		var nm *keyring.NoMatchError
		if _, err := kr.Unwrap(ctx, []keyring.WrappedKey{bad}, p11Ctx); !errors.As(err, &nm) || len(nm.Tried) != 1 {
			t.Errorf("%s wrapped key of %d bytes: %v, want a NoMatchError", bad.Algorithm, len(bad.Ciphertext), err)
		}
	}
	// The good key is found after bad ones.
	bad := wk
	bad.Ciphertext = make([]byte, 40)
	if got, err := kr.Unwrap(ctx, []keyring.WrappedKey{bad, {Provider: "local-aes", KeyID: "x"}, wk}, p11Ctx); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("good key after bad ones: %v", err)
	}
	// Data keys must be 32 bytes.
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := kr.Wrap(ctx, make([]byte, n), p11Ctx); err == nil {
			t.Errorf("Wrap of a %d-byte data key succeeded", n)
		}
	}
}

func TestPKCS11RSAOAEPSHA1(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := p11RSAKey(t, tok)
	kr := p11Open(t, tok, label, &keyring.PKCS11Options{OAEPHash: crypto.SHA1})
	ctx := context.Background()
	dek := p11DEK(t)

	if fips140.Enforced() {
		// RSA-OAEP with SHA-1 is not approved: refused before the HSM.
		if _, err := kr.Wrap(ctx, dek, p11Ctx); !errors.Is(err, keyring.ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Wrap in FIPS 140-only mode: %v, want ErrNotApproved", err)
		}
		wk := keyring.WrappedKey{Provider: "pkcs11", KeyID: kr.KeyID(), Algorithm: "RSA-OAEP", Ciphertext: make([]byte, 256)}
		_, err := kr.Unwrap(ctx, []keyring.WrappedKey{wk}, p11Ctx)
		var nm *keyring.NoMatchError
		if !errors.As(err, &nm) || !errors.Is(err, keyring.ErrNotApproved) {
			t.Fatalf("Unwrap in FIPS 140-only mode: %v, want a NoMatchError matching ErrNotApproved", err)
		}
		return
	}

	keys, err := kr.Wrap(ctx, dek, p11Ctx)
	if err != nil {
		t.Fatal(err)
	}
	wk := keys[0]
	if wk.Algorithm != "RSA-OAEP" || len(wk.Ciphertext) != 256 || wk.KeyID != tok.Label+"/"+label {
		t.Fatalf("wrapped key %+v: want RSA-OAEP, 256 bytes", wk)
	}
	got, err := kr.Unwrap(ctx, keys, p11Ctx)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("round trip: %v", err)
	}
	// OAEP is randomised: a second wrap differs and unwraps too.
	again, err := kr.Wrap(ctx, dek, p11Ctx)
	if err != nil || bytes.Equal(again[0].Ciphertext, wk.Ciphertext) {
		t.Fatalf("second wrap: %v (equal ciphertexts: OAEP not randomised?)", err)
	}

	// What the HSM wraps is standard RSA-OAEP (SHA-1, MGF1-SHA-1, no label):
	// a data key wrapped by Go's crypto/rsa with the token's public key
	// unwraps in the HSM.
	pub := p11PublicKey(t, tok, label)
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err = kr.Unwrap(ctx, []keyring.WrappedKey{{Provider: "pkcs11", KeyID: kr.KeyID(), Algorithm: "RSA-OAEP", Ciphertext: ct}}, p11Ctx)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrapping crypto/rsa's RSA-OAEP: %v", err)
	}

	// An altered wrapped key fails.
	bad := wk
	bad.Ciphertext = bytes.Clone(wk.Ciphertext)
	bad.Ciphertext[100] ^= 0x80
	var nm *keyring.NoMatchError
	if _, err := kr.Unwrap(ctx, []keyring.WrappedKey{bad}, p11Ctx); !errors.As(err, &nm) || len(nm.Tried) != 1 {
		t.Fatalf("altered RSA-OAEP wrapped key: %v", err)
	}
}

// TestPKCS11RSAOAEP256 checks that the default is RSA-OAEP with SHA-256, the
// approved choice for real HSMs. SoftHSM2 implements OAEP with SHA-1 only
// and rejects the SHA-256 parameters with CKR_ARGUMENTS_BAD, which is what
// this test can observe of them; a wrapped key made by crypto/rsa shows that
// Unwrap sends them too.
func TestPKCS11RSAOAEP256(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := p11RSAKey(t, tok)
	kr := p11Open(t, tok, label, nil)
	ctx := context.Background()
	dek := p11DEK(t)

	_, err := kr.Wrap(ctx, dek, p11Ctx)
	var ckr pkcs11.Error
	if !errors.As(err, &ckr) || ckr != pkcs11.CKR_ARGUMENTS_BAD || !strings.Contains(err.Error(), "RSA-OAEP-256") {
		t.Fatalf("Wrap with SHA-256 OAEP on SoftHSM2: %v, want CKR_ARGUMENTS_BAD for RSA-OAEP-256", err)
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, p11PublicKey(t, tok, label), dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	wk := keyring.WrappedKey{Provider: "pkcs11", KeyID: kr.KeyID(), Algorithm: "RSA-OAEP-256", Ciphertext: ct}
	_, err = kr.Unwrap(ctx, []keyring.WrappedKey{wk}, p11Ctx)
	if !errors.As(err, &ckr) || ckr != pkcs11.CKR_ARGUMENTS_BAD {
		t.Fatalf("Unwrap with SHA-256 OAEP on SoftHSM2: %v, want CKR_ARGUMENTS_BAD", err)
	}
	// An RSA-OAEP (SHA-1) wrapped key is not tried with a SHA-256 keyring.
	wk.Algorithm = "RSA-OAEP"
	if _, err := kr.Unwrap(ctx, []keyring.WrappedKey{wk}, p11Ctx); err == nil || errors.As(err, &ckr) {
		t.Fatalf("RSA-OAEP wrapped key on an RSA-OAEP-256 keyring: %v, want a refusal before the HSM", err)
	}
}

// p11PublicKey reads the public half of the RSA key pair labelled label.
func p11PublicKey(t *testing.T, tok *softhsm.Token, label string) *rsa.PublicKey {
	t.Helper()
	var pub *rsa.PublicKey
	err := tok.Do(func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		o, err := p11Find(ctx, s, pkcs11.CKO_PUBLIC_KEY, label)
		if err != nil {
			return err
		}
		a, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return err
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(new(big.Int).SetBytes(a[1].Value).Int64())}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func p11Find(ctx *pkcs11.Ctx, s pkcs11.SessionHandle, class uint, label string) (pkcs11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return 0, err
	}
	objs, _, err := ctx.FindObjects(s, 2)
	ctx.FindObjectsFinal(s)
	if err != nil {
		return 0, err
	}
	if len(objs) != 1 {
		return 0, fmt.Errorf("%d objects of class %d labelled %q", len(objs), class, label)
	}
	return objs[0], nil
}

func TestPKCS11CrossKey(t *testing.T) {
	tok := softhsm.ForTest(t)
	labelA, labelB := p11AESKey(t, tok), p11AESKey(t, tok)
	a := p11Open(t, tok, labelA, nil)
	b := p11Open(t, tok, labelB, nil)
	ctx := context.Background()

	keys, err := a.Wrap(ctx, p11DEK(t), p11Ctx)
	if err != nil {
		t.Fatal(err)
	}
	// B owns none of A's wrapped keys: it tries nothing.
	_, err = b.Unwrap(ctx, keys, p11Ctx)
	var nm *keyring.NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 0 || len(nm.Available) != 1 || nm.Available[0].KeyID != a.KeyID() {
		t.Fatalf("B unwrapping A's key: %v, want a NoMatchError trying nothing", err)
	}
	// Relabelled as B's, A's wrapped key reaches B's HSM key, which rejects
	// it: the HSM, not the label, decides.
	forged := keys[0]
	forged.KeyID = b.KeyID()
	dek, err := b.Unwrap(ctx, []keyring.WrappedKey{forged}, p11Ctx)
	if !errors.As(err, &nm) || len(nm.Tried) != 1 || dek != nil {
		t.Fatalf("B unwrapping A's key relabelled: %v, want a NoMatchError with one failed attempt", err)
	}
	var ckr pkcs11.Error
	if !errors.As(err, &ckr) {
		t.Fatalf("the attempt error %v does not carry the HSM's error", err)
	}
	// Other providers' keys are not tried either.
	other := keyring.WrappedKey{Provider: "local-aes", KeyID: a.KeyID(), Algorithm: "AES-KWP", Ciphertext: keys[0].Ciphertext}
	if _, err := a.Unwrap(ctx, []keyring.WrappedKey{other}, p11Ctx); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("another provider's key: %v, want a NoMatchError trying nothing", err)
	}
	// An RSA keyring does not unwrap AES-KWP.
	r := p11Open(t, tok, p11RSAKey(t, tok), &keyring.PKCS11Options{OAEPHash: crypto.SHA1})
	if _, err := r.Unwrap(ctx, keys, p11Ctx); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("RSA keyring unwrapping an AES key: %v", err)
	}
}

func TestPKCS11TooManyKeys(t *testing.T) {
	tok := softhsm.ForTest(t)
	kr := p11Open(t, tok, p11AESKey(t, tok), &keyring.PKCS11Options{MaxWrappedKeys: 2})
	keys, err := kr.Wrap(context.Background(), p11DEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	three := []keyring.WrappedKey{keys[0], keys[0], keys[0]}
	if _, err := kr.Unwrap(context.Background(), three, nil); !errors.Is(err, keyring.ErrTooManyKeys) {
		t.Fatalf("three wrapped keys with a limit of two: %v, want ErrTooManyKeys", err)
	}
	if _, err := kr.Unwrap(context.Background(), three[:2], nil); err != nil {
		t.Fatalf("two wrapped keys with a limit of two: %v", err)
	}
}

func TestPKCS11OpenErrors(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := p11AESKey(t, tok)
	const wrongPIN = "wrong-pin-4711"
	opts := func(mod func(*keyring.PKCS11Options)) *keyring.PKCS11Options {
		o := &keyring.PKCS11Options{Module: tok.Module, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN}
		mod(o)
		return o
	}
	check := func(name string, o *keyring.PKCS11Options, want error) {
		t.Helper()
		kr, err := keyring.NewPKCS11(o)
		if err == nil {
			kr.Close()
			t.Fatalf("%s: NewPKCS11 succeeded", name)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", name, err, want)
		}
		if strings.Contains(err.Error(), tok.PIN) || strings.Contains(err.Error(), wrongPIN) {
			t.Fatalf("%s: the error shows a PIN: %v", name, err)
		}
	}
	wrong := opts(func(o *keyring.PKCS11Options) { o.PIN = wrongPIN })
	check("wrong PIN", wrong, keyring.ErrPKCS11PINIncorrect)
	check("token not found", opts(func(o *keyring.PKCS11Options) { o.TokenLabel = "no-such-token" }), keyring.ErrPKCS11TokenNotFound)
	check("key not found", opts(func(o *keyring.PKCS11Options) { o.KeyLabel = "no-such-key" }), keyring.ErrPKCS11KeyNotFound)
	check("module not found", opts(func(o *keyring.PKCS11Options) { o.Module = "/nonexistent/libpkcs11.so" }), os.ErrNotExist)
	check("not a module", opts(func(o *keyring.PKCS11Options) { o.Module = "/etc/hostname" }), nil)
	check("no module", opts(func(o *keyring.PKCS11Options) { o.Module = "" }), nil)
	check("no key label", opts(func(o *keyring.PKCS11Options) { o.KeyLabel = "" }), nil)
	check("long token label", opts(func(o *keyring.PKCS11Options) { o.TokenLabel = strings.Repeat("t", 33) }), nil)
	check("bad hash", opts(func(o *keyring.PKCS11Options) { o.OAEPHash = crypto.SHA512 }), nil)
	check("bad pool size", opts(func(o *keyring.PKCS11Options) { o.Sessions = -1 }), nil)
	if _, err := keyring.NewPKCS11(nil); err == nil {
		t.Fatal("NewPKCS11(nil) succeeded")
	}
	t.Setenv("GEOSEAL_PKCS11_PIN", "")
	check("no PIN", opts(func(o *keyring.PKCS11Options) { o.PIN = "" }), nil)

	// While another keyring of the process is logged in to the token,
	// PKCS#11 would accept any PIN (CKR_USER_ALREADY_LOGGED_IN): the keyring
	// still refuses a wrong one.
	open := p11Open(t, tok, label, nil)
	check("wrong PIN while logged in", wrong, keyring.ErrPKCS11PINIncorrect)
	if _, err := open.Wrap(context.Background(), p11DEK(t), nil); err != nil {
		t.Fatalf("the open keyring after a failed open: %v", err)
	}

	// The PIN can come from the environment.
	t.Setenv("GEOSEAL_PKCS11_PIN", tok.PIN)
	kr, err := keyring.NewPKCS11(opts(func(o *keyring.PKCS11Options) { o.PIN = "" }))
	if err != nil {
		t.Fatalf("PIN from GEOSEAL_PKCS11_PIN: %v", err)
	}
	kr.Close()
}

// TestPKCS11StopsWhenClosed checks that an Unwrap that meets a failure of
// the keyring itself (here: closed) stops instead of trying the rest.
func TestPKCS11StopsWhenClosed(t *testing.T) {
	tok := softhsm.ForTest(t)
	kr := p11Open(t, tok, p11AESKey(t, tok), nil)
	var keys []keyring.WrappedKey
	for range 3 {
		w, err := kr.Wrap(context.Background(), p11DEK(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, w...)
	}
	kr.Close()
	_, err := kr.Unwrap(context.Background(), keys, nil)
	var nm *keyring.NoMatchError
	if !errors.As(err, &nm) || !errors.Is(err, keyring.ErrPKCS11Closed) || len(nm.Tried) != 1 || nm.Skipped != 2 {
		t.Fatalf("Unwrap after Close: %v, want one attempt failing with ErrPKCS11Closed and two skipped", err)
	}
}

// TestPKCS11WeakRSAKey checks that an RSA key below keyring.MinRSABits on
// the token is refused when the keyring opens, as every RSA key entering
// keyring is.
func TestPKCS11WeakRSAKey(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := p11Label("weak-rsa")
	if err := tok.CreateWeakRSAKey(label, 1024); err != nil {
		t.Fatalf("generating a 1024-bit key in SoftHSM2: %v", err)
	}
	kr, err := keyring.NewPKCS11(&keyring.PKCS11Options{Module: tok.Module, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN, OAEPHash: crypto.SHA1})
	if err == nil {
		kr.Close()
		t.Fatal("NewPKCS11 accepted a 1024-bit RSA key")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("at least %d", keyring.MinRSABits)) {
		t.Fatalf("NewPKCS11 with a 1024-bit key: %v, want a refusal naming keyring.MinRSABits", err)
	}
}

// TestPKCS11SharedLogin checks that keyrings on one token share the process's
// login and module: closing one leaves the others working, and the module
// can be used again after the last one is closed.
func TestPKCS11SharedLogin(t *testing.T) {
	tok := softhsm.ForTest(t)
	ctx := context.Background()
	open := func(label string) *keyring.PKCS11 {
		kr, err := keyring.NewPKCS11(&keyring.PKCS11Options{Module: tok.Module, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN, Sessions: 2})
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	label := p11AESKey(t, tok)
	for round := range 2 {
		a, b := open(label), open(label)
		keys, err := a.Wrap(ctx, p11DEK(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("round %d: second Close: %v", round, err)
		}
		if _, err := a.Wrap(ctx, p11DEK(t), nil); !errors.Is(err, keyring.ErrPKCS11Closed) {
			t.Fatalf("Wrap after Close: %v, want ErrPKCS11Closed", err)
		}
		if _, err := a.Unwrap(ctx, keys, nil); !errors.Is(err, keyring.ErrPKCS11Closed) {
			t.Fatalf("Unwrap after Close: %v, want ErrPKCS11Closed", err)
		}
		// b still has the login a made.
		if _, err := b.Unwrap(ctx, keys, nil); err != nil {
			t.Fatalf("round %d: the second keyring after the first closed: %v", round, err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
	// After the last Close the module is finalised and the token logged
	// out: an independent application initialises and logs in afresh.
	err := tok.Do(func(*pkcs11.Ctx, pkcs11.SessionHandle) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
}

func TestPKCS11Concurrent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tok := softhsm.ForTest(t)
	aesKR := p11Open(t, tok, p11AESKey(t, tok), &keyring.PKCS11Options{Sessions: 3})
	krs := []*keyring.PKCS11{aesKR}
	if !fips140.Enforced() {
		krs = append(krs, p11Open(t, tok, p11RSAKey(t, tok), &keyring.PKCS11Options{OAEPHash: crypto.SHA1, Sessions: 2}))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		kr := krs[g%len(krs)]
		wg.Go(func() {
			for range 10 {
				dek := p11DEK(t)
				keys, err := kr.Wrap(ctx, dek, p11Ctx)
				if err != nil {
					errs <- err
					return
				}
				got, err := kr.Unwrap(ctx, keys, p11Ctx)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, dek) {
					errs <- errors.New("unwrapped data key differs")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A done context stops a call before it reaches the HSM, and callers
	// queued for a session give up when theirs is done.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := aesKR.Wrap(cancelled, p11DEK(t), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wrap with a cancelled context: %v", err)
	}
	keys, err := aesKR.Wrap(ctx, p11DEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aesKR.Unwrap(cancelled, keys, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unwrap with a cancelled context: %v", err)
	}
	soon, cancelSoon := context.WithCancel(ctx)
	var ok, gaveUp atomic.Int64
	for range 32 {
		wg.Go(func() {
			_, err := aesKR.Wrap(soon, p11DEK(t), nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, context.Canceled):
				gaveUp.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	cancelSoon()
	wg.Wait()
	if ok.Load()+gaveUp.Load() != 32 {
		t.Fatalf("%d calls succeeded and %d gave up, of 32", ok.Load(), gaveUp.Load())
	}
}

func TestPKCS11Audit(t *testing.T) {
	tok := softhsm.ForTest(t)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	opts := &keyring.PKCS11Options{Logger: logger, PIN: tok.PIN}
	kr := p11Open(t, tok, p11AESKey(t, tok), opts)
	ctx := context.Background()

	dek := p11DEK(t)
	keys, err := kr.Wrap(ctx, dek, p11Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Unwrap(ctx, keys, p11Ctx); err != nil {
		t.Fatal(err)
	}
	bad := keys[0]
	bad.Ciphertext = make([]byte, 40)
	if _, err := kr.Unwrap(ctx, []keyring.WrappedKey{bad}, p11Ctx); err == nil {
		t.Fatal("zero wrapped key unwrapped")
	}
	// A wrapped key of someone else's makes no record.
	if _, err := kr.Unwrap(ctx, []keyring.WrappedKey{{Provider: "local-aes", KeyID: "k"}}, p11Ctx); err == nil {
		t.Fatal("foreign wrapped key unwrapped")
	}
	// Options logged by mistake do not show the PIN.
	logger.Info("options", "opts", opts)
	fmt.Fprintf(&buf, "%v %+v %#v %s\n", opts, *opts, opts, opts)

	out := buf.String()
	for _, secret := range []string{tok.PIN, hex.EncodeToString(dek), base64.StdEncoding.EncodeToString(dek),
		string(dek), hex.EncodeToString(keys[0].Ciphertext), base64.StdEncoding.EncodeToString(keys[0].Ciphertext)} {
		if strings.Contains(out, secret) {
			t.Fatalf("the audit output contains a secret or key bytes:\n%s", out)
		}
	}
	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["op"] != nil {
			records = append(records, r)
		}
	}
	want := []struct{ op, outcome string }{{"wrap", "ok"}, {"unwrap", "ok"}, {"unwrap", "error"}}
	if len(records) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(records), len(want), out)
	}
	for i, w := range want {
		r := records[i]
		if r["op"] != w.op || r["outcome"] != w.outcome || r["provider"] != "pkcs11" ||
			r["key_id"] != kr.KeyID() || r["algorithm"] != "AES-KWP" || r["duration"] == nil {
			t.Errorf("record %d = %v, want op %s, outcome %s", i, r, w.op, w.outcome)
		}
	}
	if records[2]["error"] == nil {
		t.Error("the failed unwrap's record has no error")
	}
}

// p11SecretTemplate is the template of a readable session secret key, as the
// keyring unwraps into.
func p11SecretTemplate(value []byte) []*pkcs11.Attribute {
	a := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	if value != nil {
		a = append(a, pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))
	}
	return a
}

// p11UnwrapValue is the keyring's unwrap sequence: C_UnwrapKey into a
// readable session object, read CKA_VALUE, destroy the object.
func p11UnwrapValue(ctx *pkcs11.Ctx, s pkcs11.SessionHandle, mech []*pkcs11.Mechanism, kek pkcs11.ObjectHandle, ct []byte) ([]byte, error) {
	if len(ct) == 0 {
		// The binding indexes ct[0]; the keyring checks exact lengths
		// before it calls the HSM, and so does this.
		return nil, errors.New("empty wrapped key")
	}
	o, err := ctx.UnwrapKey(s, mech, kek, ct, p11SecretTemplate(nil))
	if err != nil {
		return nil, err
	}
	defer ctx.DestroyObject(s, o)
	a, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, err
	}
	return a[0].Value, nil
}

// TestPKCS11WycheproofAESKWP drives Wycheproof's AES-KWP vectors for 256-bit
// keys through SoftHSM2's CKM_AES_KEY_WRAP_PAD, as the keyring calls it: it
// shows the HSM mechanism is RFC 5649, so wrapped keys made by the HSM can be
// unwrapped by any RFC 5649 implementation and the other way round.
func TestPKCS11WycheproofAESKWP(t *testing.T) {
	tok := softhsm.ForTest(t)
	file := wycheproof.Load(t, wycheproof.AESKeyWrapPad)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}
	var valid, invalid, wrapped, padded int
	err := tok.Do(func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		for _, g := range file.TestGroups {
			if g.KeySize != 256 {
				continue
			}
			for _, tc := range g.Tests {
				key, msg, ct := []byte(tc.Key), []byte(tc.Msg), []byte(tc.CT)
				kek, err := ctx.CreateObject(s, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
					pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
					pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
					pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
					pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
					pkcs11.NewAttribute(pkcs11.CKA_VALUE, key),
				})
				if err != nil {
					return fmt.Errorf("tcId %d: importing the KEK: %w", tc.TcID, err)
				}
				got, err := p11UnwrapValue(ctx, s, mech, kek, ct)
				switch {
				case tc.Valid():
					valid++
					if err != nil {
						t.Errorf("tcId %d (%s): valid vector: %v", tc.TcID, tc.Comment, err)
					} else if !bytes.Equal(got, msg) {
						t.Errorf("tcId %d (%s): unwrapped %x, want %x", tc.TcID, tc.Comment, got, msg)
					}
					// And the wrap direction, as Wrap does it. SoftHSM2
					// zero-pads a key value to a multiple of 8 bytes
					// before wrapping it (SoftHSMv2 #305, #307), so for
					// other lengths its RFC 5649 length indicator is the
					// padded length and the output differs from RFC 5649.
					// The keyring wraps 32-byte keys only.
					if len(msg)%8 != 0 {
						padded++
						break
					}
					o, err := ctx.CreateObject(s, p11SecretTemplate(msg))
					if err != nil {
						return fmt.Errorf("tcId %d: importing the message: %w", tc.TcID, err)
					}
					out, err := ctx.WrapKey(s, mech, kek, o)
					ctx.DestroyObject(s, o)
					if err != nil || !bytes.Equal(out, ct) {
						t.Errorf("tcId %d (%s): wrapped %x, %v; want %x", tc.TcID, tc.Comment, out, err, ct)
					}
					wrapped++
				default: // "invalid": Wycheproof's AES-KWP file has no "acceptable"
					invalid++
					if err == nil {
						t.Errorf("tcId %d (%s, %v): invalid vector unwrapped to %x", tc.TcID, tc.Comment, tc.Flags, got)
					}
				}
				if err := ctx.DestroyObject(s, kek); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("AES-KWP-256 through SoftHSM2: %d valid vectors unwrapped, %d of them also wrapped (%d not a multiple of 8 bytes), %d invalid vectors rejected",
		valid, wrapped, padded, invalid)
	if valid < 20 || invalid < 60 || wrapped < 8 {
		t.Fatalf("only %d valid and %d invalid vectors ran", valid, invalid)
	}
}

// TestPKCS11WycheproofRSAOAEPSHA1 drives Wycheproof's RSA-OAEP (2048-bit,
// SHA-1, MGF1-SHA-1) decryption vectors through SoftHSM2's CKM_RSA_PKCS_OAEP
// with the vectors' private key imported as a session object. It runs in
// FIPS 140-only mode too: the SHA-1 is the HSM's, not this process's.
//
// SoftHSM2 accepts no OAEP label (pSourceData must be empty), so the vectors
// with a label are checked to be refused, not decrypted. A vector whose
// message is empty cannot become a key object; it goes through C_Decrypt,
// the same mechanism on the same key.
func TestPKCS11WycheproofRSAOAEPSHA1(t *testing.T) {
	tok := softhsm.ForTest(t)
	file := wycheproof.Load(t, wycheproof.RSAOAEPSHA1)
	var valid, invalid, labelled, viaDecrypt int
	err := tok.Do(func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		for _, g := range file.TestGroups {
			k, err := g.RSAPrivateKey()
			if err != nil {
				return err
			}
			k.Precompute()
			priv, err := ctx.CreateObject(s, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(k.E)).Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
				pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
			})
			if err != nil {
				return fmt.Errorf("importing the private key: %w", err)
			}
			for _, tc := range g.Tests {
				msg, ct, label := []byte(tc.Msg), []byte(tc.CT), []byte(tc.Label)
				mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
					pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, label))}
				var got []byte
				if tc.Valid() && len(msg) == 0 {
					viaDecrypt++
					if err = ctx.DecryptInit(s, mech, priv); err == nil {
						got, err = ctx.Decrypt(s, ct)
					}
				} else {
					got, err = p11UnwrapValue(ctx, s, mech, priv, ct)
				}
				switch {
				case len(label) > 0:
					labelled++
					var ckr pkcs11.Error
					if !errors.As(err, &ckr) || ckr != pkcs11.CKR_ARGUMENTS_BAD {
						t.Errorf("tcId %d (labelled): %x, %v; want SoftHSM2's CKR_ARGUMENTS_BAD", tc.TcID, got, err)
					}
				case tc.Valid():
					valid++
					if err != nil || !bytes.Equal(got, msg) {
						t.Errorf("tcId %d (%s): %x, %v; want %x", tc.TcID, tc.Comment, got, err, msg)
					}
				default:
					invalid++
					if err == nil {
						t.Errorf("tcId %d (%s, %v): invalid vector decrypted to %x", tc.TcID, tc.Comment, tc.Flags, got)
					}
				}
			}
			if err := ctx.DestroyObject(s, priv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RSA-OAEP-2048-SHA-1 through SoftHSM2: %d valid vectors decrypted (%d by C_Decrypt), %d invalid rejected, %d labelled refused (no label support)",
		valid, viaDecrypt, invalid, labelled)
	if valid < 8 || invalid < 15 {
		t.Fatalf("only %d valid and %d invalid vectors ran", valid, invalid)
	}
}

// ExampleNewPKCS11 wraps a data key with an AES key held in an HSM. Here the
// HSM is a SoftHSM2 test token; with a real HSM, Module is the vendor's
// PKCS#11 library and the token and key exist already, made by the HSM's
// administrators.
func ExampleNewPKCS11() {
	tok, err := softhsm.Shared() // a SoftHSM2 token for this example
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tok.CreateAESKey("example-kek"); err != nil && !errors.Is(err, softhsm.ErrKeyExists) {
		fmt.Println(err)
		return
	}

	kr, err := keyring.NewPKCS11(&keyring.PKCS11Options{
		Module:     tok.Module, // e.g. "/usr/lib/softhsm/libsofthsm2.so"
		TokenLabel: tok.Label,
		KeyLabel:   "example-kek",
		PIN:        tok.PIN, // or leave empty and set GEOSEAL_PKCS11_PIN
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer kr.Close()

	ctx := context.Background()
	dek := make([]byte, 32)
	rand.Read(dek)
	keys, err := kr.Wrap(ctx, dek, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(keys[0].Provider, keys[0].Algorithm, len(keys[0].Ciphertext), "bytes")

	got, err := kr.Unwrap(ctx, keys, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same data key:", bytes.Equal(got, dek))
	// Output:
	// pkcs11 AES-KWP 40 bytes
	// same data key: true
}

// FuzzPKCS11Unwrap hands the HSM hostile wrapped keys: Unwrap must neither
// panic (the binding indexes empty slices) nor return a data key for
// anything but the genuine wrapped key.
func FuzzPKCS11Unwrap(f *testing.F) {
	tok := softhsm.ForTest(f)
	label := p11Label("fuzz")
	if err := tok.CreateAESKey(label); err != nil {
		f.Fatal(err)
	}
	kr, err := keyring.NewPKCS11(&keyring.PKCS11Options{Module: tok.Module, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { kr.Close() })
	dek := bytes.Repeat([]byte{0x42}, 32)
	keys, err := kr.Wrap(context.Background(), dek, nil)
	if err != nil {
		f.Fatal(err)
	}
	genuine := keys[0].Ciphertext
	f.Add(genuine, "AES-KWP")
	f.Add([]byte{}, "AES-KWP")
	f.Add(make([]byte, 40), "AES-KWP")
	f.Add(genuine[:39], "AES-KWP")
	f.Add(genuine, "RSA-OAEP")
	f.Fuzz(func(t *testing.T, ct []byte, algorithm string) {
		wk := keyring.WrappedKey{Provider: "pkcs11", KeyID: kr.KeyID(), Algorithm: algorithm, Ciphertext: ct}
		got, err := kr.Unwrap(context.Background(), []keyring.WrappedKey{wk}, nil)
		if bytes.Equal(ct, genuine) && algorithm == "AES-KWP" {
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("genuine wrapped key: %v", err)
			}
			return
		}
		var nm *keyring.NoMatchError
		if !errors.As(err, &nm) || got != nil {
			t.Fatalf("hostile wrapped key %x (%q): %x, %v; want a NoMatchError", ct, algorithm, got, err)
		}
	})
}
