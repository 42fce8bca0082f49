package keyring

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// newTinkKeysetAEAD returns the AEAD of a fresh Tink AES-256-GCM keyset, or,
// in FIPS 140-only mode, asserts that Tink cannot make one (the reason
// NewTinkAEAD refuses there) and returns nil.
func newTinkKeysetAEAD(t *testing.T) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if fips140.Enforced() {
		if err == nil {
			t.Fatal("Tink's AES-GCM now works in FIPS 140-only mode: revisit NewTinkAEAD's refusal")
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// approvedFakeAEAD stands in for a Tink AEAD in FIPS 140-only mode, where
// Tink's own cannot be built, to show that NewTinkAEAD refuses any AEAD.
type approvedFakeAEAD struct{}

func (approvedFakeAEAD) Encrypt(pt, ad []byte) ([]byte, error) { return bytes.Clone(pt), nil }
func (approvedFakeAEAD) Decrypt(ct, ad []byte) ([]byte, error) { return bytes.Clone(ct), nil }

// mustNewTink returns a keyring over a fresh keyset, or nil after asserting
// the FIPS 140-only refusal.
func mustNewTink(t *testing.T, keyID string, opts *TinkOptions) *TinkAEAD {
	t.Helper()
	a := newTinkKeysetAEAD(t)
	if a == nil {
		_, err := NewTinkAEAD(approvedFakeAEAD{}, keyID, opts)
		if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("NewTinkAEAD in FIPS 140-only mode: %v, want ErrNotApproved", err)
		}
		return nil
	}
	k, err := NewTinkAEAD(a, keyID, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTinkRoundTrip(t *testing.T) {
	ctx := context.Background()
	k := mustNewTink(t, "tink://keysets/primary", nil)
	if k == nil {
		return // refusal asserted
	}
	dek := testDEK(t)
	ec := Context{"project": "x-57"}
	keys, err := k.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Provider != ProviderTink || keys[0].KeyID != "tink://keysets/primary" || keys[0].Algorithm != AlgorithmTink {
		t.Fatalf("wrapped keys %+v", keys)
	}
	got, err := k.Unwrap(ctx, keys, ec)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap: %v", err)
	}
	// The associated data is label || canonical context: a Tink user with
	// the keyset alone can reproduce it.
	ecb, _ := ec.MarshalBinary()
	pt, err := k.aead.Decrypt(keys[0].Ciphertext, append([]byte("geoseal keyring tink AEAD v1\x00"), ecb...))
	if err != nil || !bytes.Equal(pt, dek) {
		t.Fatalf("direct Tink decryption with the documented AAD: %v", err)
	}
}

func TestTinkWrongContext(t *testing.T) {
	ctx := context.Background()
	k := mustNewTink(t, "k", nil)
	if k == nil {
		return
	}
	keys, err := k.Wrap(ctx, testDEK(t), Context{"project": "x-57"})
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []Context{nil, {"project": "x-58"}, {"project": "x-57", "b": "c"}} {
		_, err := k.Unwrap(ctx, keys, wrong)
		var nm *NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 {
			t.Errorf("context %v: %v", wrong, err)
		}
	}
}

func TestTinkCrossKeyring(t *testing.T) {
	ctx := context.Background()
	a := mustNewTink(t, "same-name", nil)
	if a == nil {
		return
	}
	b := mustNewTink(t, "same-name", nil)
	c := mustNewTink(t, "other-name", nil)
	keys, err := a.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var nm *NoMatchError
	// Same key id, different keyset: tried, and fails.
	if _, err := b.Unwrap(ctx, keys, nil); !errors.As(err, &nm) || len(nm.Tried) != 1 {
		t.Fatalf("other keyset: %v", err)
	}
	// Different key id: not tried.
	if _, err := c.Unwrap(ctx, keys, nil); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("other key id: %v", err)
	}
	// Tampered, oversized, wrong algorithm.
	bad := keys[0]
	bad.Ciphertext = bytes.Clone(bad.Ciphertext)
	bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
	huge := keys[0]
	huge.Ciphertext = make([]byte, 5000)
	alg := keys[0]
	alg.Algorithm = "A256GCM"
	for _, wk := range []WrappedKey{bad, huge, alg, {Provider: ProviderTink, KeyID: "same-name", Algorithm: AlgorithmTink}} {
		if _, err := a.Unwrap(ctx, []WrappedKey{wk}, nil); !errors.As(err, &nm) || len(nm.Tried) != 1 {
			t.Errorf("malformed %q (%d bytes): %v", wk.Algorithm, len(wk.Ciphertext), err)
		}
	}
	if _, err := a.Unwrap(ctx, make([]WrappedKey, 17), nil); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("17 keys: %v", err)
	}
}

func TestTinkOptions(t *testing.T) {
	if fips140.Enforced() {
		for _, a := range []tink.AEAD{nil, approvedFakeAEAD{}} {
			if _, err := NewTinkAEAD(a, "k", nil); !errors.Is(err, ErrNotApproved) {
				t.Errorf("FIPS 140-only mode: %v", err)
			}
		}
		return
	}
	if _, err := NewTinkAEAD(nil, "k", nil); err == nil {
		t.Error("nil AEAD accepted")
	}
	for _, id := range []string{"", strings.Repeat("k", 1025)} {
		if _, err := NewTinkAEAD(approvedFakeAEAD{}, id, nil); err == nil {
			t.Errorf("key id of %d bytes accepted", len(id))
		}
	}
	// A Tink AEAD that returns something other than a data key is caught.
	k, err := NewTinkAEAD(approvedFakeAEAD{}, "fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(context.Background(), []WrappedKey{{ProviderTink, "fake", AlgorithmTink, make([]byte, 31)}}, nil); err == nil {
		t.Error("a 31-byte data key was returned")
	}
}

func TestTinkAudit(t *testing.T) {
	audit, logger := newCapturedAudit()
	k := mustNewTink(t, "tink-kek", &TinkOptions{Logger: logger})
	if k == nil {
		return
	}
	ctx := context.Background()
	dek := testDEK(t)
	keys, err := k.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, keys, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, keys, Context{"x": "y"}); err == nil {
		t.Fatal("wrong context unwrapped")
	}
	recs := audit.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d records:\n%s", len(recs), audit.output())
	}
	checkRecord(t, recs[0], "wrap", ProviderTink, "tink-kek", AlgorithmTink, "ok")
	checkRecord(t, recs[1], "unwrap", ProviderTink, "tink-kek", AlgorithmTink, "ok")
	checkRecord(t, recs[2], "unwrap", ProviderTink, "tink-kek", AlgorithmTink, "error")
	audit.assertNoSecrets(t, dek)
}
