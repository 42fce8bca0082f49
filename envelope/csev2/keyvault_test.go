package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"io"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// TestKeyVaultKEK wraps and unwraps CEKs in a Key Vault (the kvtest HTTPS
// server, through the real azkeys client and its challenge flow): RSA keys
// with RSA-OAEP-256 and a Managed-HSM-style AES key with A256KW. A blob keeps
// decrypting after its key rotates, because the versioned key id is stored.
func TestKeyVaultKEK(t *testing.T) {
	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := KeyVaultKEK(client, kv.KeyURL("unversioned")); err == nil {
		t.Fatal("versionless key URL accepted")
	}
	for _, c := range []struct {
		kid, alg string
	}{
		{kv.CreateRSAKey("cse-rsa", 2048), AlgorithmRSAOAEP256},
		{kv.CreateOctHSMKey("cse-hsm"), AlgorithmA256KW},
	} {
		kek, err := KeyVaultKEK(client, c.kid)
		if err != nil {
			t.Fatal(err)
		}
		pt := testPlaintext(5000)
		var ct []byte
		var ed *EncryptionData
		if fips140.Enforced() {
			_, err := NewWriter(ctx, io.Discard, kek, &WriterOptions{KeyWrapAlgorithm: c.alg})
			if !errors.Is(err, ErrNotApproved) {
				t.Fatalf("NewWriter in FIPS 140-only mode: %v", err)
			}
			// Reading still works: wrap in the vault, seal with the test's GCM.
			cek := bytes.Repeat([]byte{3}, 32)
			prefix := versionPrefix(Protocol20)
			wrapped, err := kek.WrapKey(ctx, c.alg, append(prefix[:], cek...))
			if err != nil {
				t.Fatal(err)
			}
			ct = testSeal(t, cek, NoncePython, DefaultRegionLength, pt)
			ed = &EncryptionData{
				WrappedContentKey:   WrappedContentKey{KeyID: c.kid, EncryptedKey: wrapped, Algorithm: c.alg},
				EncryptionAgent:     EncryptionAgent{Protocol: Protocol20, EncryptionAlgorithm: algorithmAESGCM256},
				EncryptedRegionInfo: &EncryptedRegionInfo{DataLength: DefaultRegionLength, NonceLength: nonceSize},
			}
		} else {
			ct, ed = encrypt(t, kek, &WriterOptions{KeyWrapAlgorithm: c.alg}, pt)
		}
		if ed.WrappedContentKey.KeyID != c.kid || ed.WrappedContentKey.Algorithm != c.alg {
			t.Fatalf("metadata: %+v", ed.WrappedContentKey)
		}
		name, _, _ := parseKeyVaultID(c.kid)
		kv.RotateKey(name)
		r, err := NewReader(ctx, bytes.NewReader(ct), ed, Keys(kek), nil)
		if err != nil {
			t.Fatalf("%s after rotation: %v", c.alg, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: %v", c.alg, err)
		}
	}
}

// TestKeyVaultResolver resolves the key ids of blobs written under two
// versions of a vault key from the unversioned key URL, and refuses, before
// any request, key ids of another key or vault, and other versions when the
// URL pins one.
func TestKeyVaultResolver(t *testing.T) {
	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1 := kv.CreateOctHSMKey("resolver")
	v2 := kv.RotateKey("resolver")
	other := kv.CreateOctHSMKey("other")

	anyVersion, err := KeyVaultResolver(client, kv.KeyURL("resolver"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := KeyVaultResolver(client, v1)
	if err != nil {
		t.Fatal(err)
	}
	cek := append(bytes.Repeat([]byte{0}, 8), bytes.Repeat([]byte{5}, 32)...)
	for _, kid := range []string{v1, v2} {
		kek, err := anyVersion.Resolve(ctx, kid)
		if err != nil {
			t.Fatalf("resolve %s: %v", kid, err)
		}
		if kek.KeyID() != kid {
			t.Fatalf("resolved %s to %s", kid, kek.KeyID())
		}
		wrapped, err := kek.WrapKey(ctx, AlgorithmA256KW, cek)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kek.UnwrapKey(ctx, AlgorithmA256KW, wrapped)
		if err != nil || !bytes.Equal(got, cek) {
			t.Fatalf("unwrap with %s: %v", kid, err)
		}
	}
	kv.ResetCounts()
	for _, c := range []struct {
		r   KeyResolver
		kid string
	}{
		{anyVersion, other},
		{anyVersion, kv.KeyURL("resolver")}, // no version
		{anyVersion, "https://elsewhere.vault.azure.net/keys/resolver/" + v1[len(v1)-32:]},
		{anyVersion, "not a url"},
		{pinned, v2},
	} {
		if _, err := c.r.Resolve(ctx, c.kid); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrKeyNotFound", c.kid, err)
		}
	}
	if c := kv.Counts(); c.GetKey+c.WrapKey+c.UnwrapKey != 0 {
		t.Errorf("refused key ids made requests: %+v", c)
	}
	if _, err := KeyVaultResolver(client, "https://x/secrets/k"); err == nil {
		t.Error("a secret URL accepted as a key URL")
	}
}

// TestCurrentKeyVaultKEK binds an unversioned key URL to the key's current
// version with one GET, and keeps a versioned URL as it is without any.
func TestCurrentKeyVaultKEK(t *testing.T) {
	kv := kvtest.NewServer(t)
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1 := kv.CreateOctHSMKey("current")
	v2 := kv.RotateKey("current")
	kv.ResetCounts()
	kek, err := CurrentKeyVaultKEK(ctx, client, kv.KeyURL("current"))
	if err != nil {
		t.Fatal(err)
	}
	if kek.KeyID() != v2 || kv.Counts().GetKey != 1 {
		t.Fatalf("unversioned URL bound to %s with %d GETs, want %s with 1", kek.KeyID(), kv.Counts().GetKey, v2)
	}
	kv.ResetCounts()
	kek, err = CurrentKeyVaultKEK(ctx, client, v1)
	if err != nil || kek.KeyID() != v1 || kv.Counts().GetKey != 0 {
		t.Fatalf("versioned URL: %v, %v, %d GETs", kek, err, kv.Counts().GetKey)
	}
	if _, err := CurrentKeyVaultKEK(ctx, client, kv.KeyURL("missing")); err == nil {
		t.Fatal("a key the vault does not have was accepted")
	}
}
