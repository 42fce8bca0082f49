// Package pysdk drives the real Azure Storage SDK for Python (Debian's
// python3-azure-storage, azure-storage-blob 12.15.0b1, run by Debian's
// /usr/bin/python3) as the peer of geoseal's tests of Azure client-side
// encryption: it fills an Azurite container with the blobs the SDK writes,
// in CSE v1 (its default encryption_version), CSE v2 or unencrypted, with
// one Put Blob or in staged blocks, all from one Python process.
package pysdk

import (
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/testenv"
)

// Python is the interpreter that has the SDK.
const Python = "/usr/bin/python3"

//go:embed cse_container.py
var script []byte

// Require fails the test in CI, and skips it loudly elsewhere, unless the
// SDK can be imported.
func Require(t testing.TB) {
	t.Helper()
	out, err := exec.Command(Python, "-c", "import azure.storage.blob, cryptography; from azure.storage.blob._encryption import _ENCRYPTION_PROTOCOL_V2").CombinedOutput()
	if err != nil {
		testenv.Missing(t, "the Azure Storage SDK for Python (azure-storage-blob with client-side encryption)", fmt.Errorf("%v: %s", err, out),
			"make deps (apt-get install python3-azure-storage python3-azure python3-cryptography)")
	}
}

// A KEK is a key-encryption key as the SDK gets it.
type KEK struct {
	spec      string // "aes:HEX" or "rsa:PEMFILE"
	algorithm string
	keyID     string
}

// AESKEK is a 32-byte key the SDK wraps with A256KW.
func AESKEK(keyID string, key []byte) KEK {
	return KEK{spec: "aes:" + hex.EncodeToString(key), algorithm: "A256KW", keyID: keyID}
}

// RSAKEK is an RSA key the SDK wraps with algorithm ("RSA-OAEP-256", or
// "RSA-OAEP" with SHA-1; "RSA" is RSA-OAEP under the name the SDK's own test
// helper RSAKeyWrapper writes). The private key is written, for the SDK, to a file
// in the test's temporary directory.
func RSAKEK(t testing.TB, keyID, algorithm string, priv *rsa.PrivateKey) KEK {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "kek-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	return KEK{spec: "rsa:" + f.Name(), algorithm: algorithm, keyID: keyID}
}

// Client-side encryption versions the SDK writes, as Blob.Version.
const (
	V1 = "1.0" // AES-256-CBC, no integrity: the SDK's default
	V2 = "2.0" // AES-256-GCM in 4 MiB regions
)

// A Blob is one blob for the SDK to upload.
type Blob struct {
	Name      string
	Plaintext []byte
	// Version is V1 or V2, encrypted with KEK; "" uploads Plaintext as it
	// is.
	Version string
	KEK     KEK
	// Chunked makes the SDK stage blocks (64 KiB for v1 and plain blobs;
	// v2 splits its regions of 4 MiB + 28 bytes into blocks of at most
	// that) and commit a block list, rather than upload one Put Blob.
	Chunked  bool
	Metadata map[string]string
	Tags     map[string]string
}

// Upload makes the SDK upload blobs into the container of the Azurite (or
// storage account) that connectionString names, overwriting blobs of the
// same names. It fails the test if the SDK fails.
func Upload(t testing.TB, connectionString, container string, blobs []Blob) {
	t.Helper()
	dir := t.TempDir()
	type entry struct {
		Name     string            `json:"name"`
		In       string            `json:"in"`
		Version  *string           `json:"version"`
		KEK      string            `json:"kek,omitempty"`
		Alg      string            `json:"alg,omitempty"`
		KID      string            `json:"kid,omitempty"`
		Chunked  bool              `json:"chunked"`
		Metadata map[string]string `json:"metadata,omitempty"`
		Tags     map[string]string `json:"tags,omitempty"`
	}
	manifest := struct {
		ConnectionString string  `json:"connection_string"`
		Container        string  `json:"container"`
		Blobs            []entry `json:"blobs"`
	}{ConnectionString: connectionString, Container: container}
	for i, b := range blobs {
		in := filepath.Join(dir, fmt.Sprintf("plaintext-%d", i))
		if err := os.WriteFile(in, b.Plaintext, 0o600); err != nil {
			t.Fatal(err)
		}
		e := entry{Name: b.Name, In: in, Chunked: b.Chunked, Metadata: b.Metadata, Tags: b.Tags}
		if b.Version != "" {
			v := b.Version
			e.Version, e.KEK, e.Alg, e.KID = &v, b.KEK.spec, b.KEK.algorithm, b.KEK.keyID
		}
		manifest.Blobs = append(manifest.Blobs, e)
	}
	js, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, "manifest.json")
	sf := filepath.Join(dir, "cse_container.py")
	if err := os.WriteFile(mf, js, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sf, script, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(Python, sf, mf).CombinedOutput(); err != nil {
		t.Fatalf("the Python SDK failed to upload %d blobs: %v\n%s", len(blobs), err, out)
	}
}

// Algorithm is the key wrap algorithm the SDK writes in the metadata.
func (k KEK) Algorithm() string { return k.algorithm }

// File is the PEM file of an RSA key (empty for an AES key).
func (k KEK) File() string {
	if f, ok := strings.CutPrefix(k.spec, "rsa:"); ok {
		return f
	}
	return ""
}

// Spec is the key as the Python scripts take it, "aes:HEX" or
// "rsa:PEMFILE": the KeyEncryptionKey of cse_container.py, which
// envelope/csev2's testdata/interop.py imports.
func (k KEK) Spec() string { return k.spec }

// KeyID is the key id the SDK writes in the metadata.
func (k KEK) KeyID() string { return k.keyID }
