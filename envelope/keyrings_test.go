package envelope

import (
	"bytes"
	"context"
	"crypto"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/internal/softhsm"
	"github.com/geoseal/geoseal/keyring"
)

// TestKeyringKinds round-trips objects through every kind of keyring,
// against the real component where there is one (the azkeys client and a
// Key Vault test server, SoftHSM2), then rewraps each object to another
// keyring and back.
func TestKeyringKinds(t *testing.T) {
	ctx := context.Background()
	newRSA := func(t *testing.T) keyring.Keyring {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		kr, err := keyring.NewRSAPrivate(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	newKeyVault := func(t *testing.T, rsaKey bool) keyring.Keyring {
		srv := kvtest.NewServer(t)
		var kid string
		if rsaKey {
			kid = srv.CreateRSAKey("envelope-rsa", 2048)
		} else {
			kid = srv.CreateOctHSMKey("envelope-oct")
		}
		kr, err := keyring.NewKeyVault(ctx, kid, srv.Credential(), &keyring.KeyVaultOptions{ClientOptions: srv.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	newPKCS11 := func(t *testing.T, rsaKey bool) keyring.Keyring {
		tok := softhsm.ForTest(t)
		label := "envelope-" + hex.EncodeToString(randomBytes(6))
		opts := &keyring.PKCS11Options{Module: tok.Module, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN}
		var err error
		if rsaKey {
			err = tok.CreateRSAKey(label, 2048)
			opts.OAEPHash = crypto.SHA1 // all SoftHSM2 supports
		} else {
			err = tok.CreateAESKey(label)
		}
		if err != nil {
			t.Fatal(err)
		}
		kr, err := keyring.NewPKCS11(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kr.Close() })
		return kr
	}

	for _, tc := range []struct {
		name string
		new  func(t *testing.T) keyring.Keyring
		// notApproved is set for keyrings refused in FIPS 140-only mode.
		notApproved bool
	}{
		{name: "local-aes", new: func(t *testing.T) keyring.Keyring { return formattest.NewAES(t) }},
		{name: "local-rsa", new: newRSA},
		{name: "keyvault-rsa", new: func(t *testing.T) keyring.Keyring { return newKeyVault(t, true) }},
		{name: "keyvault-oct-hsm", new: func(t *testing.T) keyring.Keyring { return newKeyVault(t, false) }},
		{name: "pkcs11-aes", new: func(t *testing.T) keyring.Keyring { return newPKCS11(t, false) }},
		{name: "pkcs11-rsa-oaep-sha1", new: func(t *testing.T) keyring.Keyring { return newPKCS11(t, true) }, notApproved: true},
		{name: "multi", new: func(t *testing.T) keyring.Keyring {
			return keyring.NewMulti(formattest.NewAES(t), newRSA(t), newKeyVault(t, true))
		}},
		{name: "cache-reusing-data-keys", new: func(t *testing.T) keyring.Keyring {
			return keyring.NewCache(formattest.NewAES(t), &keyring.CacheOptions{ReuseDataKey: &keyring.ReuseOptions{}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr := tc.new(t)
			pt := randomBytes(10000)
			ec := keyring.Context{"keyring": tc.name}
			opts := &EncryptOptions{ChunkSize: 4 << 10, Context: ec, Concurrency: 2}
			var buf bytes.Buffer
			_, err := Encrypt(ctx, &buf, kr, opts)
			if tc.notApproved && fips140.Enforced() {
				if !errors.Is(err, keyring.ErrNotApproved) {
					t.Fatalf("Encrypt in FIPS 140-only mode: %v, want keyring.ErrNotApproved", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			objs := [][]byte{encryptBytes(t, kr, pt, opts), encryptBytes(t, kr, pt, opts)}
			var ids [][32]byte
			var wrapped [][]byte
			for _, obj := range objs {
				h, err := Inspect(bytes.NewReader(obj))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, h.MessageID)
				wrapped = append(wrapped, h.WrappedKeys[0].Ciphertext)
				t.Logf("%d wrapped keys: %s/%s", len(h.WrappedKeys), h.WrappedKeys[0].Provider, h.WrappedKeys[0].Algorithm)

				dopts := &DecryptOptions{RequireContext: ec, Concurrency: 2}
				if got, err := decryptBytes(kr, obj, dopts); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt: %d bytes, %v", len(got), err)
				}
				if got, err := decryptAtBytes(kr, obj, dopts); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("DecryptAt: %d bytes, %v", len(got), err)
				}

				// Rotate to a local key, and back to the keyring.
				other := formattest.NewAES(t)
				hdr, err := Rewrap(ctx, obj[:h.Size], kr, other)
				if err != nil {
					t.Fatalf("Rewrap to local-aes: %v", err)
				}
				moved := append(hdr, obj[h.Size:]...)
				if got, err := decryptBytes(other, moved, dopts); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt after Rewrap: %d bytes, %v", len(got), err)
				}
				var nm *keyring.NoMatchError
				if _, err := decryptBytes(kr, moved, dopts); !errors.As(err, &nm) {
					t.Fatalf("the rotated-away keyring still opens the object: %v", err)
				}
				back, err := Rewrap(ctx, hdr, other, kr)
				if err != nil {
					t.Fatalf("Rewrap back: %v", err)
				}
				if got, err := decryptBytes(kr, append(back, obj[h.Size:]...), dopts); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt after Rewrap back: %d bytes, %v", len(got), err)
				}
			}
			if ids[0] == ids[1] {
				t.Error("two objects share a message id")
			}
			// A keyring.DataKeyGenerator is asked for the data key: the
			// reusing cache hands both objects the same wrapped key (each
			// still has its own message id, so its own content key).
			if _, ok := kr.(keyring.DataKeyGenerator); ok != bytes.Equal(wrapped[0], wrapped[1]) {
				t.Errorf("DataKeyGenerator %v, but the objects share their wrapped key: %v", ok, !ok)
			}
		})
	}
}
