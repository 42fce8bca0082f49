package keyring

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"go.uber.org/goleak"

	"github.com/geoseal/geoseal/internal/kvtest"
)

// kvTarget is a Key Vault key the round-trip tests run against: a key of the
// kvtest server, or, when GEOSEAL_TEST_KEYVAULT_URL names one, a key in a
// real vault reached with azidentity's DefaultAzureCredential.
type kvTarget struct {
	name   string
	keyURL string
	cred   azcore.TokenCredential
	opts   *azkeys.ClientOptions
	srv    *kvtest.Server // nil for a real vault
	alg    string         // expected wrapping algorithm; "" if unknown
}

func (k kvTarget) options() *KeyVaultOptions {
	return &KeyVaultOptions{ClientOptions: k.opts}
}

func kvTargets(t *testing.T) []kvTarget {
	t.Helper()
	s := kvtest.NewServer(t)
	s.CreateRSAKey("rsa-key", 2048)
	s.CreateOctHSMKey("hsm-key")
	targets := []kvTarget{
		{"kvtest RSA", s.KeyURL("rsa-key"), s.Credential(), s.ClientOptions(), s, "RSA-OAEP-256"},
		{"kvtest oct-HSM", s.KeyURL("hsm-key"), s.Credential(), s.ClientOptions(), s, "A256KW"},
	}
	if u := os.Getenv("GEOSEAL_TEST_KEYVAULT_URL"); u != "" {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			t.Fatalf("GEOSEAL_TEST_KEYVAULT_URL is set but DefaultAzureCredential fails: %v", err)
		}
		targets = append(targets, kvTarget{name: "real vault", keyURL: u, cred: cred})
	} else {
		t.Log("GEOSEAL_TEST_KEYVAULT_URL is not set: testing against the kvtest server only")
	}
	return targets
}

func newTestKeyVault(t testing.TB, keyURL string, cred azcore.TokenCredential, opts *KeyVaultOptions) *KeyVault {
	t.Helper()
	kv, err := NewKeyVault(context.Background(), keyURL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func kvServer(t *testing.T) *kvtest.Server { return kvtest.NewServer(t) }

func kvOptions(s *kvtest.Server) *KeyVaultOptions {
	return &KeyVaultOptions{ClientOptions: s.ClientOptions()}
}

func wantCounts(t *testing.T, s *kvtest.Server, getKey, wrapKey, unwrapKey int) {
	t.Helper()
	c := s.Counts()
	if c.GetKey != getKey || c.WrapKey != wrapKey || c.UnwrapKey != unwrapKey {
		t.Fatalf("Key Vault calls: GET key %d, wrapkey %d, unwrapkey %d; want %d, %d, %d",
			c.GetKey, c.WrapKey, c.UnwrapKey, getKey, wrapKey, unwrapKey)
	}
}

func asNoMatch(t *testing.T, err error) *NoMatchError {
	t.Helper()
	var nm *NoMatchError
	if !errors.As(err, &nm) {
		t.Fatalf("got %v (%T), want a *NoMatchError", err, err)
	}
	return nm
}

func asResponseError(t *testing.T, err error, status int) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status {
		t.Fatalf("got %v, want an *azcore.ResponseError with status %d reachable with errors.As", err, status)
	}
	return re
}

// TestKeyVaultRoundTrip wraps and unwraps through the real azkeys client,
// and counts the calls: an RSA key wraps locally (no wrapkey), an oct-HSM key
// in the HSM.
func TestKeyVaultRoundTrip(t *testing.T) {
	for _, target := range kvTargets(t) {
		t.Run(target.name, func(t *testing.T) {
			ctx := context.Background()
			if target.srv != nil {
				target.srv.ResetCounts()
			}
			kv := newTestKeyVault(t, target.keyURL, target.cred, target.options())
			if !strings.HasPrefix(kv.KeyID(), strings.TrimSuffix(target.keyURL, "/")+"/") && target.srv != nil {
				t.Fatalf("KeyID %q is not a version of %q", kv.KeyID(), target.keyURL)
			}
			dek := testDEK(t)
			ec := Context{"project": "x-57"}
			keys, err := kv.Wrap(ctx, dek, ec)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 {
				t.Fatalf("%d wrapped keys", len(keys))
			}
			wk := keys[0]
			if wk.Provider != ProviderKeyVault || wk.KeyID != kv.KeyID() || (target.alg != "" && wk.Algorithm != target.alg) {
				t.Fatalf("wrapped key %+v", wk)
			}
			if bytes.Contains(wk.Ciphertext, dek) {
				t.Fatal("the wrapped key contains the data key")
			}
			got, err := kv.Unwrap(ctx, keys, ec)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("Unwrap = %x, %v", got, err)
			}
			// Another keyring for the same key (a reader process) unwraps too.
			reader := newTestKeyVault(t, target.keyURL, target.cred, target.options())
			if got, err := reader.Unwrap(ctx, keys, nil); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("second keyring: Unwrap = %x, %v", got, err)
			}
			if target.srv == nil {
				return
			}
			switch target.alg {
			case "RSA-OAEP-256":
				if len(wk.Ciphertext) != 256 {
					t.Fatalf("RSA-2048 wrapped key of %d bytes", len(wk.Ciphertext))
				}
				wantCounts(t, target.srv, 2, 0, 2)
			case "A256KW":
				if len(wk.Ciphertext) != 40 {
					t.Fatalf("A256KW wrapped key of %d bytes", len(wk.Ciphertext))
				}
				wantCounts(t, target.srv, 2, 1, 2)
			}
		})
	}
}

