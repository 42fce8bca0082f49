package blobstore

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/keyring"
)

var updateCSE = flag.Bool("update-csev2", false, "rewrite testdata/csev2.json with CSE v2 blobs written by package csev2")

// The CSE v2 blobs the tests read are stored in testdata/csev2.json, written
// by package csev2 (go test -run TestCSEv2Testdata -update-csev2), because
// writing CSE v2 is refused under GODEBUG=fips140=only while reading it is
// not. Their key-encryption key is an RSA-2048 test key (RSA-OAEP-256
// unwraps in FIPS 140-only mode; local A256KW does not).
const cseTestdata = "testdata/csev2.json"

type cseVectors struct {
	KeyID      string
	PrivateKey string // PKCS #8 PEM, a test key
	Blobs      []cseBlob
}

// cseBlob is a stored CSE v2 blob: its body and "encryptiondata" metadata.
// Its plaintext is csePlaintext(Size).
type cseBlob struct {
	Size           int
	EncryptionData string
	Ciphertext     []byte
}

// csePlaintext is the plaintext of the CSE v2 test blobs.
func csePlaintext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// TestCSEv2Testdata rewrites the test blobs with -update-csev2, and
// otherwise checks that csev2 reads them back.
func TestCSEv2Testdata(t *testing.T) {
	if !*updateCSE {
		kek, blobs := loadCSE(t)
		for _, b := range blobs {
			ed, err := csev2.ParseEncryptionData([]byte(b.EncryptionData))
			if err != nil {
				t.Fatal(err)
			}
			r, err := csev2.NewReader(context.Background(), bytes.NewReader(b.Ciphertext), ed, csev2.Keys(kek), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, csePlaintext(b.Size)) {
				t.Fatalf("the %d-byte test blob does not decrypt: %v", b.Size, err)
			}
		}
		return
	}
	if fips140.Enforced() {
		t.Fatal("writing CSE v2 is refused in FIPS 140-only mode")
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	v := cseVectors{KeyID: "local:blobstore-test-rsa", PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
	kek, err := csev2.LocalRSAKEK(v.KeyID, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 5000, 100000} {
		var ct bytes.Buffer
		w, err := csev2.NewWriter(context.Background(), &ct, kek, &csev2.WriterOptions{Protocol: csev2.Protocol21, RegionLength: 4096})
		if err != nil {
			t.Fatal(err)
		}
		ed := w.EncryptionData()
		if _, err := w.Write(csePlaintext(n)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		js, err := ed.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		v.Blobs = append(v.Blobs, cseBlob{Size: n, EncryptionData: string(js), Ciphertext: ct.Bytes()})
	}
	js, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(cseTestdata), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cseTestdata, append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadCSE returns the key-encryption key and blobs of testdata/csev2.json.
func loadCSE(t testing.TB) (csev2.KeyEncryptionKey, []cseBlob) {
	t.Helper()
	js, err := os.ReadFile(cseTestdata)
	if err != nil {
		t.Fatal(err)
	}
	var v cseVectors
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(v.PrivateKey))
	if blk == nil {
		t.Fatal("no PEM key in " + cseTestdata)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := csev2.LocalRSAKEK(v.KeyID, k.(*rsa.PrivateKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	return kek, v.Blobs
}

// putCSE stores a CSE v2 test blob as name, as an SDK would have.
func (f *fixture) putCSE(t testing.TB, name string, b cseBlob) {
	t.Helper()
	f.putRaw(t, name, b.Ciphertext, map[string]*string{csev2.MetadataKey: to.Ptr(b.EncryptionData)})
}

// countingResolver counts the key lookups of CSE v2 reads: a refused read
// must not reach the key-encryption key.
type countingResolver struct {
	csev2.KeyResolver
	n atomic.Int64
}

func (c *countingResolver) Resolve(ctx context.Context, keyID string) (csev2.KeyEncryptionKey, error) {
	c.n.Add(1)
	return c.KeyResolver.Resolve(ctx, keyID)
}

func TestCSEv2Reads(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	kek, blobs := loadCSE(t)
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: csev2.Keys(kek)})
	for _, b := range blobs {
		t.Run(fmt.Sprint(b.Size), func(t *testing.T) {
			name := fmt.Sprintf("legacy-%d", b.Size)
			f.putCSE(t, name, b)
			pt := csePlaintext(b.Size)

			// A whole download: one HEAD, one GET of the blob, nothing more.
			f.wire.Reset()
			got, err := download(c, name, nil)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Download: %v (%d bytes)", err, len(got))
			}
			if r, limit := f.wire.Received.Load(), int64(len(b.Ciphertext))*101/100; r > limit {
				t.Errorf("a whole download fetched %d bytes of a %d-byte blob, more than 1.01× (%v)", r, len(b.Ciphertext), f.wire)
			}
			if q := f.wire.Requests.Load(); q > 2 {
				t.Errorf("a whole download made %d requests (%v)", q, f.wire)
			}

			for _, r := range [][2]int64{{0, 1}, {4095, 2}, {int64(b.Size) / 3, 1000}, {int64(b.Size), 0}, {int64(b.Size) + 9, 1}} {
				got, err := downloadRange(c, name, r[0], r[1], nil)
				lo := min(r[0], int64(b.Size))
				hi := min(lo+r[1], int64(b.Size))
				if r[1] == 0 {
					hi = int64(b.Size)
				}
				if err != nil || !bytes.Equal(got, pt[lo:hi]) {
					t.Fatalf("range %v: %v (%d bytes)", r, err, len(got))
				}
			}

			p, err := c.GetProperties(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != FormatCSEv2 || p.Size != int64(b.Size) || p.EncryptedSize != int64(len(b.Ciphertext)) ||
				len(p.WrappedKeys) != 1 || p.WrappedKeys[0].KeyID != kek.KeyID() || p.Context != nil {
				t.Fatalf("properties: %+v", p)
			}

			bl, err := c.Open(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer bl.Close()
			if bl.Size() != int64(b.Size) {
				t.Fatalf("Size %d", bl.Size())
			}
			if b.Size > 10 {
				buf := make([]byte, 7)
				if _, err := bl.ReadAt(buf, int64(b.Size)-8); err != nil || !bytes.Equal(buf, pt[b.Size-8:b.Size-1]) {
					t.Fatalf("ReadAt: %v", err)
				}
				if _, err := bl.Seek(3, io.SeekStart); err != nil {
					t.Fatal(err)
				}
			}
			rest, err := io.ReadAll(bl)
			if want := pt[min(3, b.Size):]; b.Size <= 10 {
				want = pt
				if err != nil || !bytes.Equal(rest, want) {
					t.Fatalf("Read: %v", err)
				}
			} else if err != nil || !bytes.Equal(rest, want) {
				t.Fatalf("Read after Seek: %v", err)
			}
		})
	}

	// The wrong key-encryption key fails; no resolver is a typed refusal.
	other, err := csev2.LocalRSAKEK(kek.KeyID(), mustRSAKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := f.newClient(t, f.kr, &ClientOptions{CSEv2: csev2.Keys(other)})
	if _, err := download(wrong, "legacy-5000", nil); err == nil {
		t.Fatal("a CSE v2 blob decrypted under the wrong key-encryption key")
	}
	if _, err := wrong.Open(ctx, "legacy-5000", nil); err == nil {
		t.Fatal("Open of a CSE v2 blob under the wrong key-encryption key succeeded")
	}
	for name, op := range readOps(f.client, "legacy-5000", nil) {
		if err := op(); !errors.Is(err, ErrCSEv2NotConfigured) {
			t.Errorf("%s without a CSE v2 resolver: %v, want ErrCSEv2NotConfigured", name, err)
		}
	}

	// A geoseal object is never diverted by a forged "encryptiondata".
	gpt := []byte("geoseal object")
	f.upload(t, "mine", gpt, nil)
	props, _ := f.plain.NewBlobClient("mine").GetProperties(ctx, nil)
	props.Metadata[csev2.MetadataKey] = to.Ptr(blobs[1].EncryptionData)
	if _, err := f.plain.NewBlobClient("mine").SetMetadata(ctx, props.Metadata, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := download(c, "mine", nil); err != nil || !bytes.Equal(got, gpt) {
		t.Fatalf("geoseal blob with a forged encryptiondata: %q, %v", got, err)
	}
}

func mustRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readOps are the read paths of a Client on one blob, each returning its
// error.
func readOps(c *Client, name string, require keyring.Context) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"Download": func() error {
			_, err := download(c, name, &DownloadOptions{RequireContext: require})
			return err
		},
		"Download (range)": func() error {
			_, err := downloadRange(c, name, 2, 5, &DownloadOptions{RequireContext: require})
			return err
		},
		"Open": func() error {
			b, err := c.Open(ctx, name, &OpenOptions{RequireContext: require})
			if err == nil {
				b.Close()
			}
			return err
		},
		"GetProperties": func() error {
			_, err := c.GetProperties(ctx, name, &GetPropertiesOptions{RequireContext: require})
			return err
		},
	}
}

// TestRequireContextRefusesCSEv2 is the regression test of issue 11 item 2:
// with CSE v2 reading configured, a read that requires context pairs
// returned a CSE v2 blob (which has no context) as if it matched, so
// anyone able to write the container could swap a legacy blob in for the
// object the reader asked for. Every read path must refuse it with
// envelope.ErrContextMismatch, before the key-encryption key is asked.
func TestRequireContextRefusesCSEv2(t *testing.T) {
	f := newFixture(t, nil)
	kek, blobs := loadCSE(t)
	f.putCSE(t, "part.step", blobs[2])
	keys := &countingResolver{KeyResolver: csev2.Keys(kek)}
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: keys})
	require := keyring.Context{"project": "x-57"}
	for name, op := range readOps(c, "part.step", require) {
		f.wire.Reset()
		if err := op(); !errors.Is(err, envelope.ErrContextMismatch) {
			t.Errorf("%s requiring a context returned a CSE v2 blob: %v", name, err)
		}
		if f.wire.Gets.Load() != 0 {
			t.Errorf("%s fetched the body of a refused blob: %v", name, f.wire)
		}
	}
	// The client-wide requirement applies to every read, ServeBlob too.
	serving := f.newClient(t, f.kr, &ClientOptions{CSEv2: keys, RequireContext: require})
	for name, op := range readOps(serving, "part.step", nil) {
		if err := op(); !errors.Is(err, envelope.ErrContextMismatch) {
			t.Errorf("%s under ClientOptions.RequireContext returned a CSE v2 blob: %v", name, err)
		}
	}
	rec := httptest.NewRecorder()
	serving.ServeBlob(rec, httptest.NewRequest(http.MethodGet, "/part.step", nil), "part.step")
	if rec.Code != http.StatusForbidden || bytes.Contains(rec.Body.Bytes(), csePlaintext(10)) {
		t.Errorf("ServeBlob under ClientOptions.RequireContext: status %d, %d bytes of body", rec.Code, rec.Body.Len())
	}
	if n := keys.n.Load(); n != 0 {
		t.Errorf("refused reads asked for the key-encryption key %d times", n)
	}
	// Without CSE v2 reading configured, a read that requires context is
	// refused the same way (it is the context that fails).
	for name, op := range readOps(f.client, "part.step", require) {
		if err := op(); !errors.Is(err, envelope.ErrContextMismatch) {
			t.Errorf("%s requiring a context, CSE v2 not configured: %v", name, err)
		}
	}
	// Without a requirement the same client reads the blob: the refusal is
	// the context's, not a broken CSE v2 path.
	if got, err := download(c, "part.step", nil); err != nil || !bytes.Equal(got, csePlaintext(blobs[2].Size)) {
		t.Fatalf("the CSE v2 blob does not read without a requirement: %v", err)
	}
	// And a geoseal object with the context passes the client-wide check.
	f.upload(t, "mine", []byte("x"), &UploadOptions{Context: require})
	if got, err := download(serving, "mine", nil); err != nil || string(got) != "x" {
		t.Fatalf("geoseal object with the required context: %q, %v", got, err)
	}
}

// TestEmptyCSEv2 downloads an empty CSE v2 blob as empty: it failed as
// "not a geoseal object: is empty" when the client's first GET was ranged.
func TestEmptyCSEv2(t *testing.T) {
	f := newFixture(t, nil)
	kek, blobs := loadCSE(t)
	if blobs[0].Size != 0 || len(blobs[0].Ciphertext) != 0 {
		t.Fatalf("the first test blob is not empty: %d bytes", blobs[0].Size)
	}
	f.putCSE(t, "empty", blobs[0])
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: csev2.Keys(kek)})
	got, err := download(c, "empty", nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty CSE v2 blob: %q, %v", got, err)
	}
	// Its key is still checked: an empty blob is no way around it.
	other, _ := csev2.LocalRSAKEK("local:other", mustRSAKey(t), nil)
	if _, err := download(f.newClient(t, f.kr, &ClientOptions{CSEv2: csev2.Keys(other)}), "empty", nil); err == nil {
		t.Fatal("an empty CSE v2 blob downloaded without its key")
	}
	if _, err := f.plain.NewBlobClient("missing").GetProperties(context.Background(), nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatal(err)
	}
}
