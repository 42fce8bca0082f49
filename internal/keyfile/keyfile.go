// Package keyfile reads the key files geoseal accepts (AES-256 key files,
// RSA public and private keys in PEM) and checks the RSA keys that enter
// geoseal from anywhere.
//
// It is the one place that decides what a key file may look like, for the
// keyring package's Load functions and for the command line, which also
// needs the raw keys (an Azure CSE v2 key-encryption key). Every reader
// bounds what it reads before it reads it; the readers of secret keys refuse,
// on Unix, files that group or others can access, as ssh does with private
// keys; no error quotes key material.
package keyfile

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/geoseal/geoseal/internal/untrusted"
)

// aesKeySize is the size of an AES-256 key, the only size of AES key file.
const aesKeySize = 32

// Limits on RSA keys, the same as keyring.MinRSABits and its upper bound
// (keyring imports this package, so it cannot be the other way round).
// Below 2048 bits RSA is not approved for key transport (NIST SP 800-131A);
// above 16384 bits a hostile public key would only make every operation
// slow.
const (
	MinRSABits = 2048
	MaxRSABits = 16384
)

// maxSize bounds what the readers read: the largest RSA private key PEM
// allowed is about 25 KiB.
const maxSize = 64 << 10

// ReadAESKeyFile returns the raw 32-byte AES-256 key in the file at path.
// The file holds either the 32 raw key bytes, or their standard base64
// encoding (44 characters) optionally surrounded by white space, as `geoseal
// keygen` writes. A key that is 32 printable characters, raw or base64
// encoded, is refused: it is a password or a hex string, not a random key,
// and as easy to guess.
//
// On Unix systems the file must not be readable or writable by group or
// others (mode 0600 or 0400); the check is made on the opened file. The
// caller should zero the key when done.
func ReadAESKeyFile(path string) ([]byte, error) {
	data, err := readFile(path, true)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	key, err := parseAESKey(data)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %s: %w", path, err)
	}
	return key, nil
}

// parseAESKey decodes the contents of an AES key file, as ReadAESKeyFile
// does. The result is a new slice the caller should zero. Its errors never
// quote the data.
func parseAESKey(data []byte) ([]byte, error) {
	if len(data) == aesKeySize {
		if err := checkNotText(data); err != nil {
			return nil, err
		}
		return bytes.Clone(data), nil
	}
	text := bytes.TrimSpace(data)
	if len(text) != base64.StdEncoding.EncodedLen(aesKeySize) {
		return nil, fmt.Errorf("AES key file holds %d bytes: want %d raw bytes or %d base64 characters", len(data), aesKeySize, base64.StdEncoding.EncodedLen(aesKeySize))
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Strict().Decode(key, text)
	if err != nil || n != aesKeySize {
		clear(key)
		// The base64 error names an offset, never the bytes.
		return nil, errors.New("AES key file is neither 32 raw bytes nor valid base64 of 32 bytes")
	}
	key = key[:n]
	// The text check applies to the key, whatever its encoding in the file:
	// base64 of a 32-character password is still a password.
	if err := checkNotText(key); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// checkNotText refuses a 32-byte key made of printable ASCII. 32 random
// bytes are all printable with probability about 1e-14; a key that is, is a
// password or a hex string.
func checkNotText(key []byte) error {
	for _, c := range key {
		if c < 0x20 || c > 0x7e {
			return nil
		}
	}
	return errors.New("AES key file holds a key of 32 printable characters (raw or base64), a password or a hex string rather than a random key: make one with geoseal keygen")
}

// ReadRSAPublicPEM returns the RSA public key in the PEM file at path: a
// "PUBLIC KEY" block (PKIX, as `openssl pkey -pubout` writes) or an "RSA
// PUBLIC KEY" block (PKCS #1). The first PEM block of the file is used. The
// key must pass CheckRSAPublicKey. Public keys are not secret: the file may
// have any permissions.
func ReadRSAPublicPEM(path string) (*rsa.PublicKey, error) {
	data, err := readFile(path, false)
	if err != nil {
		return nil, err
	}
	pub, err := parseRSAPublicPEM(data)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %s: %w", path, err)
	}
	return pub, nil
}

// ReadRSAPrivatePEM returns the RSA private key in the PEM file at path: a
// "PRIVATE KEY" block (PKCS #8) or an "RSA PRIVATE KEY" block (PKCS #1),
// unencrypted. The first PEM block of the file is used. Its public key must
// pass CheckRSAPublicKey. Like ReadAESKeyFile, it refuses, on Unix systems,
// a file that group or others can access.
func ReadRSAPrivatePEM(path string) (*rsa.PrivateKey, error) {
	data, err := readFile(path, true)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	priv, err := parseRSAPrivatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %s: %w", path, err)
	}
	return priv, nil
}

