package keyfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/wycheproof"
)

// testRSAKey is the 2048-bit key of the Wycheproof RSA-OAEP-256 vectors: a
// fixed key, so no test spends time generating one.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	f := wycheproof.Load(t, wycheproof.RSAOAEPSHA256)
	priv, err := f.TestGroups[0].RSAPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// writeFile writes data to a new file in dir with exactly mode (whatever the
// umask) and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomKey(t *testing.T) []byte {
	key := make([]byte, aesKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestReadAESKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := randomKey(t)
	for name, data := range map[string][]byte{
		"raw":    key,
		"base64": []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"spaces": []byte("  " + base64.StdEncoding.EncodeToString(key) + "\r\n"),
	} {
		got, err := ReadAESKeyFile(writeFile(t, dir, name, data, 0o600))
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("%s: %x, %v", name, got, err)
		}
	}
	if _, err := ReadAESKeyFile(writeFile(t, dir, "ro", key, 0o400)); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
	for name, c := range map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"group readable":  {key, 0o640},
		"world readable":  {key, 0o604},
		"short":           {key[:31], 0o600},
		"long":            {append(bytes.Clone(key), 0), 0o600},
		"bad base64":      {[]byte(strings.Repeat("!", 44)), 0o600},
		"base64 of 33":    {[]byte(base64.StdEncoding.EncodeToString(make([]byte, 33))), 0o600},
		"url base64":      {[]byte(strings.ReplaceAll(strings.ReplaceAll(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), "+", "-"), "/", "_")), 0o600},
		"empty":           {nil, 0o600},
		"password":        {[]byte("correct horse battery staple 123"), 0o600},
		"base64 password": {[]byte(base64.StdEncoding.EncodeToString([]byte("correct horse battery staple 123")) + "\n"), 0o600},
		"base64 hex":      {[]byte(base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(key[:16])))), 0o600},
		"hex":             {[]byte(hex.EncodeToString(key[:16])), 0o600},
		"huge":            {make([]byte, 100<<10), 0o600},
	} {
		_, err := ReadAESKeyFile(writeFile(t, dir, strings.ReplaceAll(name, " ", "_"), c.data, c.mode))
		if err == nil {
			t.Errorf("%s: read", name)
			continue
		}
		if strings.Contains(err.Error(), string(key)) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(key)) {
			t.Errorf("%s: error quotes the key", name)
		}
	}
	if _, err := ReadAESKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadAESKeyFile(dir); err == nil {
		t.Error("read a directory")
	}
}

func TestReadRSAPEM(t *testing.T) {
	dir := t.TempDir()
	priv := testRSAKey(t)
	pem := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"PKIX":  pem("PUBLIC KEY", pkix),
		"PKCS1": pem("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&priv.PublicKey)),
	} {
		pub, err := ReadRSAPublicPEM(writeFile(t, dir, name+".pub", data, 0o644))
		if err != nil || !pub.Equal(&priv.PublicKey) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, c := range map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"PKCS8": {pem("PRIVATE KEY", pkcs8), 0o600},
		"PKCS1": {pem("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv)), 0o400},
	} {
		got, err := ReadRSAPrivatePEM(writeFile(t, dir, name, c.data, c.mode))
		if err != nil || !got.Equal(priv) {
			t.Fatalf("%s: %v", name, err)
		}
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPKIX, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	for name, c := range map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"group-readable private": {pem("PRIVATE KEY", pkcs8), 0o644},
		"EC private":             {pem("PRIVATE KEY", ecPKCS8), 0o600},
		"public as private":      {pem("PUBLIC KEY", pkix), 0o600},
		"encrypted":              {pem("ENCRYPTED PRIVATE KEY", pkcs8), 0o600},
		"garbage DER":            {pem("PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}), 0o600},
		"not PEM":                {[]byte("no pem here"), 0o600},
	} {
		if _, err := ReadRSAPrivatePEM(writeFile(t, dir, strings.ReplaceAll(name, " ", "_"), c.data, c.mode)); err == nil {
			t.Errorf("ReadRSAPrivatePEM %s: read", name)
		}
	}
	for name, data := range map[string][]byte{
		"EC public":        pem("PUBLIC KEY", ecPKIX),
		"private":          pem("PRIVATE KEY", pkcs8),
		"garbage":          pem("PUBLIC KEY", []byte("nope")),
		"certificate type": pem("CERTIFICATE", pkix),
		"empty":            nil,
	} {
		if _, err := ReadRSAPublicPEM(writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".pub", data, 0o644)); err == nil {
			t.Errorf("ReadRSAPublicPEM %s: read", name)
		}
	}
	if _, err := ReadRSAPrivatePEM(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestMinRSABits checks that RSA keys below MinRSABits are refused on every
// way into geoseal through key files. testdata holds a throw-away 1024-bit
// key (openssl genrsa 1024) as a PKCS #1 private key, a PKIX public key and
// a PKCS #1 public key.
func TestMinRSABits(t *testing.T) {
	dir := t.TempDir()
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, name := range []string{"rsa1024.pub.pem", "rsa1024.pkcs1.pub.pem"} {
		if _, err := ReadRSAPublicPEM(writeFile(t, dir, name, read(name), 0o644)); err == nil || !strings.Contains(err.Error(), "at least 2048") {
			t.Errorf("1024-bit public key %s: %v, want a refusal naming the minimum", name, err)
		}
	}
	if _, err := ReadRSAPrivatePEM(writeFile(t, dir, "rsa1024.pem", read("rsa1024.pem"), 0o600)); err == nil {
		t.Error("1024-bit PKCS #1 private key read")
	}
	priv := testRSAKey(t)
	for name, c := range map[string]struct {
		pub *rsa.PublicKey
		ok  bool
	}{
		"2048":     {&priv.PublicKey, true},
		"2047":     {&rsa.PublicKey{N: new(big.Int).Rsh(priv.N, 1), E: 65537}, false},
		"16385":    {&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), MaxRSABits), E: 65537}, false},
		"even E":   {&rsa.PublicKey{N: priv.N, E: 65536}, false},
		"E 1":      {&rsa.PublicKey{N: priv.N, E: 1}, false},
		"nil":      {nil, false},
		"nil N":    {&rsa.PublicKey{E: 65537}, false},
		"min bits": {&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), MinRSABits-1), E: 3}, true},
	} {
		if err := CheckRSAPublicKey(c.pub); (err == nil) != c.ok {
			t.Errorf("CheckRSAPublicKey(%s) = %v, want ok %v", name, err, c.ok)
		}
	}
}
