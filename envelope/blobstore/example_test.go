package blobstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// The examples use the storage account of the connection string in
// AZURE_STORAGE_CONNECTION_STRING (TestExamples points it at Azurite), and
// a local key. In production the key-encryption key lives in Key Vault or
// an HSM (keyring.NewKeyVault, keyring.NewPKCS11), and region.ARM looks up
// where the account keeps its data.

// newContainer returns a client of the container name, creating it.
func newContainer(name string) *container.Client {
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), name, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		log.Fatal(err)
	}
	return cc
}

// newKeyring returns a fresh local AES key-encryption key.
func newKeyring() *keyring.AES {
	key, err := keyring.GenerateAESKey()
	if err != nil {
		log.Fatal(err)
	}
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		log.Fatal(err)
	}
	return kr
}

// newClient returns a Client on the container name that wraps with kr,
// behind a guard that allows the account's declared region.
func newClient(name string, kr keyring.Keyring) *blobstore.Client {
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := blobstore.NewClient(newContainer(name), kr, guard, nil)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// A Client encrypts before uploading, after the region guard has allowed
// the storage account, and decrypts and verifies on download.
func Example() {
	ctx := context.Background()

	// The export-control policy and where the account stores its data. For
	// a real account use region.ARM to look the regions up.
	ear, err := region.LoadPolicy("ear")
	if err != nil {
		log.Fatal(err)
	}
	guard, err := region.NewGuard(ear, region.Static("eastus", "westus"), nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := blobstore.NewClient(newContainer("reports"), newKeyring(), guard, nil)
	if err != nil {
		log.Fatal(err)
	}

	resp, err := client.Upload(ctx, "q3/wing-loads.csv", strings.NewReader("station,load\n1,42\n2,57\n"),
		&blobstore.UploadOptions{Context: keyring.Context{"program": "x-57"}})
	if err != nil {
		log.Fatal(err) // a *region.Violation if the guard refused
	}
	fmt.Println("uploaded", resp.Size, "bytes; allowed by", resp.Decision.Policy)

	dl, err := client.Download(ctx, "q3/wing-loads.csv", &blobstore.DownloadOptions{
		RequireContext: keyring.Context{"program": "x-57"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer dl.Body.Close()
	plaintext, err := io.ReadAll(dl.Body) // fails, never io.EOF, if the blob was tampered with
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", plaintext)
}

// Open returns a Blob to read at any offset; each read fetches only the
// chunks that hold it.
func ExampleClient_Open() {
	ctx := context.Background()
	client := newClient("logs", newKeyring())
	log1 := strings.Repeat("boring line\n", 100000) + "the interesting line\n"
	if _, err := client.Upload(ctx, "app.log", strings.NewReader(log1), nil); err != nil {
		log.Fatal(err)
	}
	b, err := client.Open(ctx, "app.log", nil) // the header and final chunk are verified here
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	line := make([]byte, 20)
	if _, err := b.ReadAt(line, b.Size()-21); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes; the last line: %q\n", b.Size(), line)
}

// Download with a Range reads part of a blob.
func ExampleClient_Download() {
	ctx := context.Background()
	client := newClient("parts", newKeyring())
	if _, err := client.Upload(ctx, "bom.txt", strings.NewReader("bracket, rib, spar, skin"), nil); err != nil {
		log.Fatal(err)
	}
	dl, err := client.Download(ctx, "bom.txt", &blobstore.DownloadOptions{Range: blob.HTTPRange{Offset: 14, Count: 4}})
	if err != nil {
		log.Fatal(err)
	}
	defer dl.Body.Close()
	part, err := io.ReadAll(dl.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s of a %d-byte blob\n", part, dl.Properties.Size)
}

// ServeBlob is an http.Handler's body: Range and conditional requests as
// http.ServeContent serves files, with every byte authenticated.
func ExampleClient_ServeBlob() {
	ctx := context.Background()
	// A keyring.Cache spares a key unwrap per request (one per object).
	client := newClient("site", keyring.NewCache(newKeyring(), nil))
	if _, err := client.Upload(ctx, "manual.txt", strings.NewReader("chapter 1: assembly\nchapter 2: testing\n"), nil); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/{name...}", func(w http.ResponseWriter, r *http.Request) {
		client.ServeBlob(w, r, r.PathValue("name"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/files/manual.txt", nil)
	req.Header.Set("Range", "bytes=20-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s %s %q\n", resp.Status, resp.Header.Get("Content-Range"), body)

	resp, err = http.Get(srv.URL + "/files/missing.txt")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
}

// GetProperties authenticates a blob's header and size without reading
// its body.
func ExampleClient_GetProperties() {
	ctx := context.Background()
	kr := newKeyring()
	client := newClient("specs", kr)
	_, err := client.Upload(ctx, "wing.step", strings.NewReader("solid model"),
		&blobstore.UploadOptions{Context: keyring.Context{"eccn": "9E003"}})
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.GetProperties(ctx, "wing.step", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Format, p.Size, "bytes, eccn", p.Context["eccn"], "wrapped by", p.WrappedKeys[0].Provider, p.WrappedKeys[0].KeyID == kr.KeyID())
}

// NewListPager lists a container with each blob's format from metadata
// alone.
func ExampleClient_NewListPager() {
	ctx := context.Background()
	cc := newContainer("mixed")
	client := newClient("mixed", newKeyring())
	if _, err := client.Upload(ctx, "sealed.txt", strings.NewReader("technical data"), nil); err != nil {
		log.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("plain.txt").UploadBuffer(ctx, []byte("press release"), nil); err != nil {
		log.Fatal(err)
	}
	pager := client.NewListPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, it := range page.Items {
			fmt.Println(it.Name, it.Format, it.Size)
		}
	}
}

// Rewrap rotates a blob's key-encryption key by replacing its header
// block; the encrypted body stays where it is.
func ExampleClient_Rewrap() {
	ctx := context.Background()
	oldKey, newKey := newKeyring(), newKeyring()
	client := newClient("archive", oldKey)
	if _, err := client.Upload(ctx, "design.step", strings.NewReader("solid model"), nil); err != nil {
		log.Fatal(err)
	}
	// client unwraps with the old key; newKey wraps.
	resp, err := client.Rewrap(ctx, "design.step", newKey, nil)
	if errors.Is(err, blobstore.ErrBlobChanged) {
		log.Fatal("another writer got there first: read again and retry")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrapped by the new key:", resp.WrappedKeys[0].KeyID == newKey.KeyID())
}

// RewrapAll rotates every blob under a prefix, several at a time, and
// reports each one as it goes. Results arrive in the order the blobs are
// done (the example rotates one at a time, so they print in order).
func ExampleClient_RewrapAll() {
	ctx := context.Background()
	oldKey, newKey := newKeyring(), newKeyring()
	client := newClient("fleet", oldKey)
	for _, name := range []string{"tail/1", "tail/2", "tail/3"} {
		if _, err := client.Upload(ctx, name, strings.NewReader("telemetry "+name), nil); err != nil {
			log.Fatal(err)
		}
	}
	all, err := client.RewrapAll(ctx, newKey, &blobstore.RewrapAllOptions{
		Prefix:      "tail/",
		Concurrency: 1,
		Results: func(r blobstore.WalkResult) {
			fmt.Println(r.Blob, r.Outcome)
		},
	})
	if err != nil {
		log.Fatal(err) // the first failure; Results saw each one
	}
	fmt.Println(all.Rotated, "rotated,", all.Failed, "failed")

	// A rerun finds nothing to do, at one request per blob and no KMS call.
	again, err := client.RewrapAll(ctx, newKey, &blobstore.RewrapAllOptions{Prefix: "tail/"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.Rotated, "rotated,", again.AlreadyRotated, "already rotated")
}

// Audit tells a compliance officer what a container holds: formats, keys,
// the blobs that are not encrypted, and the region guard's decision.
func ExampleClient_Audit() {
	ctx := context.Background()
	kek := newKeyring()
	client := newClient("audited", kek)
	if _, err := client.Upload(ctx, "drawing.step", strings.NewReader("solid model"), nil); err != nil {
		log.Fatal(err)
	}
	// Someone stored a file without geoseal.
	plain := newContainer("audited").NewBlockBlobClient("notes.txt")
	if _, err := plain.UploadBuffer(ctx, []byte("tolerances in the clear"), nil); err != nil {
		log.Fatal(err)
	}
	resp, err := client.Audit(ctx, &blobstore.AuditOptions{
		Keys: []keyring.Wrapper{kek}, // the key every object should be wrapped for
		Findings: func(f blobstore.Finding) {
			fmt.Println("finding:", f.Blob, f.Kind)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Blobs, "blobs:", resp.ByFormat[blobstore.FormatGeoseal], "geoseal,", resp.ByFormat[blobstore.FormatNotEncrypted], "not encrypted")
	fmt.Println("guard allows the account:", resp.Decision.Allowed)
}

// Migrate converts, in place, the blobs the Azure SDKs encrypted
// client-side into geoseal objects. Here a CSE v2 blob written with
// package csev2 stands in for what the .NET, Java or Python SDK wrote.
func ExampleClient_Migrate() {
	ctx := context.Background()
	cc := newContainer("legacy")
	oldKEK, err := csev2.LocalAESKEK("local:old-kek", make([]byte, 32)) // in production: csev2.KeyVaultResolver
	if err != nil {
		log.Fatal(err)
	}
	_, err = csev2.Upload(ctx, cc.NewBlockBlobClient("drawing.step"), strings.NewReader("solid model"), oldKEK,
		&csev2.UploadOptions{Metadata: map[string]*string{"project": to.Ptr("x-57")}})
	if err != nil {
		log.Fatal(err)
	}

	// The client reads the old blobs with the old key-encryption key and
	// wraps the new objects' keys with its keyring.
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := blobstore.NewClient(cc, newKeyring(), guard, &blobstore.ClientOptions{CSEv2: csev2.Keys(oldKEK)})
	if err != nil {
		log.Fatal(err)
	}
	from := []string{blobstore.FormatCSEv1, blobstore.FormatCSEv2}
	dry, err := client.Migrate(ctx, &blobstore.MigrateOptions{From: from, DryRun: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dry.WouldMigrate, "to migrate")
	resp, err := client.Migrate(ctx, &blobstore.MigrateOptions{
		From: from,
		Results: func(r blobstore.WalkResult) {
			if errors.Is(r.Err, blobstore.ErrNoIntegrity) {
				fmt.Println("warning:", r.Blob, "was CSE v1: nothing authenticated it")
			}
			fmt.Println(r.Blob, r.Format, r.Outcome)
		},
	})
	if err != nil {
		log.Fatal(err) // the first failure; the blob is as it was
	}
	fmt.Println(resp.Migrated, "migrated,", resp.Failed, "failed")
	props, err := client.GetProperties(ctx, "drawing.step", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("now", props.Format, "with", len(props.Metadata), "metadata entry")
}
