package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// cseV1Vector is a CSE v1 blob the Python SDK wrote
// (envelope/csev2/testdata/v1_vectors.json), with its key-encryption key as
// the flags take it.
type cseV1Vector struct {
	name, wrap, encryptionData, keyID string
	cek, ciphertext, plaintext        []byte
}

func csev1Vector(t *testing.T, name string) cseV1Vector {
	t.Helper()
	var vf struct {
		AESKID, RSAKID string `json:"-"`
		Vectors        []struct {
			Name, Wrap, CEK, Ciphertext, Encryptiondata string
			PlaintextSize                               int    `json:"plaintext_size"`
			CiphertextSHA256                            string `json:"ciphertext_sha256"`
		}
	}
	if err := json.Unmarshal(readFile(t, "../../envelope/csev2/testdata/v1_vectors.json"), &vf); err != nil {
		t.Fatal(err)
	}
	for _, v := range vf.Vectors {
		if v.Name != name {
			continue
		}
		var ed struct {
			WrappedContentKey   struct{ KeyId string }
			ContentEncryptionIV []byte
		}
		if err := json.Unmarshal([]byte(v.Encryptiondata), &ed); err != nil {
			t.Fatal(err)
		}
		cek, _ := hex.DecodeString(v.CEK)
		pt := make([]byte, v.PlaintextSize)
		for i := range pt {
			pt[i] = byte(i*31 + i>>11)
		}
		ct, _ := hex.DecodeString(v.Ciphertext)
		if len(ct) == 0 {
			// Rebuilt from the recorded key and IV, and checked.
			block, _ := aes.NewCipher(cek)
			pad := aes.BlockSize - len(pt)%aes.BlockSize
			ct = append(bytes.Clone(pt), bytes.Repeat([]byte{byte(pad)}, pad)...)
			cipher.NewCBCEncrypter(block, ed.ContentEncryptionIV).CryptBlocks(ct, ct)
			if h := sha256.Sum256(ct); hex.EncodeToString(h[:]) != v.CiphertextSHA256 {
				t.Fatalf("%s: rebuilt ciphertext differs from the SDK's", name)
			}
		}
		return cseV1Vector{v.Name, v.Wrap, v.Encryptiondata, ed.WrappedContentKey.KeyId, cek, ct, pt}
	}
	t.Fatalf("no v1 vector %s", name)
	return cseV1Vector{}
}

