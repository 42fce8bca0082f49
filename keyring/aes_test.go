package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/geoseal/geoseal/internal/wycheproof"
)

// capturedAudit collects the audit records a keyring logs, as JSON lines,
// so tests can assert their attributes and search the raw output for
// secrets.
type capturedAudit struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newCapturedAudit() (*capturedAudit, *slog.Logger) {
	a := &capturedAudit{}
	return a, slog.New(slog.NewJSONHandler(a, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (a *capturedAudit) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *capturedAudit) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

func (a *capturedAudit) records(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(a.output()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

// checkRecord asserts the attributes every audit record must carry.
func checkRecord(t *testing.T, rec map[string]any, op, provider, keyID, algorithm, outcome string) {
	t.Helper()
	want := map[string]string{"op": op, "provider": provider, "key_id": keyID, "algorithm": algorithm, "outcome": outcome}
	for k, v := range want {
		if got, _ := rec[k].(string); got != v {
			t.Errorf("audit record %v: %s = %q, want %q", rec, k, got, v)
		}
	}
	if _, ok := rec["duration"].(float64); !ok {
		t.Errorf("audit record %v has no duration", rec)
	}
	_, hasErr := rec["error"]
	if hasErr != (outcome == "error") {
		t.Errorf("audit record %v: error attribute present = %v, outcome %s", rec, hasErr, outcome)
	}
}

// assertNoSecrets fails if any secret appears in the audit output raw, in
// hex or in base64.
func (a *capturedAudit) assertNoSecrets(t *testing.T, secrets ...[]byte) {
	t.Helper()
	out := a.output()
	if out == "" {
		t.Fatal("no audit output at all; the secret check would be vacuous")
	}
	for _, s := range secrets {
		for _, enc := range []string{
			string(s),
			hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s),
			base64.URLEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s),
			hex.EncodeToString(s[:8]), // even a prefix would be a leak
		} {
			if strings.Contains(out, enc) {
				t.Fatalf("audit output contains key bytes (%q)", enc)
			}
		}
	}
}

func mustAESKey(t testing.TB) []byte {
	t.Helper()
	key, err := GenerateAESKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func mustNewAES(t testing.TB, key []byte, opts *AESOptions) *AES {
	t.Helper()
	k, err := NewAES(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testDEK(t testing.TB) []byte {
	t.Helper()
	dek, err := GenerateAESKey() // any 32 random bytes
	if err != nil {
		t.Fatal(err)
	}
	return dek
}

func TestGenerateAESKey(t *testing.T) {
	a, b := mustAESKey(t), mustAESKey(t)
	if len(a) != AESKeySize || bytes.Equal(a, b) {
		t.Fatalf("GenerateAESKey: len %d, two keys equal: %v", len(a), bytes.Equal(a, b))
	}
}

func TestAESRoundTrip(t *testing.T) {
	ctx := context.Background()
	key := mustAESKey(t)
	k := mustNewAES(t, key, nil)
	dek := testDEK(t)
	ec := Context{"project": "x-57", "classification": "ECCN 9E003"}
	keys, err := k.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("Wrap returned %d keys", len(keys))
	}
	wk := keys[0]
	if wk.Provider != ProviderAES || wk.Algorithm != AlgorithmAES || wk.KeyID != k.KeyID() || len(wk.Ciphertext) != 60 {
		t.Fatalf("wrapped key %+v", wk)
	}
	if bytes.Contains(wk.Ciphertext, dek) {
		t.Fatal("wrapped key contains the data key")
	}
	// The context is canonicalised, so a map with the same pairs unwraps.
	got, err := k.Unwrap(ctx, keys, Context{"classification": "ECCN 9E003", "project": "x-57"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dek) {
		t.Fatal("unwrapped data key differs")
	}
	// A keyring made again from the same key bytes unwraps too.
	again := mustNewAES(t, key, nil)
	if again.KeyID() != k.KeyID() {
		t.Fatal("key id is not stable")
	}
	if got, err := again.Unwrap(ctx, keys, ec); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("second keyring: %v", err)
	}
	// Two wraps of the same key differ (random nonce).
	keys2, _ := k.Wrap(ctx, dek, ec)
	if bytes.Equal(keys2[0].Ciphertext, wk.Ciphertext) {
		t.Fatal("two wraps produced the same ciphertext")
	}
}

// TestAESKeyID checks the key id: HKDF-SHA-256 of the key under a label of
// its own (issue 11.5), not the HMAC-derived id of the first release, which
// the keyring still accepts in the wrapped keys of existing objects, and
// writes only when asked to (AESOptions.LegacyKeyID).
func TestAESKeyID(t *testing.T) {
	ctx := context.Background()
	key := mustAESKey(t)
	k := mustNewAES(t, key, nil)
	id := k.KeyID()
	want, err := hkdf.Key(sha256.New, key, nil, "geoseal keyring local-aes key id v2", 16)
	if err != nil {
		t.Fatal(err)
	}
	if id != hex.EncodeToString(want) {
		t.Fatalf("key id %s, want the HKDF-derived %x", id, want)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("geoseal keyring local-aes key id v1"))
	legacyID := hex.EncodeToString(m.Sum(nil)[:16])
	sum := sha256.Sum256(key)
	for _, other := range []string{legacyID, hex.EncodeToString(sum[:]), hex.EncodeToString(key)} {
		if strings.Contains(other, id) {
			t.Fatalf("key id %s is part of another value computed from the key (%s)", id, other)
		}
	}
	if mustNewAES(t, mustAESKey(t), nil).KeyID() == id {
		t.Fatal("two keys share a key id")
	}

	// Objects written with the legacy id still open, with the legacy id
	// authenticated as their associated data says.
	legacy := mustNewAES(t, key, &AESOptions{LegacyKeyID: true})
	if legacy.KeyID() != legacyID {
		t.Fatalf("LegacyKeyID: key id %s, want %s", legacy.KeyID(), legacyID)
	}
	dek := testDEK(t)
	ec := Context{"a": "b"}
	old, err := legacy.Wrap(ctx, dek, ec)
	if err != nil || old[0].KeyID != legacyID {
		t.Fatalf("legacy Wrap: %+v, %v", old, err)
	}
	fresh, err := k.Wrap(ctx, dek, ec)
	if err != nil || fresh[0].KeyID != id {
		t.Fatalf("Wrap: %+v, %v", fresh, err)
	}
	for name, kr := range map[string]*AES{"current": k, "legacy": legacy} {
		for which, wk := range map[string]WrappedKey{"legacy": old[0], "current": fresh[0]} {
			if got, err := kr.Unwrap(ctx, []WrappedKey{wk}, ec); err != nil || !bytes.Equal(got, dek) {
				t.Errorf("%s keyring, %s wrapped key: %v", name, which, err)
			}
		}
	}
	// The id is bound: a legacy wrapped key relabelled with the current id
	// (or the other way round) does not authenticate.
	swapped := old[0]
	swapped.KeyID = id
	if _, err := k.Unwrap(ctx, []WrappedKey{swapped}, ec); !errors.Is(err, errAESOpen) {
		t.Errorf("relabelled wrapped key: %v, want errAESOpen", err)
	}
}

func TestAESCrossKeyring(t *testing.T) {
	ctx := context.Background()
	a, b := mustNewAES(t, mustAESKey(t), nil), mustNewAES(t, mustAESKey(t), nil)
	dek := testDEK(t)
	keys, err := a.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	// b owns none of the keys: nothing is tried, everything is listed.
	_, err = b.Unwrap(ctx, keys, nil)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 0 || len(nm.Available) != 1 || nm.Available[0].KeyID != a.KeyID() {
		t.Fatalf("Unwrap by another key: %v", err)
	}
	if !strings.Contains(err.Error(), a.KeyID()) {
		t.Fatalf("error does not list the available key: %v", err)
	}
	// Relabelled to claim b's key id, it is tried and does not authenticate:
	// the key id is in the AAD and the key differs.
	forged := keys[0]
	forged.KeyID = b.KeyID()
	_, err = b.Unwrap(ctx, []WrappedKey{forged}, nil)
	if !errors.As(err, &nm) || len(nm.Tried) != 1 || !errors.Is(err, errAESOpen) {
		t.Fatalf("forged key id: %v", err)
	}
	// Other providers' keys are ignored even with a matching key id.
	other := keys[0]
	other.Provider = "local-rsa"
	if _, err := a.Unwrap(ctx, []WrappedKey{other}, nil); !errors.As(err, &nm) || len(nm.Tried) != 0 {
		t.Fatalf("other provider: %v", err)
	}
}

func TestAESWrongContext(t *testing.T) {
	ctx := context.Background()
	k := mustNewAES(t, mustAESKey(t), nil)
	ec := Context{"project": "x-57"}
	keys, err := k.Wrap(ctx, testDEK(t), ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []Context{nil, {"project": "x-58"}, {"project": "x-57", "extra": "1"}, {"Project": "x-57"}} {
		_, err := k.Unwrap(ctx, keys, wrong)
		var nm *NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 || !errors.Is(err, errAESOpen) {
			t.Errorf("context %v: %v", wrong, err)
		}
	}
	// An invalid context is refused outright.
	if _, err := k.Unwrap(ctx, keys, Context{"": "x"}); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("invalid context: %v", err)
	}
	if _, err := k.Wrap(ctx, testDEK(t), Context{"": "x"}); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("wrap with invalid context: %v", err)
	}
}

func TestAESTampered(t *testing.T) {
	ctx := context.Background()
	k := mustNewAES(t, mustAESKey(t), nil)
	keys, err := k.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ct := keys[0].Ciphertext
	for i := range ct {
		bad := keys[0]
		bad.Ciphertext = bytes.Clone(ct)
		bad.Ciphertext[i] ^= 0x01
		if dek, err := k.Unwrap(ctx, []WrappedKey{bad}, nil); err == nil || dek != nil {
			t.Fatalf("flipping byte %d: unwrapped", i)
		}
	}
	for _, c := range []struct {
		name string
		wk   WrappedKey
	}{
		{"truncated", WrappedKey{ProviderAES, k.KeyID(), AlgorithmAES, ct[:59]}},
		{"extended", WrappedKey{ProviderAES, k.KeyID(), AlgorithmAES, append(bytes.Clone(ct), 0)}},
		{"empty", WrappedKey{ProviderAES, k.KeyID(), AlgorithmAES, nil}},
		{"algorithm", WrappedKey{ProviderAES, k.KeyID(), "A256KW", ct}},
	} {
		_, err := k.Unwrap(ctx, []WrappedKey{c.wk}, nil)
		var nm *NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A bad key followed by a good one still unwraps.
	bad := keys[0]
	bad.Ciphertext = make([]byte, 60)
	if _, err := k.Unwrap(ctx, []WrappedKey{bad, keys[0]}, nil); err != nil {
		t.Fatalf("good key after a bad one: %v", err)
	}
}

func TestAESLimits(t *testing.T) {
	ctx := context.Background()
	audit, logger := newCapturedAudit()
	k := mustNewAES(t, mustAESKey(t), &AESOptions{Logger: logger, MaxWrappedKeys: 2})
	keys, err := k.Wrap(ctx, testDEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := len(audit.records(t))
	three := []WrappedKey{keys[0], keys[0], keys[0]}
	if _, err := k.Unwrap(ctx, three, nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("3 keys with a limit of 2: %v", err)
	}
	if n := len(audit.records(t)); n != before {
		t.Fatalf("a refused list was tried: %d audit records", n-before)
	}
	// The default limit is DefaultMaxWrappedKeys.
	d := mustNewAES(t, mustAESKey(t), nil)
	many := make([]WrappedKey, DefaultMaxWrappedKeys+1)
	if _, err := d.Unwrap(ctx, many, nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("%d keys: %v", len(many), err)
	}
	if _, err := d.Unwrap(ctx, many[1:], nil); errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("%d keys refused: %v", len(many)-1, err)
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := k.Wrap(ctx, make([]byte, n), nil); err == nil {
			t.Errorf("wrapped a %d-byte data key", n)
		}
	}
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := NewAES(make([]byte, n), nil); err == nil {
			t.Errorf("NewAES accepted a %d-byte key", n)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.Unwrap(canceled, keys, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

// TestLoadAESKeyFile checks that the loader reads key files through
// internal/keyfile (whose tests cover the file formats and checks) and
// makes the keyring of the key.
func TestLoadAESKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := mustAESKey(t)
	want := mustNewAES(t, key, nil)
	for name, data := range map[string][]byte{
		"raw":    key,
		"base64": []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadAESKeyFile(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k.KeyID() != want.KeyID() {
			t.Fatalf("%s: key id %s, want %s", name, k.KeyID(), want.KeyID())
		}
		keys, err := k.Wrap(ctx, testDEK(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := want.Unwrap(ctx, keys, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, key, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	if _, err := LoadAESKeyFile(open, nil); err == nil {
		t.Error("loaded a key file readable by others")
	}
	// A password, even base64 encoded, is not a key (issue 11.5).
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte(base64.StdEncoding.EncodeToString([]byte("correct horse battery staple 123"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAESKeyFile(password, nil); err == nil {
		t.Error("loaded a base64-encoded 32-character password as a key")
	}
	if _, err := LoadAESKeyFile(filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestAESAudit(t *testing.T) {
	ctx := context.Background()
	audit, logger := newCapturedAudit()
	key := mustAESKey(t)
	k := mustNewAES(t, key, &AESOptions{Logger: logger})
	dek := testDEK(t)
	keys, err := k.Wrap(ctx, dek, Context{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, keys, Context{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, keys, Context{"a": "c"}); err == nil {
		t.Fatal("wrong context unwrapped")
	}
	// Keys that are not this keyring's are not audited: no key was used.
	if _, err := k.Unwrap(ctx, []WrappedKey{{Provider: "other", KeyID: "x"}}, nil); err == nil {
		t.Fatal("foreign key unwrapped")
	}
	recs := audit.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d audit records, want 3:\n%s", len(recs), audit.output())
	}
	checkRecord(t, recs[0], "wrap", ProviderAES, k.KeyID(), AlgorithmAES, "ok")
	checkRecord(t, recs[1], "unwrap", ProviderAES, k.KeyID(), AlgorithmAES, "ok")
	checkRecord(t, recs[2], "unwrap", ProviderAES, k.KeyID(), AlgorithmAES, "error")
	if recs[0]["level"] != "INFO" || recs[2]["level"] != "WARN" {
		t.Errorf("levels %v, %v", recs[0]["level"], recs[2]["level"])
	}
	audit.assertNoSecrets(t, key, dek)
}

// TestAESGCMWycheproof drives the AES-GCM open primitive the keyring uses,
// cipher.NewGCMWithRandomNonce's Open over nonce || ciphertext || tag, with
// Wycheproof's 256-bit key, 96-bit IV, 128-bit tag vectors.
func TestAESGCMWycheproof(t *testing.T) {
	file := wycheproof.Load(t, wycheproof.AESGCM)
	var valid, invalid int
	for _, g := range file.TestGroups {
		if g.KeySize != 256 || g.IvSize != 96 || g.TagSize != 128 {
			continue
		}
		for _, tc := range g.Tests {
			block, err := aes.NewCipher(tc.Key)
			if err != nil {
				t.Fatal(err)
			}
			aead, err := cipher.NewGCMWithRandomNonce(block)
			if err != nil {
				t.Fatal(err)
			}
			in := slices.Concat(tc.IV, tc.CT, tc.Tag)
			pt, err := aead.Open(nil, nil, in, tc.AAD)
			switch {
			case tc.Valid():
				valid++
				if err != nil || !bytes.Equal(pt, tc.Msg) {
					t.Errorf("tcId %d (%s): valid vector: %v", tc.TcID, tc.Comment, err)
				}
			case tc.Invalid():
				invalid++
				if err == nil {
					t.Errorf("tcId %d (%s): invalid vector opened", tc.TcID, tc.Comment)
				}
			}
		}
	}
	if valid == 0 || invalid == 0 {
		t.Fatalf("ran %d valid and %d invalid vectors", valid, invalid)
	}
	t.Logf("%d valid and %d invalid AES-256-GCM vectors", valid, invalid)
}

func BenchmarkAESWrapUnwrap(b *testing.B) {
	ctx := context.Background()
	k := mustNewAES(b, mustAESKey(b), nil)
	dek := testDEK(b)
	ec := Context{"bucket": "b"}
	b.ReportAllocs()
	for b.Loop() {
		keys, err := k.Wrap(ctx, dek, ec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Unwrap(ctx, keys, ec); err != nil {
			b.Fatal(err)
		}
	}
}
