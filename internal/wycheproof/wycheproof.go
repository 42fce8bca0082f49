// Package wycheproof loads the Wycheproof test vectors kept in the
// repository's testdata/wycheproof, for the known-answer tests of every wrap
// and AEAD primitive geoseal uses (AES-GCM, AES key wrap with and without
// padding, RSA-OAEP with SHA-1 and SHA-256).
//
// One loader for every package: a test calls Load with the file name and
// walks the groups it cares about. Hex fields are decoded on load, so a
// malformed vector fails the test that loads it, not one that uses it.
package wycheproof

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// The vector files this package knows, as named in testdata/wycheproof.
const (
	AESGCM        = "aes_gcm_test.json"
	AESKeyWrap    = "aes_wrap_test.json" // RFC 3394, Key Vault's A256KW
	AESKeyWrapPad = "aes_kwp_test.json"  // RFC 5649, CKM_AES_KEY_WRAP_PAD
	RSAOAEPSHA1   = "rsa_oaep_2048_sha1_mgf1sha1_test.json"
	RSAOAEPSHA256 = "rsa_oaep_2048_sha256_mgf1sha256_test.json"
)

// Hex is a byte string written in hex in the JSON files.
type Hex []byte

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("wycheproof: %w", err)
	}
	*h = v
	return nil
}

// A File is one vector file.
type File struct {
	Algorithm     string  `json:"algorithm"`
	NumberOfTests int     `json:"numberOfTests"`
	TestGroups    []Group `json:"testGroups"`
}

// A Group is a set of tests sharing parameters. Which fields are set depends
// on the file: sizes for AEAD and key wrap, hashes and a key for RSA-OAEP.
type Group struct {
	KeySize int `json:"keySize"` // bits
	IvSize  int `json:"ivSize"`  // bits
	TagSize int `json:"tagSize"` // bits

	SHA             string `json:"sha"`
	MGF             string `json:"mgf"`
	MGFSHA          string `json:"mgfSha"`
	PrivateKeyPkcs8 Hex    `json:"privateKeyPkcs8"`

	Tests []Test `json:"tests"`
}

// RSAPrivateKey parses the group's PKCS #8 private key.
func (g *Group) RSAPrivateKey() (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(g.PrivateKeyPkcs8)
	if err != nil {
		return nil, fmt.Errorf("wycheproof: %w", err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("wycheproof: private key is a %T, not RSA", k)
	}
	return priv, nil
}

// A Test is one vector.
type Test struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Key     Hex      `json:"key"`
	IV      Hex      `json:"iv"`
	AAD     Hex      `json:"aad"`
	Msg     Hex      `json:"msg"`
	CT      Hex      `json:"ct"`
	Tag     Hex      `json:"tag"`
	Label   Hex      `json:"label"`
	// Result is "valid", "invalid" or "acceptable" (valid input that an
	// implementation may refuse, such as a too-short key).
	Result string `json:"result"`
}

// Valid reports whether the vector must be accepted.
func (t *Test) Valid() bool { return t.Result == "valid" }

// Invalid reports whether the vector must be refused.
func (t *Test) Invalid() bool { return t.Result == "invalid" }

// HasFlag reports whether the vector carries flag.
func (t *Test) HasFlag(flag string) bool {
	for _, f := range t.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Load reads and decodes testdata/wycheproof/name, failing tb on any error.
func Load(tb testing.TB, name string) *File {
	tb.Helper()
	f, err := Read(name)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// Read is Load for callers without a testing.TB (fuzz seed builders).
func Read(name string) (*File, error) {
	data, err := os.ReadFile(filepath.Join(Dir(), name))
	if err != nil {
		return nil, fmt.Errorf("wycheproof: %w", err)
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("wycheproof: %s: %w", name, err)
	}
	n := 0
	for _, g := range f.TestGroups {
		n += len(g.Tests)
	}
	if f.NumberOfTests != 0 && n != f.NumberOfTests {
		return nil, fmt.Errorf("wycheproof: %s: %d tests, the header says %d", name, n, f.NumberOfTests)
	}
	return &f, nil
}

// Dir returns the directory holding the vector files: testdata/wycheproof
// at the root of the module, located from this source file so that tests in
// any package find it.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("testdata", "wycheproof")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "wycheproof")
}