// TestBinaryCSEv1 reads blobs the Python SDK wrote in CSE v1 with
// geoseal decrypt --format azure-cse-v1: whole and by range, with a local AES
// key, an RSA private key, and (in TestKeyVaultCSEv1) a Key Vault key; says
// on stderr that v1 has no integrity; fails a broken padding with exit 1 and
// no output; and refuses v1 metadata under --format azure-cse-v2 and the
// other way round. In FIPS 140-only mode the local A256KW and RSA-OAEP (SHA-1)
// blobs are refused, the RSA-OAEP-256 one read.
func TestBinaryCSEv1(t *testing.T) {
	dir := t.TempDir()
	var vf struct {
		AESKEK string `json:"aes_kek"`
	}
	if err := json.Unmarshal(readFile(t, "../../envelope/csev2/testdata/v1_vectors.json"), &vf); err != nil {
		t.Fatal(err)
	}
	aesKey, _ := hex.DecodeString(vf.AESKEK)
	kek := writeFile(t, filepath.Join(dir, "kek"), aesKey)
	// The vectors' RSA key, private (0600) as the key file flags require.
	rsaPEM := writeFile(t, filepath.Join(dir, "rsa.pem"), readFile(t, "../../envelope/csev2/testdata/rsa2048.pem"))
	for _, name := range []string{"1.0/A256KW/single/17", "1.0/A256KW/chunked/4194305", "1.0/RSA-OAEP/chunked/100000", "1.0/RSA-OAEP-256/chunked/100000", "1.0/RSA/single/17"} {
		t.Run(name, func(t *testing.T) {
			v := csev1Vector(t, name)
			keyFlags := []string{"--rsa-private", rsaPEM, "--key-id", v.keyID}
			if v.wrap == "A256KW" {
				keyFlags = []string{"--key-file", kek, "--key-id", v.keyID}
			}
			blob := writeFile(t, filepath.Join(dir, "blob"), v.ciphertext)
			md := writeFile(t, filepath.Join(dir, "md.json"), []byte(v.encryptionData))
			out := filepath.Join(dir, "out")
			os.Remove(out)
			args := append([]string{"decrypt", "--format", "azure-cse-v1", "--metadata", md, "--in", blob, "--out", out}, keyFlags...)

			r := geoseal(t, nil, nil, args...)
			if fips140.Enforced() && v.wrap != "RSA-OAEP-256" {
				r.want(t, 1)
				if !strings.Contains(r.stderr, "not approved") {
					t.Errorf("%s in FIPS 140-only mode: stderr %q", v.wrap, r.stderr)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Error("a refused decrypt left its output")
				}
				return
			}
			r.want(t, 0)
			if !bytes.Equal(readFile(t, out), v.plaintext) {
				t.Fatal("plaintext differs")
			}
			if !strings.Contains(r.stderr, "no integrity protection") || !strings.Contains(r.stderr, "not authenticated") {
				t.Errorf("no CSE v1 warning on stderr: %q", r.stderr)
			}
			n := len(v.plaintext)
			for _, rg := range [][2]int{{0, 5}, {15, 3}, {n - 20, 20}, {n / 2, n}} {
				if rg[0] < 0 {
					continue
				}
				geoseal(t, nil, nil, append(args, "--quiet", "--offset", strconv.Itoa(rg[0]), "--length", strconv.Itoa(rg[1]))...).want(t, 0)
				if want := v.plaintext[rg[0]:min(n, rg[0]+rg[1])]; !bytes.Equal(readFile(t, out), want) {
					t.Fatalf("range %v differs", rg)
				}
			}

			// A broken padding: exit 1, no output.
			bad := bytes.Clone(v.ciphertext)
			bad[len(bad)-aes.BlockSize-1] ^= byte(aes.BlockSize - n%aes.BlockSize)
			writeFile(t, blob, bad)
			os.Remove(out)
			r = geoseal(t, nil, nil, args...).want(t, 1)
			if !strings.Contains(r.stderr, "CSE v1 ciphertext does not decrypt") {
				t.Errorf("stderr: %q", r.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Error("a failed decrypt left its output")
			}

			// The format must match the metadata.
			args[2] = "azure-cse-v2"
			r = geoseal(t, nil, nil, args...).want(t, 1)
			if !strings.Contains(r.stderr, "--format azure-cse-v1") {
				t.Errorf("v1 metadata under --format azure-cse-v2: %q", r.stderr)
			}
		})
	}

	v2 := csev2Vector(t, "2.1/A256KW/java/r100/307")
	md := writeFile(t, filepath.Join(dir, "v2.json"), []byte(v2.encryptionData))
	blob := writeFile(t, filepath.Join(dir, "v2.blob"), v2.ciphertext)
	r := geoseal(t, nil, nil, "decrypt", "--format", "azure-cse-v1", "--metadata", md, "--in", blob, "--out", filepath.Join(dir, "v2.out"), "--key-file", kek, "--key-id", v2.keyID).want(t, 1)
	if !strings.Contains(r.stderr, "not CSE v1") {
		t.Errorf("v2 metadata under --format azure-cse-v1: %q", r.stderr)
	}
}

// TestKeyVaultCSEv1 reads a CSE v1 blob whose content key a Key Vault key
// wraps (the kvtest vault, through the real azkeys client) with
// --format azure-cse-v1 --keyvault KEY-URL.
func TestKeyVaultCSEv1(t *testing.T) {
	kv := kvtest.NewServer(t)
	kid := kv.CreateRSAKey("cse-v1", 2048)
	e := newTestEnv(t)
	useKeyVaultTestServer(e, kv)
	runCLI := e.run
	v := csev1Vector(t, "1.0/RSA-OAEP-256/chunked/100000")

	// The same body and IV, the key wrapped by the vault instead.
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	alg := azkeys.EncryptionAlgorithmRSAOAEP256
	id := azkeys.ID(kid)
	w, err := client.WrapKey(context.Background(), id.Name(), id.Version(), azkeys.KeyOperationParameters{Algorithm: &alg, Value: v.cek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ed map[string]any
	if err := json.Unmarshal([]byte(v.encryptionData), &ed); err != nil {
		t.Fatal(err)
	}
	ed["WrappedContentKey"] = map[string]string{"KeyId": kid, "EncryptedKey": base64.StdEncoding.EncodeToString(w.Result), "Algorithm": "RSA-OAEP-256"}
	js, _ := json.Marshal(ed)

	dir := t.TempDir()
	md := writeFile(t, filepath.Join(dir, "md.json"), js)
	blob := writeFile(t, filepath.Join(dir, "blob"), v.ciphertext)
	out := filepath.Join(dir, "out")
	code, _, stderr := runCLI(t, "decrypt", "--format", "azure-cse-v1", "--metadata", md, "--in", blob, "--out", out, "--keyvault", kv.KeyURL("cse-v1"))
	if code != 0 {
		t.Fatal(stderr)
	}
	if !bytes.Equal(readFile(t, out), v.plaintext) {
		t.Fatal("plaintext differs")
	}
	if !strings.Contains(stderr, "no integrity protection") {
		t.Errorf("no CSE v1 warning: %q", stderr)
	}
}
