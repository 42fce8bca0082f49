package keyring

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzAESUnwrap feeds arbitrary wrapped keys to the AES keyring. It must
// never panic, must answer with a *NoMatchError, and may only unwrap a
// genuine wrapped key of the fixed data key. (Fuzzing runs in several
// processes, each wrapping under its own random nonce, so "genuine" cannot
// mean one ciphertext.)
func FuzzAESUnwrap(f *testing.F) {
	k, err := NewAES(bytes.Repeat([]byte{0x42}, 32), nil)
	if err != nil {
		f.Fatal(err)
	}
	dek := bytes.Repeat([]byte{7}, 32)
	ec := Context{"fuzz": "1"}
	keys, err := k.Wrap(context.Background(), dek, ec)
	if err != nil {
		f.Fatal(err)
	}
	genuine := keys[0].Ciphertext
	f.Add(k.KeyID(), AlgorithmAES, genuine)
	f.Add(k.KeyID(), AlgorithmAES, genuine[:59])
	f.Add(k.KeyID(), AlgorithmAES, make([]byte, 60))
	f.Add(k.KeyID(), "A256KW", genuine)
	f.Add("", "", []byte{})
	f.Fuzz(func(t *testing.T, keyID, alg string, ct []byte) {
		wk := WrappedKey{Provider: ProviderAES, KeyID: keyID, Algorithm: alg, Ciphertext: ct}
		got, err := k.Unwrap(context.Background(), []WrappedKey{wk, wk}, ec)
		if err == nil {
			if keyID != k.KeyID() || alg != AlgorithmAES || len(ct) != 60 || !bytes.Equal(got, dek) {
				t.Fatalf("forged wrapped key unwrapped: %q %q %x", keyID, alg, ct)
			}
			return
		}
		var nm *NoMatchError
		if !errors.As(err, &nm) || got != nil {
			t.Fatalf("error %v (%T), %d bytes", err, err, len(got))
		}
	})
}

// FuzzRSAUnwrap feeds arbitrary ciphertexts to the RSA keyring (with the
// Wycheproof vectors' key, so the corpus stays meaningful across runs). It
// must never panic, must answer with a *NoMatchError or a 32-byte data key,
// and must fail with the one uniform error.
func FuzzRSAUnwrap(f *testing.F) {
	priv, tests := loadWycheproofRSAOAEP256(f)
	k, err := NewRSAPrivate(priv, nil)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := k.Wrap(context.Background(), bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keys[0].Ciphertext)
	f.Add([]byte{})
	f.Add(make([]byte, 256))
	f.Add(bytes.Repeat([]byte{0xff}, 256))
	for _, tc := range tests[:8] {
		f.Add([]byte(tc.CT))
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		wk := WrappedKey{Provider: ProviderRSA, KeyID: k.KeyID(), Algorithm: AlgorithmRSA, Ciphertext: ct}
		got, err := k.Unwrap(context.Background(), []WrappedKey{wk}, nil)
		if err == nil {
			if len(got) != 32 {
				t.Fatalf("unwrapped %d bytes", len(got))
			}
			return
		}
		var nm *NoMatchError
		if !errors.As(err, &nm) || len(nm.Tried) != 1 || got != nil {
			t.Fatalf("error %v", err)
		}
		// The one uniform decryption error, or a well-formed plaintext that
		// is not a data key.
		if e := nm.Tried[0].Err; e != errRSAOpen && !strings.Contains(e.Error(), "unwrapped data key has") {
			t.Fatalf("non-uniform decryption error %v", e)
		}
	})
}
