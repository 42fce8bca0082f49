//go:build cgo

package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/internal/softhsm"
	"github.com/geoseal/geoseal/keyring"
)

// These tests attack the keyrings the way an object can: with a header whose
// wrapped keys name the reader's keys. They go through envelope.Decrypt, the
// path every reader takes, and count what reaches the real components: the
// requests the Key Vault test server receives through the azkeys client,
// the C_UnwrapKey calls that reach SoftHSM2 (through a counting PKCS#11
// module), and, for local RSA, the private-key operations the keyring audits
// (the operation runs in this process, so its own record is the count).

// recordsWrapper is a writer that controls its wrapped keys: it is handed
// the object's data key and returns whatever records it likes. An attacker
// with write access and a public key, or any recipient, can write such an
// object.
type recordsWrapper func(dek []byte) []keyring.WrappedKey

func (f recordsWrapper) Wrap(_ context.Context, dek []byte, _ keyring.Context) ([]keyring.WrappedKey, error) {
	return f(dek), nil
}

// craftObject writes an object whose header lists the records of f.
func craftObject(t *testing.T, f recordsWrapper) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := envelope.Encrypt(context.Background(), &buf, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "technical data"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(u keyring.Unwrapper, obj []byte) ([]byte, error) {
	r, err := envelope.Decrypt(context.Background(), bytes.NewReader(obj), u, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// auditCounter counts the unwrap attempts a keyring audits.
type auditCounter struct {
	mu sync.Mutex
	n  int
}

func (a *auditCounter) Write(p []byte) (int, error) {
	var rec struct{ Op string }
	if err := json.Unmarshal(p, &rec); err == nil && rec.Op == "unwrap" {
		a.mu.Lock()
		a.n++
		a.mu.Unlock()
	}
	return len(p), nil
}

func (a *auditCounter) take() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.n
	a.n = 0
	return n
}

// hostileTargets are the reader's keyrings of every kind, with the means to
// count their work and to forge wrapped keys that name them.
type hostileTargets struct {
	kv      *keyring.KeyVault
	srv     *kvtest.Server
	kvKIDs  []string // every version of the reader's vault key
	p11     *keyring.PKCS11
	p11Mod  *softhsm.CountingModule
	rsaPriv *rsa.PrivateKey
	rsa     *keyring.RSA
	rsaOps  *auditCounter
}

func newHostileTargets(t *testing.T) *hostileTargets {
	t.Helper()
	ctx := context.Background()
	h := &hostileTargets{srv: kvtest.NewServer(t), rsaOps: &auditCounter{}}

	// A vault key with DefaultMaxWrappedKeys versions, as after years of
	// rotation: the keyring accepts wrapped keys of any of them.
	h.kvKIDs = append(h.kvKIDs, h.srv.CreateRSAKey("reader", 2048))
	for len(h.kvKIDs) < keyring.DefaultMaxWrappedKeys {
		h.kvKIDs = append(h.kvKIDs, h.srv.RotateKey("reader"))
	}
	var err error
	h.kv, err = keyring.NewKeyVault(ctx, h.srv.KeyURL("reader"), h.srv.Credential(), &keyring.KeyVaultOptions{ClientOptions: h.srv.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}

	tok := softhsm.ForTest(t)
	label := fmt.Sprintf("hostile-%x", randomBytes(t, 4))
	if err := tok.CreateAESKey(label); err != nil {
		t.Fatal(err)
	}
	// A keyring on SoftHSM2's own module stays open, so that the counting
	// module never owns (and never finalises) SoftHSM2's initialisation.
	p11Open(t, tok, label, nil)
	h.p11Mod = tok.CountingModule(t)
	h.p11, err = keyring.NewPKCS11(&keyring.PKCS11Options{Module: h.p11Mod.Path, TokenLabel: tok.Label, KeyLabel: label, PIN: tok.PIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.p11.Close() })

	h.rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	h.rsa, err = keyring.NewRSAPrivate(h.rsaPriv, &keyring.RSAOptions{Logger: slog.New(slog.NewJSONHandler(h.rsaOps, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// belowModulus is a random RSA ciphertext of 2048 bits that the private key
// must work on before it can refuse it.
func belowModulus(t *testing.T) []byte {
	return append([]byte{0}, randomBytes(t, 255)...)
}

// forged returns n wrapped keys of the given kind that name the reader's
// key and fail only at the key: for Key Vault, each names another version.
func (h *hostileTargets) forged(t *testing.T, kind string, n int) []keyring.WrappedKey {
	keys := make([]keyring.WrappedKey, n)
	for i := range keys {
		switch kind {
		case "keyvault":
			keys[i] = keyring.WrappedKey{Provider: keyring.ProviderKeyVault, KeyID: h.kvKIDs[i%len(h.kvKIDs)], Algorithm: "RSA-OAEP-256", Ciphertext: belowModulus(t)}
		case "pkcs11":
			keys[i] = keyring.WrappedKey{Provider: keyring.ProviderPKCS11, KeyID: h.p11.KeyID(), Algorithm: "AES-KWP", Ciphertext: randomBytes(t, 40)}
		case "rsa":
			keys[i] = keyring.WrappedKey{Provider: keyring.ProviderRSA, KeyID: h.rsa.KeyID(), Algorithm: keyring.AlgorithmRSA, Ciphertext: belowModulus(t)}
		}
	}
	return keys
}

// cost is what one Decrypt of a hostile object made the components do.
type cost struct{ kvRequests, kvUnwraps, hsmUnwraps, rsaOps int }

func (h *hostileTargets) measure(t *testing.T, u keyring.Unwrapper, obj []byte, throttle bool) cost {
	h.srv.ResetCounts()
	h.p11Mod.Reset()
	h.rsaOps.take()
	if throttle {
		h.srv.FailNext(1<<20, http.StatusTooManyRequests)
		defer h.srv.FailNext(0, 0)
	}
	if _, err := decrypt(u, obj); err == nil {
		t.Fatal("a hostile object decrypted")
	} else if throttle && !strings.Contains(err.Error(), "429") {
		t.Errorf("the throttled vault's 429 is not in the error: %v", err)
	}
	c := h.srv.Counts()
	return cost{kvRequests: c.Requests, kvUnwraps: c.UnwrapKey, hsmUnwraps: h.p11Mod.Count("C_UnwrapKey"), rsaOps: h.rsaOps.take()}
}

// TestHostileObjectCost measures what one object whose 16 wrapped keys all
// name the reader's key costs each kind of keyring, and a Cache in front of
// a Multi of all three, and checks the bound: at most DefaultMaxAttempts key
// operations per keyring, and a vault that keeps answering 429 costs one
// operation's requests (the first try and azcore's three retries), not
// sixteen.
func TestHostileObjectCost(t *testing.T) {
	h := newHostileTargets(t)
	n := keyring.DefaultMaxWrappedKeys
	mixed := append(append(h.forged(t, "keyvault", 6), h.forged(t, "pkcs11", 5)...), h.forged(t, "rsa", 5)...)
	objects := map[string][]byte{
		"keyvault": craftObject(t, func([]byte) []keyring.WrappedKey { return h.forged(t, "keyvault", n) }),
		"pkcs11":   craftObject(t, func([]byte) []keyring.WrappedKey { return h.forged(t, "pkcs11", n) }),
		"rsa":      craftObject(t, func([]byte) []keyring.WrappedKey { return h.forged(t, "rsa", n) }),
		"mixed":    craftObject(t, func([]byte) []keyring.WrappedKey { return mixed }),
	}
	const max = keyring.DefaultMaxAttempts
	retries := int(h.srv.ClientOptions().Retry.MaxRetries) + 1
	for _, tc := range []struct {
		name     string
		u        keyring.Unwrapper
		object   string
		throttle bool
		want     cost // upper bounds
	}{
		{"Key Vault (400 per wrapped key)", h.kv, "keyvault", false, cost{kvRequests: max, kvUnwraps: max}},
		{"Key Vault (429 on every request)", h.kv, "keyvault", true, cost{kvRequests: retries}},
		{"PKCS#11 (SoftHSM2)", h.p11, "pkcs11", false, cost{hsmUnwraps: max}},
		{"local RSA", h.rsa, "rsa", false, cost{rsaOps: max}},
		{"Cache(Multi(Key Vault, PKCS#11, RSA))", keyring.NewCache(keyring.NewMulti(h.kv, h.p11, h.rsa), nil), "mixed", false,
			cost{kvRequests: max, kvUnwraps: max, hsmUnwraps: max, rsaOps: max}},
		{"Cache(Multi(...)), vault answering 429", keyring.NewCache(keyring.NewMulti(h.kv, h.p11, h.rsa), nil), "mixed", true,
			cost{kvRequests: retries, hsmUnwraps: max, rsaOps: max}},
	} {
		got := h.measure(t, tc.u, objects[tc.object], tc.throttle)
		t.Logf("%-42s vault requests %2d (unwrapkey answered %2d), HSM C_UnwrapKey %2d, RSA private-key operations %2d",
			tc.name, got.kvRequests, got.kvUnwraps, got.hsmUnwraps, got.rsaOps)
		if got.kvRequests > tc.want.kvRequests || got.kvUnwraps > tc.want.kvUnwraps || got.hsmUnwraps > tc.want.hsmUnwraps || got.rsaOps > tc.want.rsaOps {
			t.Errorf("%s: %+v, want at most %+v", tc.name, got, tc.want)
		}
	}
}

// TestHostileObjectSameAnswer is the other half: an object that lists,
// before the genuine wrapped key, one the reader owns that holds another
// data key (anyone with an RSA public key can make one; any recipient can
// make one for any key) must open, and the same way through a keyring, a
// Multi and a Cache in front of a Multi: the key commitment rejects the
// first data key and the next wrapped key is tried.
func TestHostileObjectSameAnswer(t *testing.T) {
	ctx := context.Background()
	h := newHostileTargets(t)
	other := make([]byte, 32)
	copy(other, "another data key, not the object")
	for _, kind := range []struct {
		name string
		kr   keyring.Keyring
	}{
		{"Key Vault", h.kv},
		{"PKCS#11 (SoftHSM2)", h.p11},
		{"local RSA", h.rsa},
	} {
		decoy, err := kind.kr.Wrap(ctx, other, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj := craftObject(t, func(dek []byte) []keyring.WrappedKey {
			genuine, err := kind.kr.Wrap(ctx, dek, nil)
			if err != nil {
				t.Fatal(err)
			}
			return append(append([]keyring.WrappedKey(nil), decoy...), genuine...)
		})
		// A Cache that already holds the decoy's data key (as after an
		// Unwrap of it alone) gives the same answer too.
		warm := keyring.NewCache(keyring.NewMulti(h.kv, h.p11, h.rsa), nil)
		if _, err := warm.Unwrap(ctx, decoy, nil); err != nil {
			t.Fatal(err)
		}
		for name, u := range map[string]keyring.Unwrapper{
			"alone":                               kind.kr,
			"Multi(Key Vault, PKCS#11, RSA)":      keyring.NewMulti(h.kv, h.p11, h.rsa),
			"Cache(Multi(...))":                   keyring.NewCache(keyring.NewMulti(h.kv, h.p11, h.rsa), nil),
			"Cache(Multi(...)) holding the decoy": warm,
		} {
			got, err := decrypt(u, obj)
			if err != nil || string(got) != "technical data" {
				t.Errorf("%s, %s: %q, %v; want the plaintext", kind.name, name, got, err)
			}
		}
	}
}
