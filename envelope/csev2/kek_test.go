package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"io"
	"testing"

	"github.com/geoseal/geoseal/internal/wycheproof"
)

// TestWycheproofA256KW runs the Wycheproof AES-KW vectors for 256-bit keys
// through LocalAESKEK: valid ones wrap to ct and unwrap to msg, invalid ones
// do not unwrap. "acceptable" (8-byte keys, which SP 800-38F does not define)
// must at least never unwrap to anything but msg.
func TestWycheproofA256KW(t *testing.T) {
	ctx := context.Background()
	n := 0
	for _, g := range wycheproof.Load(t, wycheproof.AESKeyWrap).TestGroups {
		if g.KeySize != 256 {
			continue
		}
		for _, tc := range g.Tests {
			n++
			kek, err := LocalAESKEK("wycheproof", tc.Key)
			if err != nil {
				t.Fatal(err)
			}
			msg, ct := []byte(tc.Msg), []byte(tc.CT)
			got, err := kek.UnwrapKey(ctx, AlgorithmA256KW, ct)
			if fips140.Enforced() {
				// internal/keywrap is outside the validated module.
				_, werr := kek.WrapKey(ctx, AlgorithmA256KW, msg)
				if !errors.Is(err, ErrNotApproved) || !errors.Is(werr, ErrNotApproved) || got != nil {
					t.Fatalf("tc %d in FIPS 140-only mode: unwrap %v, wrap %v; want ErrNotApproved", tc.TcID, err, werr)
				}
				continue
			}
			switch tc.Result {
			case "valid":
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("tc %d: unwrap: %v", tc.TcID, err)
				}
				w, err := kek.WrapKey(ctx, AlgorithmA256KW, msg)
				if err != nil || !bytes.Equal(w, ct) {
					t.Errorf("tc %d: wrap: %v", tc.TcID, err)
				}
			case "invalid":
				if err == nil {
					t.Errorf("tc %d (%v): invalid ciphertext unwrapped", tc.TcID, tc.Flags)
				}
			case "acceptable":
				if err == nil && !bytes.Equal(got, msg) {
					t.Errorf("tc %d: unwrapped to the wrong key", tc.TcID)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no 256-bit vectors")
	}
	kek, _ := LocalAESKEK("k", make([]byte, 32))
	if _, err := kek.UnwrapKey(ctx, "RSA-OAEP", make([]byte, 40)); err == nil {
		t.Error("A256KW key accepted algorithm RSA-OAEP")
	}
	if _, err := LocalAESKEK("k", make([]byte, 16)); err == nil {
		t.Error("16-byte A256KW key accepted")
	}
}

// TestWycheproofRSAOAEP runs the Wycheproof RSA-OAEP vectors (empty label,
// as Key Vault's algorithms use) through LocalRSAKEK's unwrap. In FIPS
// 140-only mode the SHA-1 file must be refused with ErrNotApproved.
func TestWycheproofRSAOAEP(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ file, alg string }{
		{wycheproof.RSAOAEPSHA256, AlgorithmRSAOAEP256},
		{wycheproof.RSAOAEPSHA1, AlgorithmRSAOAEP},
	} {
		n := 0
		for _, g := range wycheproof.Load(t, c.file).TestGroups {
			k, err := g.RSAPrivateKey()
			if err != nil {
				t.Fatal(err)
			}
			kek, err := LocalRSAKEK("wycheproof", k, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range g.Tests {
				if len(tc.Label) != 0 {
					continue
				}
				n++
				got, err := kek.UnwrapKey(ctx, c.alg, tc.CT)
				if c.alg == AlgorithmRSAOAEP && fips140.Enforced() {
					if !errors.Is(err, ErrNotApproved) {
						t.Fatalf("%s tc %d: %v, want ErrNotApproved", c.file, tc.TcID, err)
					}
					continue
				}
				switch tc.Result {
				case "valid":
					if err != nil || !bytes.Equal(got, tc.Msg) {
						t.Errorf("%s tc %d: %v", c.file, tc.TcID, err)
					}
				case "invalid":
					if err == nil {
						t.Errorf("%s tc %d: invalid ciphertext decrypted", c.file, tc.TcID)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no vectors with an empty label", c.file)
		}
	}
}

func TestLocalRSAKEK(t *testing.T) {
	ctx := context.Background()
	priv := loadRSAKey(t)
	kek, err := LocalRSAKEK("rsa", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{9}, 40)
	for _, alg := range []string{AlgorithmRSAOAEP256, AlgorithmRSAOAEP} {
		w, err := kek.WrapKey(ctx, alg, key)
		if alg == AlgorithmRSAOAEP && fips140.Enforced() {
			if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("RSA-OAEP wrap in FIPS 140-only mode: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := kek.UnwrapKey(ctx, alg, w)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("%s: %v", alg, err)
		}
	}
	pubOnly, err := LocalRSAKEK("rsa", nil, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pubOnly.WrapKey(ctx, AlgorithmRSAOAEP256, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pubOnly.UnwrapKey(ctx, AlgorithmRSAOAEP256, w); err == nil {
		t.Error("public-only key unwrapped")
	}
	if _, err := kek.UnwrapKey(ctx, "RSA1_5", w); err == nil {
		t.Error("RSA1_5 accepted")
	}
	if _, err := LocalRSAKEK("rsa", nil, nil); err == nil {
		t.Error("no key accepted")
	}
}

func TestParseKeyVaultID(t *testing.T) {
	name, version, err := parseKeyVaultID("https://v.vault.azure.net/keys/cse/0123abcd")
	if err != nil || name != "cse" || version != "0123abcd" {
		t.Fatalf("%q %q %v", name, version, err)
	}
	for _, bad := range []string{"", "cse", "https://v.vault.azure.net/keys/cse", "https://v.vault.azure.net/secrets/cse/1", "https://v.vault.azure.net/keys/cse/1/extra", "://"} {
		if _, _, err := parseKeyVaultID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := KeyVaultKEK(nil, "https://v.vault.azure.net/keys/cse/1"); err == nil {
		t.Error("nil client accepted")
	}
}

// TestLocalAESRefusedInFIPSOnlyMode: A256KW with a local key runs in
// internal/keywrap, geoseal's own code, outside Go's validated module; under
// GODEBUG=fips140=only it is refused with ErrNotApproved, before any work,
// whether a blob is read or the key is called directly. (In Key Vault or
// Managed HSM, A256KW runs in the vault and is not refused: TestKeyVaultKEK.)
func TestLocalAESRefusedInFIPSOnlyMode(t *testing.T) {
	ctx := context.Background()
	vf, kr := loadVectors(t)
	v := vf.find(t, "2.1/A256KW/java/r100/307")
	ed, err := ParseEncryptionData([]byte(v.EncryptionData))
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := kr.Resolve(ctx, vf.AESKID)
	r, rerr := NewReader(ctx, bytes.NewReader(mustHex(t, v.Ciphertext)), ed, kr, nil)
	_, uerr := kek.UnwrapKey(ctx, AlgorithmA256KW, ed.WrappedContentKey.EncryptedKey)
	_, werr := kek.WrapKey(ctx, AlgorithmA256KW, make([]byte, 40))
	if fips140.Enforced() {
		for what, err := range map[string]error{"NewReader": rerr, "UnwrapKey": uerr, "WrapKey": werr} {
			if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%s in FIPS 140-only mode: %v, want ErrNotApproved", what, err)
			}
		}
		return
	}
	if rerr != nil || uerr != nil || werr != nil {
		t.Fatal(rerr, uerr, werr)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, testPlaintext(v.PlaintextSize)) {
		t.Fatalf("A256KW vector: %v", err)
	}
}
