package envelope_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// exampleServer, when set, is the emulator the blob examples share:
// TestBlobExamples sets it to its azurite.ForTest server, so that the
// examples do not start one emulator each.
var exampleServer *azurite.Server

// exampleContainer returns a new container on Azurite (the Blob Storage
// emulator), starting one unless exampleServer is set, and a function that
// stops what it started. With a real account, build the container.Client
// from the account URL and an azidentity credential instead.
func exampleContainer(name string) (*container.Client, func()) {
	srv, stop := exampleServer, func() {}
	if srv == nil {
		var err error
		if srv, err = azurite.Start(context.Background(), nil); err != nil {
			log.Fatal(err)
		}
		stop = func() { srv.Close() }
	}
	// A random suffix keeps names unique on a shared or external emulator.
	name += "-" + strings.ToLower(rand.Text()[:8])
	c, err := container.NewClientWithSharedKeyCredential(srv.BlobEndpoint+"/"+name, srv.Credential(), nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Create(context.Background(), nil); err != nil {
		log.Fatal(err)
	}
	return c, stop
}

// exampleClient returns a BlobClient on ctr that wraps with kr, behind a
// region guard that allows any location (ExampleBlobClient shows a guard
// with a policy).
func exampleClient(ctr *container.Client, kr keyring.Keyring) *envelope.BlobClient {
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := envelope.NewBlobClient(ctr, kr, guard, nil)
	if err != nil {
		log.Fatal(err)
	}
	return client
}

// A BlobClient encrypts before uploading, after the region guard has
// allowed the storage account, and decrypts and verifies on download.
func ExampleBlobClient() {
	ctx := context.Background()
	ctr, stop := exampleContainer("reports")
	defer stop()

	// The export-control policy and where the account stores its data. For
	// a real account use region.ARM to look the regions up; Azurite runs
	// here, so the location is declared.
	ear, err := region.LoadPolicy("ear")
	if err != nil {
		log.Fatal(err)
	}
	guard, err := region.NewGuard(ear, region.Static("eastus", "westus"), nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := envelope.NewBlobClient(ctr, newKeyring("blob key"), guard, nil)
	if err != nil {
		log.Fatal(err)
	}

	resp, err := client.Upload(ctx, "q3/wing-loads.csv", strings.NewReader("station,load\n1,42\n2,57\n"),
		&envelope.UploadOptions{Context: keyring.Context{"program": "x-57"}})
	if err != nil {
		log.Fatal(err) // a *region.Violation if the guard refused
	}
	fmt.Println("uploaded", resp.Size, "bytes; allowed by", resp.Decision.Policy)

	r, err := client.Download(ctx, "q3/wing-loads.csv", &envelope.DownloadOptions{
		RequireContext: keyring.Context{"program": "x-57"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	plaintext, err := io.ReadAll(r) // fails, never io.EOF, if the blob was tampered with
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", plaintext)
}

// DownloadRange fetches only the chunks that hold the range.
func ExampleBlobClient_DownloadRange() {
	ctx := context.Background()
	ctr, stop := exampleContainer("logs")
	defer stop()
	client := exampleClient(ctr, newKeyring("blob key"))
	log1 := strings.Repeat("boring line\n", 100000) + "the interesting line\n"
	if _, err := client.Upload(ctx, "app.log", strings.NewReader(log1), nil); err != nil {
		log.Fatal(err)
	}
	r, err := client.DownloadRange(ctx, "app.log", int64(len(log1)-21), 20, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	line, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", line)
}

// Rewrap rotates a blob's key-encryption key by replacing its header
// block; the encrypted body stays where it is.
func ExampleBlobClient_Rewrap() {
	ctx := context.Background()
	ctr, stop := exampleContainer("archive")
	defer stop()
	oldKey, newKey := newKeyring("blob key"), newKeyring("blob key")
	client := exampleClient(ctr, oldKey)
	if _, err := client.Upload(ctx, "design.step", strings.NewReader("solid model"), nil); err != nil {
		log.Fatal(err)
	}
	// client unwraps with the old key; newKey wraps.
	resp, err := client.Rewrap(ctx, "design.step", newKey, nil)
	if err != nil {
		log.Fatal(err) // envelope.ErrBlobChanged if another writer got there first
	}
	fmt.Println("wrapped by the new key:", resp.WrappedKeys[0].KeyID == newKey.KeyID())
}

// RewrapAll rotates every blob under a prefix, several at a time.
func ExampleBlobClient_RewrapAll() {
	ctx := context.Background()
	ctr, stop := exampleContainer("fleet")
	defer stop()
	oldKey, newKey := newKeyring("blob key"), newKeyring("blob key")
	client := exampleClient(ctr, oldKey)
	for _, name := range []string{"tail/1", "tail/2", "tail/3"} {
		if _, err := client.Upload(ctx, name, strings.NewReader("telemetry "+name), nil); err != nil {
			log.Fatal(err)
		}
	}
	all, err := client.RewrapAll(ctx, newKey, &envelope.RewrapAllOptions{Prefix: "tail/", Concurrency: 8})
	if err != nil {
		log.Fatal(err) // all.Failed lists each blob that failed and why
	}
	fmt.Println(all.Rewrapped, "rewrapped,", len(all.Failed), "failed")
}
