package keyring

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"net/http"
	"testing"
)

// errWrongDEK is what the checks of these tests return for a data key they
// do not expect, as envelope's returns ErrCommitment.
var errWrongDEK = errors.New("test: not the expected data key")

func expect(dek []byte) func([]byte) error {
	return func(got []byte) error {
		if !bytes.Equal(got, dek) {
			return errWrongDEK
		}
		return nil
	}
}

// hostileKeyring is a local keyring with what it takes to forge wrapped keys
// that name it: fakes that fail at the key, and genuine wrapped keys of data
// keys other than the object's.
type hostileKeyring struct {
	name string
	kr   Keyring
	// fake returns a wrapped key that names kr's key, passes its cheap
	// checks and fails only at the key operation, different for each i.
	fake func(i int) WrappedKey
	// opts returns kr again with MaxAttempts and a logger.
	withOpts func(t *testing.T, maxAttempts int) (Keyring, *capturedAudit)
}

func hostileKeyrings(t *testing.T) []hostileKeyring {
	aesKey := mustAESKey(t)
	aesKR := mustNewAES(t, aesKey, nil)
	priv := rsaTestKey(t, 0)
	rsaKR := mustNewRSAPrivate(t, priv, nil)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	return []hostileKeyring{
		{
			name: "local AES", kr: aesKR,
			fake: func(int) WrappedKey {
				return WrappedKey{ProviderAES, aesKR.KeyID(), AlgorithmAES, random(aesWrappedSize)}
			},
			withOpts: func(t *testing.T, n int) (Keyring, *capturedAudit) {
				a, logger := newCapturedAudit()
				return mustNewAES(t, aesKey, &AESOptions{MaxAttempts: n, Logger: logger}), a
			},
		},
		{
			name: "local RSA", kr: rsaKR,
			// Below the modulus, so each costs a private-key operation.
			fake: func(int) WrappedKey {
				return WrappedKey{ProviderRSA, rsaKR.KeyID(), AlgorithmRSA, append([]byte{0}, random(priv.Size()-1)...)}
			},
			withOpts: func(t *testing.T, n int) (Keyring, *capturedAudit) {
				a, logger := newCapturedAudit()
				return mustNewRSAPrivate(t, priv, &RSAOptions{MaxAttempts: n, Logger: logger}), a
			},
		},
	}
}

// attemptsIn counts the unwrap attempts an audit trail records.
func attemptsIn(t *testing.T, a *capturedAudit) int {
	n := 0
	for _, r := range a.records(t) {
		if r["op"] == "unwrap" {
			n++
		}
	}
	return n
}

// TestUnwrapAttemptLimit checks the bound on the key operations one hostile
// list of wrapped keys costs a local keyring: identical wrapped keys are
// tried once, at most MaxAttempts (default 2) of a keyring's own wrapped keys
// are tried, and refusals that cost no key operation do not count.
func TestUnwrapAttemptLimit(t *testing.T) {
	ctx := context.Background()
	for _, h := range hostileKeyrings(t) {
		t.Run(h.name, func(t *testing.T) {
			dek := testDEK(t)
			good, err := h.kr.Wrap(ctx, dek, nil)
			if err != nil {
				t.Fatal(err)
			}
			fakes := make([]WrappedKey, DefaultMaxWrappedKeys)
			for i := range fakes {
				fakes[i] = h.fake(i)
			}
			withGood := func(at int) []WrappedKey {
				keys := append([]WrappedKey(nil), fakes[:DefaultMaxWrappedKeys-1]...)
				return append(keys[:at], append([]WrappedKey{good[0]}, keys[at:]...)...)
			}
			for _, tc := range []struct {
				name        string
				maxAttempts int
				keys        []WrappedKey
				attempts    int
				skipped     int
				ok          bool
			}{
				{"16 fakes", 0, fakes, DefaultMaxAttempts, DefaultMaxWrappedKeys - DefaultMaxAttempts, false},
				{"16 fakes, MaxAttempts 5", 5, fakes, 5, DefaultMaxWrappedKeys - 5, false},
				{"16 copies of one fake", 0, repeat(fakes[0], DefaultMaxWrappedKeys), 1, 0, false},
				{"good one second", 0, withGood(1), 2, 0, true},
				{"good one third", 0, withGood(2), 2, DefaultMaxWrappedKeys - 2, false},
				{"good one third, MaxAttempts 3", 3, withGood(2), 3, 0, true},
				{"good one after free refusals", 0, append(wrongAlgorithm(fakes[:DefaultMaxWrappedKeys-1]), good[0]), 1, 0, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					kr, audit := h.withOpts(t, tc.maxAttempts)
					got, err := kr.Unwrap(ctx, tc.keys, nil)
					if n := attemptsIn(t, audit); n != tc.attempts+countWrongAlgorithm(tc.keys) {
						t.Errorf("%d unwrap attempts audited, want %d", n, tc.attempts)
					}
					if tc.ok {
						if err != nil || !bytes.Equal(got, dek) {
							t.Fatalf("Unwrap: %v", err)
						}
						return
					}
					nm := asNoMatch(t, err)
					if nm.Skipped != tc.skipped {
						t.Errorf("Skipped %d, want %d", nm.Skipped, tc.skipped)
					}
				})
			}
		})
	}
}

