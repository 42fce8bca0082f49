//go:build cgo

package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
)

// labelSeq makes key labels unique within the process, since every test
// shares one token.
var labelSeq atomic.Int64

func uniqueLabel(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, labelSeq.Add(1))
}

// inspect opens the module as an independent application would, finds the
// objects labelled label and returns the requested attributes of each, by
// class. It also checks that the helper left the module finalised and the
// token logged out, as its documentation promises.
func inspect(t *testing.T, tok *Token, label string, attrs ...uint) map[uint]map[uint][]byte {
	t.Helper()
	ctx, s, done := openApplication(t, tok, tok.Module)
	defer done()
	if err := ctx.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := ctx.FindObjects(s, 10)
	ctx.FindObjectsFinal(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[uint]map[uint][]byte)
	for _, o := range objs {
		cls, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil)})
		if err != nil {
			t.Fatal(err)
		}
		class := uint(cls[0].Value[0])
		if out[class] != nil {
			t.Fatalf("two objects of class %d labelled %q", class, label)
		}
		out[class] = make(map[uint][]byte)
		for _, a := range attrs {
			got, err := ctx.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
			if err != nil {
				continue // not applicable to this class
			}
			out[class][a] = got[0].Value
		}
	}
	return out
}

// openApplication loads module as an independent application would,
// initialises it, and opens a logged-in session on the token; done undoes
// all of it. It fails the test if the module was left initialised or the
// token logged in, as this package's helpers promise not to.
func openApplication(t *testing.T, tok *Token, module string) (_ *pkcs11.Ctx, _ pkcs11.SessionHandle, done func()) {
	t.Helper()
	ctx := pkcs11.New(module)
	if ctx == nil {
		t.Fatalf("cannot load the module %s", module)
	}
	var undo []func()
	done = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	undo = append(undo, ctx.Destroy)
	fail := func(format string, args ...any) {
		done()
		t.Fatalf(format, args...)
	}
	if err := ctx.Initialize(); err != nil {
		fail("C_Initialize: %v (the helper must finalise what it initialised)", err)
	}
	undo = append(undo, func() { ctx.Finalize() })
	slot, err := tok.slot(ctx)
	if err != nil {
		fail("%v", err)
	}
	s, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		fail("%v", err)
	}
	undo = append(undo, func() { ctx.CloseSession(s) })
	if err := ctx.Login(s, pkcs11.CKU_USER, tok.PIN); err != nil {
		fail("C_Login: %v (the helper must log out when it logged in)", err)
	}
	undo = append(undo, func() { ctx.Logout(s) })
	return ctx, s, done
}

func isTrue(v []byte) bool  { return len(v) == 1 && v[0] == 1 }
func isFalse(v []byte) bool { return len(v) == 1 && v[0] == 0 }

func TestForTestIsSharedAndConfigured(t *testing.T) {
	a, b := ForTest(t), ForTest(t)
	if a != b {
		t.Fatal("ForTest returned two tokens in one process")
	}
	if a.Module != DefaultModule || a.Label == "" || a.PIN == "" {
		t.Fatalf("token %+v lacks fields", *a)
	}
	conf := filepath.Join(a.Dir, "softhsm2.conf")
	if got := os.Getenv("SOFTHSM2_CONF"); got != conf {
		t.Fatalf("SOFTHSM2_CONF = %q, want %q", got, conf)
	}
	if _, err := os.Stat(filepath.Join(a.Dir, "tokens")); err != nil {
		t.Fatal(err)
	}
	// The process cannot move to another configuration.
	if _, err := New(t.TempDir(), "other", "123456"); !errors.Is(err, ErrConfigured) {
		t.Fatalf("New in another directory: %v, want ErrConfigured", err)
	}
}

func TestCreateAESKey(t *testing.T) {
	tok := ForTest(t)
	label := uniqueLabel("aes")
	if err := tok.CreateAESKey(label); err != nil {
		t.Fatal(err)
	}
	objs := inspect(t, tok, label, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_TOKEN,
		pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP,
		pkcs11.CKA_ENCRYPT, pkcs11.CKA_VALUE)
	if len(objs) != 1 || objs[pkcs11.CKO_SECRET_KEY] == nil {
		t.Fatalf("want one secret key labelled %q, got classes %v", label, objs)
	}
	k := objs[pkcs11.CKO_SECRET_KEY]
	if k[pkcs11.CKA_KEY_TYPE][0] != pkcs11.CKK_AES || k[pkcs11.CKA_VALUE_LEN][0] != 32 {
		t.Errorf("not an AES-256 key: type %x, length %x", k[pkcs11.CKA_KEY_TYPE], k[pkcs11.CKA_VALUE_LEN])
	}
	for name, ok := range map[string]bool{
		"token": isTrue(k[pkcs11.CKA_TOKEN]), "sensitive": isTrue(k[pkcs11.CKA_SENSITIVE]),
		"not extractable": isFalse(k[pkcs11.CKA_EXTRACTABLE]), "wrap": isTrue(k[pkcs11.CKA_WRAP]),
		"unwrap": isTrue(k[pkcs11.CKA_UNWRAP]), "no encrypt": isFalse(k[pkcs11.CKA_ENCRYPT]),
	} {
		if !ok {
			t.Errorf("key is not %s", name)
		}
	}
	if _, readable := k[pkcs11.CKA_VALUE]; readable {
		t.Error("the key's value is readable")
	}
	if err := tok.CreateAESKey(label); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second key with one label: %v, want ErrKeyExists", err)
	}
}