// TestKeyVaultKeyURLForms checks the accepted spellings of a key URL.
func TestKeyVaultKeyURLForms(t *testing.T) {
	s := kvServer(t)
	kid := s.CreateRSAKey("Mixed-Case", 2048)
	for _, u := range []string{
		kid,
		kid + "/",
		s.KeyURL("Mixed-Case"),
		s.KeyURL("Mixed-Case") + "/",
		s.KeyURL("mixed-case"), // names are case-insensitive
		strings.Replace(kid, "https://", "HTTPS://", 1),
	} {
		kv, err := NewKeyVault(context.Background(), u, s.Credential(), kvOptions(s))
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if kv.KeyID() != kid {
			t.Fatalf("%s: KeyID %q, want %q", u, kv.KeyID(), kid)
		}
	}
}

func TestKeyVaultBadURLs(t *testing.T) {
	s := kvServer(t)
	s.CreateRSAKey("k", 2048)
	host := strings.TrimPrefix(s.URL, "https://")
	for _, u := range []string{
		"",
		"http://" + host + "/keys/k",
		"https://" + host,
		"https://" + host + "/keys",
		"https://" + host + "/keys/",
		"https://" + host + "/secrets/k",
		"https://" + host + "/keys/k/v1/extra",
		"https://" + host + "/keys/k?api-version=1",
		"https://" + host + "/keys/k#frag",
		"https://" + host + "/keys/k_underscore",
		"https://" + host + "/keys/k/ver-sion",
		"https://user:pass@" + host + "/keys/k",
		"https://" + host + "/keys/" + strings.Repeat("a", 128),
		"https://" + host + "/keys/" + strings.Repeat("a", 3000),
		"azure-keyvault://" + host + "/keys/k",
		"https://%zz/keys/k",
	} {
		if _, err := NewKeyVault(context.Background(), u, s.Credential(), kvOptions(s)); err == nil || !strings.Contains(err.Error(), "invalid Key Vault key URL") {
			t.Errorf("%q: got %v, want an invalid-URL error", u, err)
		}
	}
	if _, err := NewKeyVault(context.Background(), s.KeyURL("k"), nil, kvOptions(s)); err == nil {
		t.Error("nil credential accepted")
	}
	if c := s.Counts(); c.GetKey != 0 || c.Challenges != 0 {
		t.Fatalf("invalid URLs reached the server: %+v", c)
	}
}