func repeat(wk WrappedKey, n int) []WrappedKey {
	keys := make([]WrappedKey, n)
	for i := range keys {
		keys[i] = wk
	}
	return keys
}

// wrongAlgorithm returns copies of keys with an algorithm no keyring
// accepts: refused before any key operation.
func wrongAlgorithm(keys []WrappedKey) []WrappedKey {
	out := make([]WrappedKey, len(keys))
	for i, k := range keys {
		out[i] = k
		out[i].Algorithm = "RSA1_5"
	}
	return out
}

func countWrongAlgorithm(keys []WrappedKey) int {
	n := 0
	for _, k := range keys {
		if k.Algorithm == "RSA1_5" {
			n++
		}
	}
	return n
}

// TestUnwrapCheckedNextRecord checks that a wrapped key whose data key the
// caller's check rejects (envelope's key commitment) is a failed attempt,
// and that the next one is tried: by a keyring, a Multi, a Cache, and a
// Cache in front of a Multi, with the rejected data key already cached.
func TestUnwrapCheckedNextRecord(t *testing.T) {
	ctx := context.Background()
	priv := rsaTestKey(t, 0)
	rsaKR := mustNewRSAPrivate(t, priv, nil)
	other := mustNewAES(t, mustAESKey(t), nil)
	dek, attackers := testDEK(t), testDEK(t)
	// Anyone with the public key makes a wrapped key of a data key of
	// their choosing.
	forged, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, attackers, nil)
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := rsaKR.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := []WrappedKey{{ProviderRSA, rsaKR.KeyID(), AlgorithmRSA, forged}, genuine[0]}

	for name, u := range map[string]Unwrapper{
		"RSA":                    rsaKR,
		"Multi":                  NewMulti(other, rsaKR),
		"Cache":                  NewCache(rsaKR, nil),
		"Cache(Multi)":           NewCache(NewMulti(other, rsaKR), nil),
		"Multi(Cache, Cache)":    NewMulti(NewCache(other, nil), NewCache(rsaKR, nil)),
		"Cache(foreign keyring)": NewCache(&countingKeyring{Keyring: rsaKR}, nil),
	} {
		t.Run(name, func(t *testing.T) {
			// Without a check, the first wrapped key that unwraps wins,
			// as Unwrap documents (and a cache now holds its data key).
			if got, err := u.Unwrap(ctx, keys, nil); err != nil || !bytes.Equal(got, attackers) {
				t.Fatalf("Unwrap: %x, %v", got, err)
			}
			got, err := UnwrapChecked(ctx, u, keys, nil, expect(dek))
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("UnwrapChecked: %x, %v; want the genuine data key", got, err)
			}
			// When every data key fails the check, the check's error
			// comes back, not a NoMatchError: a key unwrapped, to the
			// wrong data key.
			_, err = UnwrapChecked(ctx, u, keys, nil, expect(testDEK(t)))
			var nm *NoMatchError
			if !errors.Is(err, errWrongDEK) || errors.As(err, &nm) {
				t.Fatalf("all rejected: %v, want errWrongDEK and no *NoMatchError", err)
			}
		})
	}

	// The cache stores the wrapped key that passed, not the one before it.
	c := NewCache(NewMulti(other, rsaKR), nil)
	if _, err := UnwrapChecked(ctx, c, keys, nil, expect(dek)); err != nil {
		t.Fatal(err)
	}
	if cachedDEK(t, c, keys[1], nil) == nil || cachedDEK(t, c, keys[0], nil) != nil {
		t.Fatal("the cache did not store exactly the wrapped key that yielded the accepted data key")
	}

	// A keyring of another package is called once and its data key checked.
	if _, err := UnwrapChecked(ctx, fixedUnwrapper(attackers), keys, nil, expect(dek)); !errors.Is(err, errWrongDEK) {
		t.Fatalf("foreign unwrapper: %v, want errWrongDEK", err)
	}
	if got, err := UnwrapChecked(ctx, fixedUnwrapper(dek), keys, nil, expect(dek)); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("foreign unwrapper: %v", err)
	}
}