func TestCreateRSAKey(t *testing.T) {
	tok := ForTest(t)
	label := uniqueLabel("rsa")
	if err := tok.CreateRSAKey(label, 2048); err != nil {
		t.Fatal(err)
	}
	objs := inspect(t, tok, label, pkcs11.CKA_ID, pkcs11.CKA_MODULUS, pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP,
		pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_PRIVATE_EXPONENT)
	pub, priv := objs[pkcs11.CKO_PUBLIC_KEY], objs[pkcs11.CKO_PRIVATE_KEY]
	if len(objs) != 2 || pub == nil || priv == nil {
		t.Fatalf("want a public and a private key labelled %q, got %v", label, objs)
	}
	if len(pub[pkcs11.CKA_MODULUS]) != 256 {
		t.Errorf("modulus is %d bytes, want 256", len(pub[pkcs11.CKA_MODULUS]))
	}
	if string(pub[pkcs11.CKA_ID]) != string(priv[pkcs11.CKA_ID]) || len(pub[pkcs11.CKA_ID]) == 0 {
		t.Errorf("halves do not share a CKA_ID: %x, %x", pub[pkcs11.CKA_ID], priv[pkcs11.CKA_ID])
	}
	if !isTrue(pub[pkcs11.CKA_WRAP]) || !isTrue(priv[pkcs11.CKA_UNWRAP]) {
		t.Error("public key cannot wrap or private key cannot unwrap")
	}
	if !isTrue(priv[pkcs11.CKA_SENSITIVE]) || !isFalse(priv[pkcs11.CKA_EXTRACTABLE]) {
		t.Error("private key is not sensitive and non-extractable")
	}
	if _, readable := priv[pkcs11.CKA_PRIVATE_EXPONENT]; readable {
		t.Error("private exponent is readable")
	}
	if err := tok.CreateRSAKey(label, 2048); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second key pair with one label: %v, want ErrKeyExists", err)
	}
	if err := tok.CreateRSAKey(uniqueLabel("rsa"), 1024); err == nil {
		t.Fatal("1024-bit RSA key accepted")
	}
	// Weak keys, for the tests that check they are refused, only on request.
	weak := uniqueLabel("weak")
	if err := tok.CreateWeakRSAKey(weak, 1024); err != nil {
		t.Fatalf("CreateWeakRSAKey 1024: %v", err)
	}
	if got := inspect(t, tok, weak, pkcs11.CKA_MODULUS); len(got[pkcs11.CKO_PUBLIC_KEY][pkcs11.CKA_MODULUS]) != 128 {
		t.Fatalf("weak key modulus of %d bytes, want 128", len(got[pkcs11.CKO_PUBLIC_KEY][pkcs11.CKA_MODULUS]))
	}
	if err := tok.CreateWeakRSAKey(uniqueLabel("weak"), 2048); err == nil {
		t.Fatal("CreateWeakRSAKey made a 2048-bit key")
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	for _, c := range []struct{ label, pin string }{
		{"", "123456"}, {"a-label-that-is-longer-than-32-bytes", "123456"}, {"ok", "12"},
	} {
		if _, err := New(t.TempDir(), c.label, c.pin); err == nil {
			t.Errorf("New(%q, PIN of %d bytes) succeeded", c.label, len(c.pin))
		}
	}
}

// TestCountingModule checks that the counting module forwards to SoftHSM2
// and counts exactly the key operations made through it.
func TestCountingModule(t *testing.T) {
	tok := ForTest(t)
	label := uniqueLabel("count")
	if err := tok.CreateAESKey(label); err != nil {
		t.Fatal(err)
	}
	m := tok.CountingModule(t)
	ctx, s, done := openApplication(t, tok, m.Path)
	defer done()
	if err := ctx.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := ctx.FindObjects(s, 1)
	ctx.FindObjectsFinal(s)
	if err != nil || len(objs) != 1 {
		t.Fatalf("finding the key: %v, %d objects", err, len(objs))
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}
	template := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
	}
	for range 3 {
		if _, err := ctx.UnwrapKey(s, mech, objs[0], make([]byte, 40), template); err == nil {
			t.Fatal("SoftHSM2 unwrapped 40 zero bytes")
		}
	}
	if n := m.Count("C_UnwrapKey"); n != 3 {
		t.Fatalf("counted %d C_UnwrapKey calls, want 3", n)
	}
	if n := m.Count("C_WrapKey"); n != 0 {
		t.Fatalf("counted %d C_WrapKey calls, want 0", n)
	}
	m.Reset()
	if n := m.Count("C_UnwrapKey"); n != 0 {
		t.Fatalf("after Reset: %d", n)
	}
}
