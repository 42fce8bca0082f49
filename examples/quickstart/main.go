// Command quickstart is geoseal's first example: encrypt a file's worth of
// technical data with a local key, upload it to Blob Storage after the
// region guard has allowed the account, read back a range, and verify the
// whole.
//
// It runs against Azurite, started for the run, unless
// AZURE_STORAGE_CONNECTION_STRING names an account (then declare its region
// in GEOSEAL_EXAMPLE_PRIMARY_REGION). Run it with
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// technicalData stands in for an export-controlled file: 10 MiB, so the
// object spans several 4 MiB blocks and many 64 KiB chunks.
func technicalData() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "turbine blade cooling passage %06d: wall 0.42 mm, film holes 0.3 mm at 30 deg\n", i)
	}
	return b.Bytes()[:10<<20]
}

func run(ctx context.Context, w io.Writer) error {
	r := &exenv.Report{W: w}
	fmt.Fprintln(w, "geoseal quickstart: local key, region guard, upload, ranged download, verify")

	r.Step("Storage")
	st, err := exenv.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Line("using %s", st.Where)
	// The counter sees every request the client sends, to show what a
	// ranged download fetches.
	counter := &exenv.RequestCounter{}
	// The container client, from the account's connection string (Open
	// put Azurite's there when none was given).
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), exenv.ContainerName("quickstart"), counter.ClientOptions())
	if err != nil {
		return err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	counter.Reset() // creating the container is not part of the story
	r.Line("container %s", exenv.Short(cc.URL()))

	// A local AES-256 key-encryption key. In production it would live in
	// Key Vault or an HSM (see the keyvault and hsm examples); `geoseal
	// keygen` writes one to a file and keyring.LoadAESKeyFile reads it.
	r.Step("Key")
	key, err := keyring.GenerateAESKey()
	if err != nil {
		return err
	}
	kr, err := keyring.NewAES(key, nil)
	clear(key)
	if err != nil {
		return err
	}
	r.Line("local AES-256 key-encryption key %s", kr.KeyID())

	// The guard: ITAR, for an account declared to live in st.Primary
	// (eastus for Azurite) and not geo-replicated.
	r.Step("Region guard")
	policy, err := region.LoadPolicy("itar")
	if err != nil {
		return err
	}
	guard, err := region.NewGuard(policy, region.Static(st.Primary, st.Secondary), nil)
	if err != nil {
		return err
	}
	d, err := guard.CheckURL(ctx, cc.URL())
	if err != nil {
		return exenv.Unexpected("the guard refused %s: %v", st.Primary, err)
	}
	r.Line("policy %s: %s", d.Policy, d.Reason)

	client, err := blobstore.NewClient(cc, kr, guard, nil)
	if err != nil {
		return err
	}

	r.Step("Upload")
	data := technicalData()
	ec := keyring.Context{"project": "x-57", "eccn": "9E003"}
	up, err := client.Upload(ctx, "blade-cooling.txt", bytes.NewReader(data), &blobstore.UploadOptions{Context: ec})
	if err != nil {
		return err
	}
	r.Line("encrypted %d bytes in this process into a %d-byte object (AES-256-GCM, 64 KiB chunks)", up.Size, up.EncryptedSize)
	r.Line("stored as %s/blade-cooling.txt, context %s", exenv.Short(cc.URL()), exenv.FormatContext(ec))
	r.Line("data key wrapped for local-aes %s", kr.KeyID())

	// What the storage service holds is ciphertext: the raw blob does not
	// contain the plaintext.
	raw, err := cc.NewBlobClient("blade-cooling.txt").DownloadStream(ctx, nil)
	if err != nil {
		return err
	}
	stored, err := io.ReadAll(raw.Body)
	raw.Body.Close()
	if err != nil {
		return err
	}
	if bytes.Contains(stored, []byte("turbine blade")) {
		return exenv.Unexpected("the stored blob contains plaintext")
	}
	r.Line("the service holds %d bytes of ciphertext; \"turbine blade\" appears nowhere in them", len(stored))

	r.Step("Ranged download")
	const off, n = 6_000_000, 80
	counter.Reset()
	rd, err := client.Download(ctx, "blade-cooling.txt", &blobstore.DownloadOptions{Range: blob.HTTPRange{Offset: off, Count: n}})
	if err != nil {
		return err
	}
	part, err := io.ReadAll(rd.Body)
	rd.Body.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(part, data[off:off+n]) {
		return exenv.Unexpected("range [%d, %d) differs from the plaintext", off, off+n)
	}
	reqs, _ := counter.Counts()
	fetched := counter.Received()
	if fetched > 3*(64<<10) {
		return exenv.Unexpected("the range fetched %d bytes", fetched)
	}
	r.Line("bytes [%d, %d), authenticated:", off, off+n)
	r.Line("%q", bytes.TrimSpace(part))
	r.Line("fetched %d bytes of the %d-byte blob in %d requests: the header, the final chunk (which authenticates the size) and the chunk holding the range", fetched, up.EncryptedSize, reqs)

	r.Step("Full download and verify")
	dl, err := client.Download(ctx, "blade-cooling.txt", &blobstore.DownloadOptions{RequireContext: keyring.Context{"project": "x-57"}})
	if err != nil {
		return err
	}
	h := sha256.New()
	got, err := io.Copy(h, dl.Body)
	dl.Body.Close()
	if err != nil {
		return err
	}
	want := sha256.Sum256(data)
	if got != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		return exenv.Unexpected("the downloaded plaintext differs")
	}
	r.Line("%d bytes, SHA-256 %x: identical to what was uploaded", got, want[:8])

	r.Step("Wrong context refused")
	_, err = client.Download(ctx, "blade-cooling.txt", &blobstore.DownloadOptions{RequireContext: keyring.Context{"project": "x-58"}})
	if !errors.Is(err, envelope.ErrContextMismatch) {
		return exenv.Unexpected("a download requiring project=x-58 gave %v", err)
	}
	r.Line("requiring project=x-58 fails before any plaintext: %v", err)

	fmt.Fprintln(w, "\nquickstart: OK")
	return nil
}