// TestKeyVaultKeyChecks checks that NewKeyVault refuses keys that cannot or
// must not serve as key-encryption keys.
func TestKeyVaultKeyChecks(t *testing.T) {
	s := kvServer(t)
	s.CreateRSAKey("weak", 1024)
	s.CreateRSAKey("unwrap-only", 2048)
	s.SetKeyOps("unwrap-only", "unwrapKey", "decrypt")
	s.CreateRSAKey("wrap-only", 2048)
	s.SetKeyOps("wrap-only", "wrapKey")
	s.CreateRSAKey("rsa", 2048)
	s.CreateOctHSMKey("hsm")
	ctx := context.Background()

	for _, tc := range []struct {
		name, key string
		opts      KeyVaultOptions
		want      string
	}{
		{"RSA-1024", "weak", KeyVaultOptions{}, "1024 bits"},
		{"no wrapKey", "unwrap-only", KeyVaultOptions{}, "wrapKey"},
		{"no unwrapKey", "wrap-only", KeyVaultOptions{}, "unwrapKey"},
		{"algorithm for RSA", "rsa", KeyVaultOptions{Algorithm: "RSA-OAEP"}, "symmetric keys"},
		{"bad algorithm for oct", "hsm", KeyVaultOptions{Algorithm: "A256GCM"}, "not an AES key wrap"},
	} {
		tc.opts.ClientOptions = s.ClientOptions()
		_, err := NewKeyVault(ctx, s.KeyURL(tc.key), s.Credential(), &tc.opts)
		if !errors.Is(err, ErrKeyVaultKey) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrKeyVaultKey mentioning %q", tc.name, err, tc.want)
		}
	}

	_, err := NewKeyVault(ctx, s.KeyURL("missing"), s.Credential(), kvOptions(s))
	if re := asResponseError(t, err, http.StatusNotFound); re.ErrorCode != "KeyNotFound" {
		t.Fatalf("error code %q", re.ErrorCode)
	}

	// An explicit algorithm is what is sent: A128KW does not fit the
	// server's 256-bit key, and the service's 400 comes back.
	kv := newTestKeyVault(t, s.KeyURL("hsm"), s.Credential(), &KeyVaultOptions{ClientOptions: s.ClientOptions(), Algorithm: "A128KW"})
	_, err = kv.Wrap(ctx, testDEK(t), nil)
	asResponseError(t, err, http.StatusBadRequest)

	// Data keys are 32 bytes.
	kv = newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := kv.Wrap(ctx, make([]byte, n), nil); err == nil {
			t.Errorf("Wrap accepted a %d-byte data key", n)
		}
	}
}

