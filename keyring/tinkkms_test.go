package keyring

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/geoseal/geoseal/internal/kvtest"
)

// tinkURI turns a Key Vault key URL into its Tink key URI.
func tinkURI(keyURL string) string {
	return TinkKeyVaultScheme + strings.TrimPrefix(keyURL, "https://")
}

func newTinkKMS(t *testing.T, s *kvtest.Server) registry.KMSClient {
	t.Helper()
	c, err := NewTinkKMSClient(tinkURI(s.URL)+"/keys/", s.Credential(), kvOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustGetAEAD(t *testing.T, c registry.KMSClient, uri string) tink.AEAD {
	t.Helper()
	a, err := c.GetAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTinkKMSRoundTrip encrypts and decrypts through the AEAD of an RSA and
// an oct-HSM key (and a real vault's key when GEOSEAL_TEST_KEYVAULT_URL is
// set), with associated data.
func TestTinkKMSRoundTrip(t *testing.T) {
	for _, target := range kvTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			c, err := NewTinkKMSClient(tinkURI(target.keyURL), target.cred, target.options())
			if err != nil {
				t.Fatal(err)
			}
			uri := tinkURI(target.keyURL)
			if !c.Supported(uri) {
				t.Fatalf("Supported(%q) = false", uri)
			}
			if target.srv != nil {
				target.srv.ResetCounts()
			}
			a := mustGetAEAD(t, c, uri)
			pt, ad := []byte("technical data, ECCN 9E003"), []byte("object 17")
			ct, err := a.Encrypt(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(ct, pt) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := a.Decrypt(ct, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Decrypt = %q, %v", got, err)
			}
			if _, err := a.Decrypt(ct, []byte("object 18")); !errors.Is(err, errTinkKVOpen) {
				t.Fatalf("other associated data: %v", err)
			}
			// Empty plaintext and associated data are fine.
			ct2, err := a.Encrypt(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := a.Decrypt(ct2, nil); err != nil || len(got) != 0 {
				t.Fatalf("empty: %q, %v", got, err)
			}
			// The AEAD is cached per key URI: no second GET.
			mustGetAEAD(t, c, uri)
			if target.srv == nil {
				return
			}
			cnt := target.srv.Counts()
			wantWrap := 0
			if target.alg == "A256KW" {
				wantWrap = 2
			}
			if cnt.GetKey != 1 || cnt.WrapKey != wantWrap || cnt.UnwrapKey != 3 {
				t.Fatalf("Key Vault calls %+v: want 1 GET key, %d wrapkey, 3 unwrapkey", cnt, wantWrap)
			}
		})
	}
}

// TestTinkKMSSupported checks which key URIs a client takes on.
func TestTinkKMSSupported(t *testing.T) {
	s := kvtest.NewServer(t)
	s.CreateRSAKey("k", 2048)
	host := strings.TrimPrefix(s.URL, "https://")
	c := newTinkKMS(t, s)
	for uri, want := range map[string]bool{
		"azure-keyvault://" + host + "/keys/k":                   true,
		"azure-keyvault://" + host + "/keys/k/0123abcd":          true,
		"azure-keyvault://other.vault.azure.net/keys/k":          false, // outside the prefix
		"gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys": false,
		"azure-keyvault://" + host + "/keys/":                    false,
		"azure-keyvault://" + host + "/keys/k/v/extra":           false,
		"azure-keyvault://" + host + "/keys/k?x=1":               false,
	} {
		if got := c.Supported(uri); got != want {
			t.Errorf("Supported(%q) = %v, want %v", uri, got, want)
		}
		if !want {
			if _, err := c.GetAEAD(uri); err == nil {
				t.Errorf("GetAEAD(%q) succeeded", uri)
			}
		}
	}
	if _, err := NewTinkKMSClient("https://"+host+"/keys/", s.Credential(), nil); err == nil {
		t.Error("a prefix without the azure-keyvault scheme was accepted")
	}
	if _, err := NewTinkKMSClient(TinkKeyVaultScheme, nil, nil); err == nil {
		t.Error("nil credential accepted")
	}
	if _, err := c.GetAEAD("azure-keyvault://" + host + "/keys/missing"); err == nil {
		t.Error("GetAEAD of a missing key succeeded")
	}
}

// TestTinkKMSTamper changes each part of a ciphertext.
func TestTinkKMSTamper(t *testing.T) {
	s := kvtest.NewServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateRSAKey("other", 2048)
	c := newTinkKMS(t, s)
	a := mustGetAEAD(t, c, tinkURI(s.KeyURL("rsa")))
	ct, err := a.Encrypt([]byte("payload"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseTinkKVCiphertext(ct)
	if err != nil {
		t.Fatal(err)
	}
	if p.alg != "RSA-OAEP-256" || len(p.wrapped) != 256 || len(p.sealed) != 12+7+16 {
		t.Fatalf("parsed %+v", p)
	}
	algAt := 2
	versionAt := 2 + len(p.alg) + 1
	wrappedAt := versionAt + len(p.version) + 2
	for _, tc := range []struct {
		name string
		at   int
		want func(error) bool
	}{
		{"format version", 0, func(err error) bool { return errors.Is(err, errTinkKVFormat) }},
		{"algorithm", algAt, func(err error) bool {
			var nm *NoMatchError
			return errors.As(err, &nm) && errors.Is(err, errors.ErrUnsupported)
		}},
		{"key version", versionAt, func(err error) bool {
			var nm *NoMatchError
			return errors.As(err, &nm) // asks the vault for a version that does not exist, or refuses the id
		}},
		{"wrapped key", wrappedAt + 5, func(err error) bool { var nm *NoMatchError; return errors.As(err, &nm) }},
		{"nonce", len(ct) - len(p.sealed), func(err error) bool { return errors.Is(err, errTinkKVOpen) }},
		{"body", len(ct) - 17, func(err error) bool { return errors.Is(err, errTinkKVOpen) }},
		{"tag", len(ct) - 1, func(err error) bool { return errors.Is(err, errTinkKVOpen) }},
	} {
		bad := bytes.Clone(ct)
		bad[tc.at] ^= 0x01
		if got, err := a.Decrypt(bad, nil); got != nil || !tc.want(err) {
			t.Errorf("%s changed: %q, %v", tc.name, got, err)
		}
	}
	for _, n := range []int{0, 1, 5, wrappedAt, len(ct) - len(p.sealed), len(ct) - 1} {
		if _, err := a.Decrypt(ct[:n], nil); err == nil {
			t.Errorf("truncated to %d bytes: decrypted", n)
		}
	}
	// Another key of the same vault does not decrypt it.
	other := mustGetAEAD(t, c, tinkURI(s.KeyURL("other")))
	_, err = other.Decrypt(ct, nil)
	asResponseError(t, asNoMatch(t, err), http.StatusNotFound) // that version does not exist for "other"
}

// TestTinkKMSRotation checks that ciphertexts made before a key rotation
// decrypt after it.
func TestTinkKMSRotation(t *testing.T) {
	s := kvtest.NewServer(t)
	s.CreateOctHSMKey("hsm")
	uri := tinkURI(s.KeyURL("hsm"))
	old, err := mustGetAEAD(t, newTinkKMS(t, s), uri).Encrypt([]byte("v1"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := s.RotateKey("hsm")
	a := mustGetAEAD(t, newTinkKMS(t, s), uri) // a new client resolves v2
	fresh, err := a.Encrypt([]byte("v2"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := parseTinkKVCiphertext(fresh); !strings.HasSuffix(v2, "/"+p.version) {
		t.Fatalf("new ciphertext made with version %q, want %s", p.version, v2)
	}
	if got, err := a.Decrypt(old, []byte("ad")); err != nil || string(got) != "v1" {
		t.Fatalf("pre-rotation ciphertext: %q, %v", got, err)
	}
}

// TestTinkKMSEnvelope uses the client the way Tink does: registered, named
// by a KMS envelope key template in a keyset. Tink's envelope encrypts its
// data with its own AES-GCM, which uses cipher.NewGCM and so does not run in
// FIPS 140-only mode; there the test asserts that refusal, and that the Key
// Vault AEAD itself (NewGCMWithRandomNonce) still works.
func TestTinkKMSEnvelope(t *testing.T) {
	s := kvtest.NewServer(t)
	s.CreateRSAKey("rsa", 2048)
	uri := tinkURI(s.KeyURL("rsa"))
	registry.RegisterKMSClient(newTinkKMS(t, s))
	t.Cleanup(registry.ClearKMSClients)

	template, err := aead.CreateKMSEnvelopeAEADKeyTemplate(uri, aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	handle, err := keyset.NewHandle(template)
	if err != nil {
		t.Fatal(err)
	}
	s.ResetCounts()
	primitive, err := aead.New(handle)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := primitive.Encrypt([]byte("blueprint"), []byte("ad"))
	if fips140.Enforced() {
		if err == nil {
			t.Fatal("Tink's envelope AES-GCM ran in FIPS 140-only mode; update this test")
		}
		remote := mustGetAEAD(t, newTinkKMS(t, s), uri)
		ct, err := remote.Encrypt([]byte("blueprint"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := remote.Decrypt(ct, []byte("ad")); err != nil || string(got) != "blueprint" {
			t.Fatalf("%q, %v", got, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := primitive.Decrypt(ct, []byte("ad"))
	if err != nil || string(got) != "blueprint" {
		t.Fatalf("%q, %v", got, err)
	}
	if c := s.Counts(); c.GetKey != 1 || c.WrapKey != 0 || c.UnwrapKey != 1 {
		t.Fatalf("Key Vault calls %+v", c)
	}
}

func FuzzParseTinkKVCiphertext(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 6, 'A', '2', '5', '6', 'K', 'W', 1, 'a', 0, 40})
	f.Add(append([]byte{1, 12, 'R', 'S', 'A', '-', 'O', 'A', 'E', 'P', '-', '2', '5', '6', 2, 'v', '1', 0, 4, 1, 2, 3, 4}, make([]byte, 28)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseTinkKVCiphertext(data)
		if err != nil {
			if p != nil {
				t.Fatal("result with error")
			}
			return
		}
		if len(p.header)+len(p.sealed) != len(data) || !bytes.Equal(p.header, data[:len(p.header)]) ||
			len(p.sealed) < tinkKVGCMOverhead || len(p.wrapped) > maxTinkKVWrapped {
			t.Fatalf("inconsistent parse %+v of %x", p, data)
		}
	})
}

// ExampleNewTinkKMSClient makes a Tink AEAD of a Managed HSM key (here a
// local test server's oct-HSM key). With a real HSM the prefix would be
// "azure-keyvault://contoso.managedhsm.azure.net/keys/".
func ExampleNewTinkKMSClient() {
	srv, err := kvtest.Start()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.CreateOctHSMKey("tink-kek")
	vault := strings.TrimPrefix(srv.URL, "https://")

	client, err := NewTinkKMSClient("azure-keyvault://"+vault+"/keys/", srv.Credential(), &KeyVaultOptions{ClientOptions: srv.ClientOptions()})
	if err != nil {
		panic(err)
	}
	remote, err := client.GetAEAD("azure-keyvault://" + vault + "/keys/tink-kek")
	if err != nil {
		panic(err)
	}
	ct, err := remote.Encrypt([]byte("drawing 42"), []byte("context"))
	if err != nil {
		panic(err)
	}
	pt, err := remote.Decrypt(ct, []byte("context"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", pt)
	// Output: drawing 42
}
