package keyring

import (
	"context"
	"slices"
	"testing"
)

// anonymous is a keyring that cannot say which keys it wraps for.
type anonymous struct{ Keyring }

// TestKeyIDs checks that every kind of keyring names, without wrapping,
// exactly the key ids its Wrap records.
func TestKeyIDs(t *testing.T) {
	a, b := mustNewAES(t, mustAESKey(t), nil), mustNewAES(t, mustAESKey(t), nil)
	rsa := mustNewRSAPublic(t, &rsaTestKey(t, 0).PublicKey, nil)
	s := kvServer(t)
	s.CreateRSAKey("kek", 2048)
	kv := newTestKeyVault(t, s.KeyURL("kek"), s.Credential(), kvOptions(s))
	for _, tc := range []struct {
		name string
		w    Wrapper
		want int // wrapped keys; 0: cannot tell
	}{
		{"AES", a, 1},
		{"RSA", rsa, 1},
		{"KeyVault", kv, 1},
		{"Multi", NewMulti(a, rsa, kv), 3},
		{"Cache of a Multi", NewCache(NewMulti(b, a), nil), 2},
		{"Multi with an unknown child", NewMulti(a, anonymous{b}), 0},
		{"unknown Wrapper", anonymous{a}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := KeyIDs(tc.w)
			if tc.want == 0 {
				if ids != nil {
					t.Fatalf("KeyIDs = %q, want nil for a Wrapper that cannot tell", ids)
				}
				return
			}
			keys, err := tc.w.Wrap(context.Background(), testDEK(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			var wrapped []string
			for _, k := range keys {
				wrapped = append(wrapped, k.KeyID)
			}
			if len(ids) != tc.want || !slices.Equal(ids, wrapped) {
				t.Fatalf("KeyIDs = %q; Wrap recorded %q", ids, wrapped)
			}
		})
	}
}

// TestKeyVaultInfo checks what Info reports of a key, from the one GET key
// NewKeyVault makes.
func TestKeyVaultInfo(t *testing.T) {
	s := kvServer(t)
	rsaKID := s.CreateRSAKey("soft", 2048)
	s.CreateOctHSMKey("hsm")
	s.SetExportable("hsm", true)
	soft := newTestKeyVault(t, s.KeyURL("soft"), s.Credential(), kvOptions(s))
	hsm := newTestKeyVault(t, s.KeyURL("hsm"), s.Credential(), kvOptions(s))
	s.ResetCounts()
	if got := soft.Info(); got != (KeyVaultKeyInfo{KeyID: rsaKID, KeyType: "RSA"}) {
		t.Errorf("RSA key in a vault: %+v", got)
	}
	if got := hsm.Info(); got.KeyType != "oct-HSM" || !got.HSM || got.ManagedHSM || !got.Exportable || got.KeyID != hsm.KeyID() {
		t.Errorf("exportable oct-HSM key: %+v", got)
	}
	wantCounts(t, s, 0, 0, 0)
}