// TestKeyVaultRotation checks that objects wrapped before a key rotation
// still unwrap after it, through the version in their key id.
func TestKeyVaultRotation(t *testing.T) {
	for _, kind := range []string{"RSA", "oct-HSM"} {
		t.Run(kind, func(t *testing.T) {
			s := kvServer(t)
			ctx := context.Background()
			var v1 string
			if kind == "RSA" {
				v1 = s.CreateRSAKey("k", 2048)
			} else {
				v1 = s.CreateOctHSMKey("k")
			}
			kr1 := newTestKeyVault(t, s.KeyURL("k"), s.Credential(), kvOptions(s))
			if kr1.KeyID() != v1 {
				t.Fatalf("KeyID %q, want %q", kr1.KeyID(), v1)
			}
			dek1 := testDEK(t)
			old, err := kr1.Wrap(ctx, dek1, nil)
			if err != nil {
				t.Fatal(err)
			}

			v2 := s.RotateKey("k")
			// A keyring keeps the version it resolved.
			if again, err := kr1.Wrap(ctx, testDEK(t), nil); err != nil || again[0].KeyID != v1 {
				t.Fatalf("existing keyring after rotation: %v, %v", again, err)
			}
			// A new one picks up the new version for new objects.
			kr2 := newTestKeyVault(t, s.KeyURL("k"), s.Credential(), kvOptions(s))
			dek2 := testDEK(t)
			fresh, err := kr2.Wrap(ctx, dek2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if kr2.KeyID() != v2 || fresh[0].KeyID != v2 {
				t.Fatalf("after rotation: KeyID %q, wrapped with %q; want %q", kr2.KeyID(), fresh[0].KeyID, v2)
			}
			// Old objects unwrap with the new keyring, new ones with the old.
			if got, err := kr2.Unwrap(ctx, old, nil); err != nil || !bytes.Equal(got, dek1) {
				t.Fatalf("v1 object with the v2 keyring: %x, %v", got, err)
			}
			if got, err := kr1.Unwrap(ctx, fresh, nil); err != nil || !bytes.Equal(got, dek2) {
				t.Fatalf("v2 object with the v1 keyring: %x, %v", got, err)
			}
			// A keyring pinned to v1 by URL stays on v1.
			if pinned := newTestKeyVault(t, v1, s.Credential(), kvOptions(s)); pinned.KeyID() != v1 {
				t.Fatalf("pinned keyring uses %q", pinned.KeyID())
			}
			// The version in the key id is what the vault uses: relabelled,
			// the old wrapped key meets the wrong key.
			relabelled := []WrappedKey{old[0]}
			relabelled[0].KeyID = v2
			_, err = kr2.Unwrap(ctx, relabelled, nil)
			asResponseError(t, asNoMatch(t, err), http.StatusBadRequest)
		})
	}
}

// TestKeyVaultCrossKeyring checks that a keyring tries only wrapped keys of
// its own key, and reports the others in a *NoMatchError.
func TestKeyVaultCrossKeyring(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("mine", 2048)
	s.CreateRSAKey("other", 2048)
	s2 := kvServer(t) // another vault with a key of the same name
	s2.CreateRSAKey("mine", 2048)

	mine := newTestKeyVault(t, s.KeyURL("mine"), s.Credential(), kvOptions(s))
	other := newTestKeyVault(t, s.KeyURL("other"), s.Credential(), kvOptions(s))
	elsewhere := newTestKeyVault(t, s2.KeyURL("mine"), s2.Credential(), kvOptions(s2))
	local := mustNewAES(t, mustAESKey(t), nil)

	dek := testDEK(t)
	foreign := make([]WrappedKey, 0, 3)
	for _, w := range []Wrapper{other, elsewhere, local} {
		keys, err := w.Wrap(ctx, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		foreign = append(foreign, keys...)
	}
	s.ResetCounts()
	_, err := mine.Unwrap(ctx, foreign, nil)
	nm := asNoMatch(t, err)
	if len(nm.Tried) != 0 || len(nm.Available) != 3 {
		t.Fatalf("NoMatchError %+v: want nothing tried and three available", nm)
	}
	if !strings.Contains(err.Error(), "other") || !strings.Contains(err.Error(), s2.URL) {
		t.Errorf("error does not list what the object offers: %v", err)
	}
	// Our provider name with another provider's key id, and the other way
	// round, are not ours either.
	ownKeys, err := mine.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrongProvider := ownKeys[0]
	wrongProvider.Provider = ProviderRSA
	if _, err := mine.Unwrap(ctx, []WrappedKey{wrongProvider}, nil); len(asNoMatch(t, err).Tried) != 0 {
		t.Fatalf("tried a wrapped key of another provider: %v", err)
	}
	if _, err := mine.Unwrap(ctx, nil, nil); len(asNoMatch(t, err).Available) != 0 {
		t.Fatalf("empty list: %v", err)
	}
	wantCounts(t, s, 0, 0, 0)

	// A key of ours that does not unwrap: the service's error is reachable.
	tampered := ownKeys[0]
	tampered.Ciphertext = bytes.Clone(tampered.Ciphertext)
	tampered.Ciphertext[7] ^= 0x10
	_, err = mine.Unwrap(ctx, []WrappedKey{tampered}, nil)
	nm = asNoMatch(t, err)
	if len(nm.Tried) != 1 || nm.Tried[0].KeyID != mine.KeyID() {
		t.Fatalf("tried %+v", nm.Tried)
	}
	asResponseError(t, err, http.StatusBadRequest)

	// Algorithms and lengths no key of ours makes are refused before any
	// request.
	s.ResetCounts()
	for _, bad := range []WrappedKey{
		{ProviderKeyVault, mine.KeyID(), "RSA1_5", ownKeys[0].Ciphertext},
		{ProviderKeyVault, mine.KeyID(), "A256KW", make([]byte, 40)},
		{ProviderKeyVault, mine.KeyID(), "RSA-OAEP-256", make([]byte, 100)},
		{ProviderKeyVault, mine.KeyID(), "RSA-OAEP-256", make([]byte, 4096)},
	} {
		if _, err := mine.Unwrap(ctx, []WrappedKey{bad}, nil); len(asNoMatch(t, err).Tried) != 1 {
			t.Fatalf("%s: %v", bad.Algorithm, err)
		}
	}
	_, err = mine.Unwrap(ctx, []WrappedKey{{ProviderKeyVault, mine.KeyID(), "RSA1_5", ownKeys[0].Ciphertext}}, nil)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("unsupported algorithm: %v", err)
	}
	wantCounts(t, s, 0, 0, 0)

	// Too many wrapped keys: refused before looking at any.
	many := make([]WrappedKey, DefaultMaxWrappedKeys+1)
	for i := range many {
		many[i] = ownKeys[0]
	}
	if _, err := mine.Unwrap(ctx, many, nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("got %v, want ErrTooManyKeys", err)
	}
	limited := newTestKeyVault(t, s.KeyURL("mine"), s.Credential(), &KeyVaultOptions{ClientOptions: s.ClientOptions(), MaxWrappedKeys: 2})
	if _, err := limited.Unwrap(ctx, many[:3], nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("MaxWrappedKeys 2: got %v", err)
	}
	wantCounts(t, s, 1, 0, 0)

	// In a mixed list, foreign keys are skipped, a bad one of ours is tried
	// and the good one after it wins.
	mixed := append(append([]WrappedKey{}, foreign...), tampered, ownKeys[0])
	if got, err := mine.Unwrap(ctx, mixed, nil); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("mixed list: %x, %v", got, err)
	}
	wantCounts(t, s, 1, 0, 2)
}

