package keyfile

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
)

// FuzzParseAESKey fuzzes the AES key file parser: it must not panic, and
// whatever it accepts is a 32-byte key that is not text.
func FuzzParseAESKey(f *testing.F) {
	key := bytes.Repeat([]byte{0xa5}, 32)
	f.Add(key)
	f.Add([]byte(base64.StdEncoding.EncodeToString(key) + "\n"))
	f.Add([]byte(" " + base64.StdEncoding.EncodeToString(key)))
	f.Add([]byte(base64.URLEncoding.EncodeToString(key)))
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("correct horse battery staple 123"))))
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
		if checkNotText(k) != nil {
			t.Fatal("accepted 32 characters of text as a key")
		}
		if len(data) != 32 {
			want, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
			if err != nil || !bytes.Equal(k, want) {
				t.Fatalf("base64 key decoded inconsistently (%v)", err)
			}
		}
	})
}

// FuzzParseRSAPEM fuzzes both PEM key parsers: no panic, and whatever they
// accept is an RSA key of at least MinRSABits.
func FuzzParseRSAPEM(f *testing.F) {
	priv := testRSAKey(f)
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
		if len(data) > maxSize {
			return // the readers never read more
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
