package benchcmp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// The blob benchmarks compare envelope.BlobClient with plain azblob on the
// same Azurite, the same 256 MiB and the same transfer settings, in one
// run:
//
//	go test -run '^$' -bench 'Blob' -benchtime 3x -count 3
//
// Upload: BlobClient.Upload (encrypt, stage blocks, commit) against
// blockblob.Client.UploadStream with the same block size and concurrency.
// Download: BlobClient.Download (parallel ranged GETs of its default range
// size, decrypt and verify) against blob.Client.DownloadStream (one GET)
// read to the end. The line printed after each pair gives the geoseal/plain
// ratio; the target is at least 0.9 both ways (the encryption hides behind
// the I/O).
const (
	blobBlockSize   = 4 << 20
	blobConcurrency = 4
	blobContainer   = "bench"
)

var (
	blobRatesMu sync.Mutex
	blobRates   = map[string]float64{} // best MB/s per row
)

func recordBlob(b *testing.B, row string) {
	if b.N == 0 || b.Elapsed() <= 0 {
		return
	}
	mbps := float64(size) * float64(b.N) / 1e6 / b.Elapsed().Seconds()
	blobRatesMu.Lock()
	defer blobRatesMu.Unlock()
	blobRates[row] = max(blobRates[row], mbps)
}

func printBlobRatio(op string) {
	blobRatesMu.Lock()
	defer blobRatesMu.Unlock()
	g, p := blobRates[op+"/geoseal"], blobRates[op+"/azblob"]
	if g > 0 && p > 0 {
		fmt.Fprintf(os.Stdout, "Blob%s vs plain azblob on Azurite, %d MiB, concurrency %d (upload blocks %d MiB, geoseal download ranges %d MiB): geoseal %.0f MB/s, azblob %.0f MB/s, ratio %.2f (best so far)\n",
			op, size>>20, blobConcurrency, blobBlockSize>>20, envelope.DefaultRangeSize>>20, g, p, g/p)
	}
}

// startBlobBench starts Azurite and returns a BlobClient and a plain
// azblob client on one container.
func startBlobBench(b *testing.B) (*envelope.BlobClient, *azblob.Client) {
	b.Helper()
	srv := azurite.ForTest(b)
	plain, err := srv.NewClient(nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := plain.CreateContainer(context.Background(), blobContainer, nil); err != nil {
		b.Fatal(err)
	}
	kr, err := keyring.NewAES(bytes.Repeat([]byte{9}, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		b.Fatal(err)
	}
	client, err := envelope.NewBlobClient(plain.ServiceClient().NewContainerClient(blobContainer), kr, guard,
		&envelope.BlobClientOptions{BlockSize: blobBlockSize, Concurrency: blobConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	return client, plain
}

func BenchmarkBlobUpload(b *testing.B) {
	client, plain := startBlobBench(b)
	pt := plaintext()
	ctx := context.Background()
	b.Run("geoseal", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := client.Upload(ctx, "geoseal", bytes.NewReader(pt), nil); err != nil {
				b.Fatal(err)
			}
		}
		recordBlob(b, "Upload/geoseal")
	})
	b.Run("azblob", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			_, err := plain.UploadStream(ctx, blobContainer, "plain", bytes.NewReader(pt), &blockblob.UploadStreamOptions{
				BlockSize: blobBlockSize, Concurrency: blobConcurrency,
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		recordBlob(b, "Upload/azblob")
	})
	printBlobRatio("Upload")
}

func BenchmarkBlobDownload(b *testing.B) {
	client, plain := startBlobBench(b)
	pt := plaintext()
	ctx := context.Background()
	if _, err := client.Upload(ctx, "geoseal", bytes.NewReader(pt), nil); err != nil {
		b.Fatal(err)
	}
	if _, err := plain.UploadStream(ctx, blobContainer, "plain", bytes.NewReader(pt), &blockblob.UploadStreamOptions{
		BlockSize: blobBlockSize, Concurrency: blobConcurrency,
	}); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.Run("geoseal", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			r, err := client.Download(ctx, "geoseal", nil)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, r, buf)
			r.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
		recordBlob(b, "Download/geoseal")
	})
	b.Run("azblob", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resp, err := plain.DownloadStream(ctx, blobContainer, "plain", nil)
			if err != nil {
				b.Fatal(err)
			}
			body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
			n, err := io.CopyBuffer(io.Discard, body, buf)
			body.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
		recordBlob(b, "Download/azblob")
	})
	printBlobRatio("Download")
}