// TestKeyVaultRetry checks that azcore's retry policy is in the path: two
// 429s are absorbed, persistent 503s surface as *azcore.ResponseError through
// the *NoMatchError.
func TestKeyVaultRetry(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateOctHSMKey("hsm")

	s.FailNext(2, http.StatusTooManyRequests)
	kv := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	dek := testDEK(t)
	keys, err := kv.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.FailNext(2, http.StatusTooManyRequests)
	if got, err := kv.Unwrap(ctx, keys, nil); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("after two 429s: %x, %v", got, err)
	}
	if c := s.Counts(); c.Injected != 4 || c.UnwrapKey != 1 {
		t.Fatalf("counts %+v", c)
	}

	s.FailNext(100, http.StatusServiceUnavailable)
	_, err = kv.Unwrap(ctx, keys, nil)
	asNoMatch(t, err)
	asResponseError(t, err, http.StatusServiceUnavailable)
	if c := s.Counts(); c.Injected != 4+4 { // one try and three retries
		t.Fatalf("counts %+v", c)
	}

	_, err = NewKeyVault(ctx, s.KeyURL("hsm"), s.Credential(), kvOptions(s))
	asResponseError(t, err, http.StatusServiceUnavailable)

	s.FailNext(2, http.StatusServiceUnavailable)
	hsm := newTestKeyVault(t, s.KeyURL("hsm"), s.Credential(), kvOptions(s))
	s.FailNext(2, http.StatusServiceUnavailable)
	keys, err = hsm.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatalf("oct-HSM wrap after two 503s: %v", err)
	}
	s.FailNext(100, http.StatusTooManyRequests)
	_, err = hsm.Wrap(ctx, dek, nil)
	asResponseError(t, err, http.StatusTooManyRequests)
	s.FailNext(0, 0)
	if got, err := hsm.Unwrap(ctx, keys, nil); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("%x, %v", got, err)
	}
}

