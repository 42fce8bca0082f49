package keyring

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
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
		ct, _ := hex.DecodeString(tc.Ct)
		f.Add(ct)
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

// FuzzParseAESKey fuzzes the AES key file parser: it must not panic, and
// whatever it accepts is a 32-byte key.
func FuzzParseAESKey(f *testing.F) {
	key := bytes.Repeat([]byte{0xa5}, 32)
	f.Add(key)
	f.Add([]byte(base64.StdEncoding.EncodeToString(key) + "\n"))
	f.Add([]byte(" " + base64.StdEncoding.EncodeToString(key)))
	f.Add([]byte(base64.URLEncoding.EncodeToString(key)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseAESKey(data)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if len(k) != 32 {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
		if len(data) == 32 && isPrintableText(data) {
			t.Fatal("accepted 32 characters of text as a raw key")
		}
		if len(data) != 32 && !bytes.Equal(k, mustDecodeB64(t, bytes.TrimSpace(data))) {
			t.Fatal("base64 key decoded inconsistently")
		}
	})
}

func mustDecodeB64(t *testing.T, b []byte) []byte {
	out, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		t.Fatalf("parseAESKey accepted what base64 refuses: %v", err)
	}
	return out
}

// FuzzParseRSAPEM fuzzes both PEM key parsers: no panic, and whatever they
// accept is an RSA key of at least 2048 bits.
func FuzzParseRSAPEM(f *testing.F) {
	priv, _ := loadWycheproofRSAOAEP256(f)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	pkix, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	for _, b := range []*pem.Block{
		{Type: "PRIVATE KEY", Bytes: pkcs8},
		{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)},
		{Type: "PUBLIC KEY", Bytes: pkix},
		{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)},
		{Type: "ENCRYPTED PRIVATE KEY", Bytes: pkcs8},
		{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: pkcs8},
	} {
		f.Add(pem.EncodeToMemory(b))
	}
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxKeyFileSize {
			return // the loaders never read more
		}
		if pub, err := parseRSAPublicPEM(data); err == nil {
			checkFuzzedRSA(t, pub)
		}
		if priv, err := parseRSAPrivatePEM(data); err == nil {
			checkFuzzedRSA(t, &priv.PublicKey)
		}
	})
}

func checkFuzzedRSA(t *testing.T, pub *rsa.PublicKey) {
	if pub == nil || pub.N == nil || pub.N.BitLen() < MinRSABits {
		t.Fatalf("accepted a weak or empty RSA key")
	}
}
