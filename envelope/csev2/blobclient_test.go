package csev2_test

// This file is in the external test package: it checks that BlobReader plugs
// into envelope.BlobClient, without making package csev2 import envelope.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// TestBlobReaderThroughBlobClient stores a CSE v2 vector (the Python SDK's
// algorithm, RSA-OAEP-256, 16-byte regions) and reads it through an
// envelope.BlobClient, which recognizes it by its metadata and hands it to
// BlobReader: whole, by range, refused under the wrong key, and refused
// without a reader.
func TestBlobReaderThroughBlobClient(t *testing.T) {
	var vf struct {
		RSAKID  string `json:"rsa_kid"`
		Vectors []struct {
			Name, Encryptiondata, Ciphertext string
			PlaintextSize                    int `json:"plaintext_size"`
		}
	}
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	var md string
	var ct, pt []byte
	for _, v := range vf.Vectors {
		if v.Name == "2.1/RSA-OAEP-256/java/r16/50" {
			md = v.Encryptiondata
			ct, _ = hex.DecodeString(v.Ciphertext)
			pt = make([]byte, v.PlaintextSize)
			for i := range pt {
				pt[i] = byte(i*31 + i>>11)
			}
		}
	}
	if len(ct) == 0 {
		t.Fatal("vector not found")
	}
	pemBytes, err := os.ReadFile("testdata/rsa2048.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := csev2.LocalRSAKEK(vf.RSAKID, priv.(*rsa.PrivateKey), nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	srv := azurite.ForTest(t)
	client, err := srv.NewClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := client.ServiceClient().NewContainerClient("blobreader")
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("legacy").UploadBuffer(ctx, ct, &blockblob.UploadBufferOptions{
		Metadata: map[string]*string{csev2.MetadataKey: &md},
	}); err != nil {
		t.Fatal(err)
	}

	local, err := keyring.NewAES(bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(c *envelope.BlobClient, off, n int64) ([]byte, error) {
		var rc io.ReadCloser
		var err error
		if off == 0 && n == 0 {
			rc, err = c.Download(ctx, "legacy", nil)
		} else {
			rc, err = c.DownloadRange(ctx, "legacy", off, n, nil)
		}
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	bc, err := envelope.NewBlobClient(cc, local, guard, &envelope.BlobClientOptions{CSEv2: csev2.BlobReader(csev2.Keys(kek), nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := read(bc, 0, 0); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Download: %v (%d bytes)", err, len(got))
	}
	if got, err := read(bc, 20, 17); err != nil || !bytes.Equal(got, pt[20:37]) {
		t.Fatalf("DownloadRange: %v (%d bytes)", err, len(got))
	}

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrongKEK, _ := csev2.LocalRSAKEK(vf.RSAKID, other, nil)
	wrong, _ := envelope.NewBlobClient(cc, local, guard, &envelope.BlobClientOptions{CSEv2: csev2.BlobReader(csev2.Keys(wrongKEK), nil)})
	if _, err := read(wrong, 0, 0); !errors.Is(err, csev2.ErrUnwrap) {
		t.Fatalf("under the wrong key-encryption key: %v, want csev2.ErrUnwrap", err)
	}
	none, _ := envelope.NewBlobClient(cc, local, guard, nil)
	if _, err := read(none, 0, 0); !errors.Is(err, envelope.ErrCSEv2NotConfigured) {
		t.Fatalf("without a CSE v2 reader: %v, want ErrCSEv2NotConfigured", err)
	}
}