// TestKeyVaultCancel checks that a cancelled call returns promptly with the
// context's error and leaves no goroutine behind.
func TestKeyVaultCancel(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // runs after the server's Close
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateOctHSMKey("hsm")
	rsaKV := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	hsmKV := newTestKeyVault(t, s.KeyURL("hsm"), s.Credential(), kvOptions(s))
	dek := testDEK(t)
	keys, err := rsaKV.Wrap(context.Background(), dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLatency(time.Hour)
	defer s.SetLatency(0)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = rsaKV.Unwrap(ctx, append(keys, keys...), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if nm := asNoMatch(t, err); len(nm.Tried) != 1 {
		t.Fatalf("kept trying after the context ended: %+v", nm.Tried)
	}
	if _, err := hsmKV.Wrap(ctx, dek, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wrap: got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

// TestKeyVaultAudit checks the audit records of wraps and unwraps, ok and
// failed, and that no key bytes reach the log.
func TestKeyVaultAudit(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateOctHSMKey("hsm")
	for _, name := range []string{"rsa", "hsm"} {
		a, logger := newCapturedAudit()
		kv := newTestKeyVault(t, s.KeyURL(name), s.Credential(), &KeyVaultOptions{ClientOptions: s.ClientOptions(), Logger: logger})
		alg := map[string]string{"rsa": "RSA-OAEP-256", "hsm": "A256KW"}[name]
		dek := testDEK(t)
		keys, err := kv.Wrap(ctx, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Unwrap(ctx, keys, nil); err != nil {
			t.Fatal(err)
		}
		bad := keys[0]
		bad.Ciphertext = bytes.Clone(bad.Ciphertext)
		bad.Ciphertext[3] ^= 1
		if _, err := kv.Unwrap(ctx, []WrappedKey{bad}, nil); err == nil {
			t.Fatal("tampered key unwrapped")
		}
		if _, err := kv.Unwrap(ctx, []WrappedKey{{Provider: ProviderAES, KeyID: "x", Ciphertext: dek}}, nil); err == nil {
			t.Fatal("foreign key unwrapped")
		}

		recs := a.records(t)
		if len(recs) != 4 {
			t.Fatalf("%s: %d audit records, want 4:\n%s", name, len(recs), a.output())
		}
		checkRecord(t, recs[0], "wrap", ProviderKeyVault, kv.KeyID(), alg, "ok")
		checkRecord(t, recs[1], "unwrap", ProviderKeyVault, kv.KeyID(), alg, "ok")
		checkRecord(t, recs[2], "unwrap", ProviderKeyVault, kv.KeyID(), alg, "error")
		checkRecord(t, recs[3], "unwrap", ProviderKeyVault, s.KeyURL(name), "", "error")
		if !strings.Contains(recs[2]["error"].(string), "400") {
			t.Errorf("failed unwrap record does not carry the service error: %v", recs[2])
		}
		a.assertNoSecrets(t, dek)
	}
	// Silent by default: no logger, no panic.
	kv := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	if _, err := kv.Wrap(ctx, testDEK(t), nil); err != nil {
		t.Fatal(err)
	}
}

// TestKeyVaultLegacyRSAOAEP checks the documented decision on RSA-OAEP with
// SHA-1 in existing wrapped keys: the keyring sends it to the vault, which
// does the SHA-1; this process computes none. In FIPS 140-only mode it is
// refused, with ErrNotApproved and no request, as everywhere else in
// geoseal.
func TestKeyVaultLegacyRSAOAEP(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	kv := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	client, err := azkeys.NewClient(s.URL, s.Credential(), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	dek := testDEK(t)
	var legacy WrappedKey
	if fips140.Enforced() {
		// Any ciphertext: the vault must not be asked.
		legacy = WrappedKey{ProviderKeyVault, kv.KeyID(), "RSA-OAEP", bytes.Repeat([]byte{1}, 256)}
	} else {
		// Another tool wrapped with RSA-OAEP in the vault.
		resp, err := client.WrapKey(ctx, "rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: dek}, nil)
		if err != nil {
			t.Fatal(err)
		}
		legacy = WrappedKey{ProviderKeyVault, string(*resp.KID), "RSA-OAEP", resp.Result}
	}
	s.ResetCounts()
	got, err := kv.Unwrap(ctx, []WrappedKey{legacy}, nil)
	if fips140.Enforced() {
		if !errors.Is(err, ErrNotApproved) {
			t.Fatalf("legacy RSA-OAEP in FIPS 140-only mode: %v, want ErrNotApproved", err)
		}
		if c := s.Counts(); c.UnwrapKey != 0 {
			t.Fatalf("the vault was asked in FIPS 140-only mode: %+v", c)
		}
		return
	}
	if c := s.Counts(); c.UnwrapKey != 1 {
		t.Fatalf("the vault was not asked: %+v", c)
	}
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("legacy RSA-OAEP: %x, %v", got, err)
	}
	// New wrapped keys are never RSA-OAEP.
	keys, err := kv.Wrap(ctx, dek, nil)
	if err != nil || keys[0].Algorithm != "RSA-OAEP-256" {
		t.Fatalf("%v, %v", keys, err)
	}
}

// TestKeyVaultConcurrent shares keyrings between goroutines (run with -race).
func TestKeyVaultConcurrent(t *testing.T) {
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateOctHSMKey("hsm")
	rings := []*KeyVault{
		newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s)),
		newTestKeyVault(t, s.KeyURL("hsm"), s.Credential(), kvOptions(s)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			kv := rings[g%2]
			for range 10 {
				dek := make([]byte, 32)
				dek[0] = byte(g)
				keys, err := kv.Wrap(context.Background(), dek, nil)
				if err != nil {
					errs <- err
					return
				}
				got, err := kv.Unwrap(context.Background(), keys, nil)
				if err != nil || !bytes.Equal(got, dek) {
					errs <- fmt.Errorf("goroutine %d: %x, %v", g, got, err)
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
}

// kvCachedObjects is how many objects the cost test and benchmark encrypt.
const kvCachedObjects = 1000

// TestKeyVaultCallCount is the cost claim: writing 1000 objects with an RSA
// Key Vault key makes one GET key and no wrapkey call, and reading them back
// through a Cache (MaxUses 100) makes at most 10 unwrapkey calls when the
// writer's Cache shared each data key among 100 objects.
func TestKeyVaultCallCount(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	writer := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))

	// Plain keyring: one wrap per object, all local.
	for range kvCachedObjects {
		if _, err := writer.Wrap(ctx, testDEK(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, s, 1, 0, 0)

	// Through a writer cache that reuses each data key for 100 objects.
	ec := Context{"project": "x-57"}
	deks, objects := kvWriteObjects(t, writer, ec)
	wantCounts(t, s, 1, 0, 0)
	distinct := map[string]bool{}
	for _, o := range objects {
		distinct[string(o[0].Ciphertext)] = true
	}
	if len(distinct) != kvCachedObjects/100 {
		t.Fatalf("%d distinct wrapped keys, want %d", len(distinct), kvCachedObjects/100)
	}

	// A reader process: its own keyring (one GET) and cache.
	s.ResetCounts()
	reader := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	cache := NewCache(reader, &CacheOptions{MaxUses: 100, MaxAge: time.Hour})
	for i, o := range objects {
		got, err := cache.Unwrap(ctx, o, ec)
		if err != nil || !bytes.Equal(got, deks[i]) {
			t.Fatalf("object %d: %v", i, err)
		}
	}
	c := s.Counts()
	t.Logf("reading %d objects: GET key %d, unwrapkey %d", kvCachedObjects, c.GetKey, c.UnwrapKey)
	if c.GetKey != 1 || c.WrapKey != 0 || c.UnwrapKey > 10 || c.UnwrapKey < 1 {
		t.Fatalf("reader made %+v, want 1 GET key and at most 10 unwrapkey calls", c)
	}
}

// kvWriteObjects draws data keys for kvCachedObjects objects through a Cache
// that shares each among 100 objects.
func kvWriteObjects(t testing.TB, kr Keyring, ec Context) (deks [][]byte, objects [][]WrappedKey) {
	t.Helper()
	w := NewCache(kr, &CacheOptions{ReuseDataKey: &ReuseOptions{MaxObjects: 100, MaxAge: time.Hour}})
	for range kvCachedObjects {
		dek, keys, err := w.GenerateDataKey(context.Background(), ec)
		if err != nil {
			t.Fatal(err)
		}
		deks = append(deks, dek)
		objects = append(objects, keys)
	}
	return deks, objects
}

// BenchmarkKeyVaultWrapRSA measures the local RSA-OAEP-256 wrap and reports
// the Key Vault calls per wrap (0).
func BenchmarkKeyVaultWrapRSA(b *testing.B) {
	s := kvtest.NewServer(b)
	s.CreateRSAKey("rsa", 2048)
	kv := newTestKeyVault(b, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	dek := make([]byte, 32)
	s.ResetCounts()
	for b.Loop() {
		if _, err := kv.Wrap(context.Background(), dek, nil); err != nil {
			b.Fatal(err)
		}
	}
	c := s.Counts()
	b.ReportMetric(float64(c.WrapKey+c.GetKey)/float64(b.N), "kvcalls/op")
}

// BenchmarkKeyVaultCachedDecrypt reads 1000 objects (data keys shared by 100
// objects each) through a Cache with MaxUses 100 and reports the Key Vault
// calls it took.
func BenchmarkKeyVaultCachedDecrypt(b *testing.B) {
	s := kvtest.NewServer(b)
	s.CreateRSAKey("rsa", 2048)
	kv := newTestKeyVault(b, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	ec := Context{"b": "1"}
	_, objects := kvWriteObjects(b, kv, ec)
	s.ResetCounts()
	for b.Loop() {
		cache := NewCache(kv, &CacheOptions{MaxUses: 100, MaxAge: time.Hour})
		for _, o := range objects {
			if _, err := cache.Unwrap(context.Background(), o, ec); err != nil {
				b.Fatal(err)
			}
		}
	}
	c := s.Counts()
	b.ReportMetric(float64(c.UnwrapKey)/float64(b.N), "unwrapkey/1000objects")
	b.ReportMetric(float64(c.WrapKey), "wrapkey")
}

// ExampleNewKeyVault wraps a data key with an RSA key in Key Vault. A local
// test server stands in for the vault here; against a real one, the key URL
// is https://{vault}.vault.azure.net/keys/{name} (or a Managed HSM's
// https://{hsm}.managedhsm.azure.net/keys/{name}), the credential comes from
// azidentity.NewDefaultAzureCredential, and the options may be nil.
func ExampleNewKeyVault() {
	srv, err := kvtest.Start()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.CreateRSAKey("geoseal-kek", 3072)

	ctx := context.Background()
	kv, err := NewKeyVault(ctx, srv.KeyURL("geoseal-kek"), srv.Credential(), &KeyVaultOptions{ClientOptions: srv.ClientOptions()})
	if err != nil {
		panic(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)

	// Wrapping is local: the public key was read once by NewKeyVault.
	keys, err := kv.Wrap(ctx, dek, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(keys[0].Provider, keys[0].Algorithm, keys[0].KeyID == kv.KeyID())

	// Unwrapping asks the vault.
	got, err := kv.Unwrap(ctx, keys, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(bytes.Equal(got, dek), srv.Counts().UnwrapKey)
	// Output:
	// azure-keyvault RSA-OAEP-256 true
	// true 1
}