// parseRSAPublicPEM decodes the first PEM block of data as an RSA public
// key, as ReadRSAPublicPEM does.
func parseRSAPublicPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		var ok bool
		if pub, ok = k.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("PEM public key is a %T, not an RSA key", k)
		}
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub = k
	case "PRIVATE KEY", "RSA PRIVATE KEY":
		return nil, errors.New("PEM block is a private key: keep it out of a public key file")
	default:
		return nil, fmt.Errorf("PEM block of type %s is not an RSA public key", untrusted.Quote(block.Type))
	}
	if err := CheckRSAPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// parseRSAPrivatePEM decodes the first PEM block of data as an RSA private
// key, as ReadRSAPrivatePEM does. Its errors never quote the key.
func parseRSAPrivatePEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	defer clear(block.Bytes)
	if _, ok := block.Headers["Proc-Type"]; ok {
		return nil, errors.New("encrypted PEM private keys are not supported (decrypt it, or better, move it to an HSM)")
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("invalid PKCS #8 private key")
		}
		var ok bool
		if priv, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("PEM private key is a %T, not an RSA key", k)
		}
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("invalid PKCS #1 private key")
		}
		priv = k
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted PEM private keys are not supported (decrypt it, or better, move it to an HSM)")
	default:
		return nil, fmt.Errorf("PEM block of type %s is not an RSA private key", untrusted.Quote(block.Type))
	}
	if err := CheckRSAPublicKey(&priv.PublicKey); err != nil {
		return nil, err
	}
	return priv, nil
}

// CheckRSAPublicKey is geoseal's rule for every RSA key it accepts, from a
// file, a caller, a Key Vault or an HSM: MinRSABits to MaxRSABits bits and
// an odd public exponent of at least 3. Its errors have no package prefix,
// for the caller to add its own.
func CheckRSAPublicKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return errors.New("nil RSA public key")
	}
	if err := CheckRSABits(pub.N.BitLen()); err != nil {
		return err
	}
	if pub.E < 3 || pub.E&1 == 0 {
		return fmt.Errorf("RSA public exponent %d is invalid", pub.E)
	}
	return nil
}

// CheckRSABits checks the size of an RSA modulus, for keys of which only
// the size is known (an HSM's).
func CheckRSABits(bits int) error {
	switch {
	case bits < MinRSABits:
		return fmt.Errorf("RSA key of %d bits, at least %d required", bits, MinRSABits)
	case bits > MaxRSABits:
		return fmt.Errorf("RSA key of %d bits, at most %d accepted", bits, MaxRSABits)
	}
	return nil
}

// readFile reads at most maxSize bytes of a regular file. If secret, it
// also refuses (on Unix) a file accessible to group or others.
func readFile(path string, secret bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyfile: key file %s is not a regular file", path)
	}
	if secret && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyfile: key file %s has mode %04o: it must not be accessible to group or others (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	if len(data) > maxSize {
		clear(data)
		return nil, fmt.Errorf("keyfile: key file %s is larger than %d bytes", path, maxSize)
	}
	return data, nil
}
