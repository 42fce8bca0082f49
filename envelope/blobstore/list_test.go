package blobstore

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/csev2"
)

func TestListPager(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	_, blobs := loadCSE(t)
	f.upload(t, "a/sealed", randomBytes(5000), &UploadOptions{Metadata: map[string]*string{"owner": to.Ptr("alice")}})
	f.upload(t, "a/empty", nil, nil)
	f.putRaw(t, "a/plain", []byte("press release"), map[string]*string{"owner": to.Ptr("bob")})
	f.putCSE(t, "a/legacy", blobs[2])
	f.putRaw(t, "a/v1", []byte("0123456789abcdef"), map[string]*string{csev2.MetadataKey: to.Ptr(v1EncryptionData)})
	f.putRaw(t, "a/odd", []byte("x"), map[string]*string{csev2.MetadataKey: to.Ptr(`not json`)})
	// A geoseal object whose metadata was removed lists by its metadata.
	raw, _ := f.rawBlob(t, "a/sealed")
	f.putRaw(t, "a/stripped", raw, nil)
	f.upload(t, "b/elsewhere", []byte("x"), nil)

	want := map[string]struct {
		format string
		size   int64
		owner  string
	}{
		"a/sealed":   {FormatGeoseal, 5000, "alice"},
		"a/empty":    {FormatGeoseal, 0, ""},
		"a/plain":    {FormatNotEncrypted, 13, "bob"},
		"a/legacy":   {FormatCSEv2, int64(blobs[2].Size), ""},
		"a/v1":       {FormatCSEv1, -1, ""},
		"a/odd":      {FormatUnknown, -1, ""},
		"a/stripped": {FormatNotEncrypted, int64(len(raw)), ""},
	}
	for _, pageSize := range []int32{0, 2} {
		f.wire.Reset()
		pager := f.client.NewListPager(&ListOptions{Prefix: "a/", MaxResults: pageSize})
		seen := map[string]bool{}
		pages := 0
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, it := range page.Items {
				w, ok := want[it.Name]
				if !ok {
					t.Fatalf("listed %q", it.Name)
				}
				seen[it.Name] = true
				if it.Format != w.format || it.Size != w.size || mdGet(it.Metadata, "owner") != w.owner || it.ETag == "" || it.LastModified.IsZero() {
					t.Errorf("%s: %+v, want format %s, size %d", it.Name, it, w.format, w.size)
				}
				for k := range it.Metadata {
					if isReservedMetadata(k) {
						t.Errorf("%s: reserved metadata %q listed", it.Name, k)
					}
				}
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("page size %d: listed %d blobs, want %d", pageSize, len(seen), len(want))
		}
		// From metadata alone: one request per page, no body read.
		if int(f.wire.Requests.Load()) != pages || f.wire.Received.Load() > 64<<10 {
			t.Errorf("page size %d: %d pages cost %v", pageSize, pages, f.wire)
		}
		if pageSize == 2 && pages != 4 {
			t.Errorf("7 blobs in pages of 2: %d pages", pages)
		}
	}

	// A page's NextMarker resumes the listing.
	page, err := f.client.NewListPager(&ListOptions{Prefix: "a/", MaxResults: 3}).NextPage(ctx)
	if err != nil || page.NextMarker == nil || len(page.Items) != 3 {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	rest, err := f.client.NewListPager(&ListOptions{Prefix: "a/", Marker: page.NextMarker}).NextPage(ctx)
	if err != nil || len(rest.Items) != 4 || rest.Items[0].Name <= page.Items[2].Name {
		t.Fatalf("resumed: %d items, %v", len(rest.Items), err)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first := f.upload(t, "doc", []byte("v1"), nil)
	if _, err := f.plain.NewBlobClient("doc").CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	f.upload(t, "doc", []byte("v2"), nil)

	// With a snapshot, Delete needs to be told.
	if _, err := f.client.Delete(ctx, "doc", nil); !bloberror.HasCode(err, bloberror.SnapshotsPresent) {
		t.Fatalf("Delete of a blob with snapshots: %v, want SnapshotsPresent", err)
	}
	stale := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: first.ETag}}
	if _, err := f.client.Delete(ctx, "doc", &DeleteOptions{DeleteSnapshots: true, AccessConditions: stale}); !errors.Is(err, ErrBlobChanged) {
		t.Fatalf("Delete If-Match a stale ETag: %v, want ErrBlobChanged", err)
	}
	if _, err := f.client.Delete(ctx, "doc", &DeleteOptions{DeleteSnapshots: true}); err != nil {
		t.Fatal(err)
	}
	for _, it := range listWithSnapshots(t, f.plain) {
		t.Errorf("left after Delete: %s (snapshot %v)", *it.Name, it.Snapshot)
	}
	if _, err := f.client.GetProperties(ctx, "doc", nil); !isNotFound(err) {
		t.Fatalf("GetProperties after Delete: %v", err)
	}
	if _, err := f.client.Delete(ctx, "doc", nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
	// Any blob: Delete reads nothing.
	f.putRaw(t, "plain", []byte("x"), nil)
	f.wire.Reset()
	if _, err := f.client.Delete(ctx, "plain", nil); err != nil || f.wire.Requests.Load() != 1 {
		t.Fatalf("Delete of a plain blob: %v (%v)", err, f.wire)
	}
}

// listWithSnapshots lists every blob of the container, snapshots
// included, with plain azblob.
func listWithSnapshots(t testing.TB, ctr *container.Client) []*container.BlobItem {
	t.Helper()
	var items []*container.BlobItem
	pager := ctr.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Snapshots: true}})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Segment.BlobItems...)
	}
	return items
}
