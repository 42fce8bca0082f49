package blobstore_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/region"
)

// With SealNames, the service holds neither the name, nor the metadata,
// nor the tags: the client works with logical names, and the container
// with keyed hashes and ciphertext.
func Example_sealedNames() {
	ctx := context.Background()
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		log.Fatal(err)
	}
	cc := newContainer("sealed-designs")
	client, err := blobstore.NewClient(cc, newKeyring(), guard, &blobstore.ClientOptions{SealNames: true})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Upload(ctx, "programs/x57/wing-spar-rev-C.step", strings.NewReader("ISO-10303-21;"), &blobstore.UploadOptions{
		Metadata: map[string]*string{"drawing": to.Ptr("Ti-6Al-4V spar")},
		Tags:     map[string]string{"program": "x57"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Through the client: logical names, by directory, and their metadata.
	pager := client.NewListPager(&blobstore.ListOptions{Prefix: "programs/x57/"})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, it := range page.Items {
			fmt.Println(it.Name, *it.Metadata["drawing"])
		}
	}
	// The tags still find it, by equality.
	found, err := client.NewFindBlobsByTagsPager(map[string]string{"program": "x57"}, nil).NextPage(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tagged program=x57:", found.Items[0].Name)

	// What the service holds.
	plain := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
	for plain.More() {
		page, err := plain.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			leaks := strings.Contains(*it.Name, "x57")
			for _, v := range it.Metadata {
				leaks = leaks || strings.Contains(*v, "spar")
			}
			fmt.Printf("stored: %d segments, leaks the name or metadata: %v\n", strings.Count(*it.Name, "/")+1, leaks)
		}
	}
}

func TestExampleSealedNames(t *testing.T) {
	srv := azurite.ForTest(t) // skips loudly (fails in CI) without Azurite
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", srv.ConnectionString())
	want := "programs/x57/wing-spar-rev-C.step Ti-6Al-4V spar\n" +
		"tagged program=x57: programs/x57/wing-spar-rev-C.step\n" +
		"stored: 2 segments, leaks the name or metadata: false\n" + // the container's name key, .geoseal/names.key
		"stored: 3 segments, leaks the name or metadata: false\n"
	if got := captureStdout(t, Example_sealedNames); got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}