// fixedUnwrapper returns its data key for any list.
type fixedUnwrapper []byte

func (f fixedUnwrapper) Unwrap(context.Context, []WrappedKey, Context) ([]byte, error) {
	return bytes.Clone(f), nil
}

// TestKeyVaultStopsAtServiceFailure checks which Key Vault answers end an
// Unwrap: a 400 (not this key's ciphertext) or a 404 (no such version)
// moves on to the next wrapped key, a 429 or 503 that outlasts azcore's
// retries, or a 403, stops it.
func TestKeyVaultStopsAtServiceFailure(t *testing.T) {
	ctx := context.Background()
	s := kvServer(t)
	s.CreateRSAKey("rsa", 2048)
	s.CreateRSAKey("denied", 2048)
	kv := newTestKeyVault(t, s.KeyURL("rsa"), s.Credential(), kvOptions(s))
	denied := newTestKeyVault(t, s.KeyURL("denied"), s.Credential(), kvOptions(s))
	s.SetKeyOps("denied", "wrapKey") // unwrapkey now answers 403
	fakes := func(kr *KeyVault, version string) []WrappedKey {
		keys := make([]WrappedKey, 4)
		for i := range keys {
			ct := make([]byte, 256)
			rand.Read(ct[1:])
			keys[i] = WrappedKey{ProviderKeyVault, kr.KeyID(), "RSA-OAEP-256", ct}
			if version != "" {
				keys[i].KeyID = s.KeyURL("rsa") + "/" + version
			}
		}
		return keys
	}
	for _, tc := range []struct {
		name     string
		kr       *KeyVault
		version  string // of the wrapped keys, if not the keyring's
		status   int    // injected on every request; 0 for none
		attempts int
		requests int
		want     int // status of the *azcore.ResponseError in the result
	}{
		{"400", kv, "", 0, DefaultMaxAttempts, DefaultMaxAttempts, http.StatusBadRequest},
		{"404", kv, "0123456789abcdef0123456789abcdef", 0, DefaultMaxAttempts, DefaultMaxAttempts, http.StatusNotFound},
		{"429", kv, "", http.StatusTooManyRequests, 1, 4, http.StatusTooManyRequests},
		{"503", kv, "", http.StatusServiceUnavailable, 1, 4, http.StatusServiceUnavailable},
		{"403", denied, "", 0, 1, 1, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := fakes(tc.kr, tc.version)
			s.ResetCounts()
			if tc.status != 0 {
				s.FailNext(1000, tc.status)
				defer s.FailNext(0, 0)
			}
			_, err := tc.kr.Unwrap(ctx, keys, nil)
			nm := asNoMatch(t, err)
			asResponseError(t, err, tc.want)
			if len(nm.Tried) != tc.attempts || nm.Skipped != len(keys)-tc.attempts {
				t.Errorf("tried %d, skipped %d; want %d and %d", len(nm.Tried), nm.Skipped, tc.attempts, len(keys)-tc.attempts)
			}
			if c := s.Counts(); c.Requests != tc.requests {
				t.Errorf("%d requests reached the vault, want %d (%+v)", c.Requests, tc.requests, c)
			}
		})
	}
}

// TestTinkAttemptLimit checks the attempt limit of the Tink keyring, whose
// AEAD's errors never stop the loop.
func TestTinkAttemptLimit(t *testing.T) {
	if fips140.Enforced() {
		if _, err := NewTinkAEAD(newTinkKeysetAEAD(t), "k", nil); !errors.Is(err, ErrNotApproved) {
			t.Fatalf("NewTinkAEAD in FIPS 140-only mode: %v, want ErrNotApproved", err)
		}
		return
	}
	ctx := context.Background()
	audit, logger := newCapturedAudit()
	k := mustNewTink(t, "keyset", &TinkOptions{Logger: logger})
	keys := make([]WrappedKey, DefaultMaxWrappedKeys)
	for i := range keys {
		ct := make([]byte, 60)
		rand.Read(ct)
		keys[i] = WrappedKey{ProviderTink, "keyset", AlgorithmTink, ct}
	}
	nm := asNoMatch(t, func() error { _, err := k.Unwrap(ctx, keys, nil); return err }())
	if n := attemptsIn(t, audit); n != DefaultMaxAttempts || nm.Skipped != DefaultMaxWrappedKeys-DefaultMaxAttempts {
		t.Fatalf("%d attempts, %d skipped", n, nm.Skipped)
	}
}
