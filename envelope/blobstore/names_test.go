package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/internal/names"
	"github.com/geoseal/geoseal/keyring"
)

// The example: a name, metadata and tags that are technical data.
const (
	sealedName = "programs/x57/wing-spar-rev-C.step"
	sealedDir  = "programs/x57/"
)

func sealedMetadata() map[string]*string {
	return map[string]*string{"drawing": to.Ptr("Ti-6Al-4V spar"), "author": to.Ptr("j.doe wing team")}
}

var sealedTags = map[string]string{"program": "x57", "part": "wing-spar", "retention": "7y"}

// storedStrings returns every string the service holds for the container
// that a plain azblob client can read: blob names, metadata names and
// values, index tag names and values, and HTTP headers.
func (f *fixture) storedStrings(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	pager := f.plain.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Metadata: true, Tags: true},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			name := *it.Name
			out = append(out, name)
			for k, v := range it.Metadata {
				out = append(out, k, *v)
			}
			if it.BlobTags != nil {
				for _, tag := range it.BlobTags.BlobTagSet {
					out = append(out, *tag.Key, *tag.Value)
				}
			}
			b := f.plain.NewBlobClient(name)
			tags, err := b.GetTags(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tags.BlobTagSet {
				out = append(out, *tag.Key, *tag.Value)
			}
			p, err := b.GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []*string{p.ContentType, p.ContentEncoding, p.ContentLanguage, p.ContentDisposition, p.CacheControl} {
				if h != nil {
					out = append(out, *h)
				}
			}
			for k, v := range p.Metadata {
				out = append(out, k, *v)
			}
		}
	}
	return out
}

// TestSealedNamesLeakNothing is the demonstration: a blob whose
// name, metadata and tags are technical data, uploaded under SealNames,
// leaves none of it in anything the service stores, and reads back whole
// through geoseal.
func TestSealedNamesLeakNothing(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true, PublicTagNames: []string{"retention"}})
	ctx := context.Background()
	plaintext := []byte("ISO-10303-21; wing spar, revision C, program x57")
	resp := f.upload(t, sealedName, plaintext, &UploadOptions{
		Metadata:    sealedMetadata(),
		Tags:        sealedTags,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream"), BlobCacheControl: to.Ptr("private, max-age=3600")},
	})
	f.upload(t, "programs/x57/wing-rib-rev-A.step", []byte("rib"), nil)
	f.upload(t, "programs/other/readme", []byte("not x57"), nil)

	stored := f.storedStrings(t)
	forbidden := []string{"x57", "wing", "spar", "programs", "drawing", "author", "program", "part", ".step"}
	for _, v := range sealedMetadata() {
		forbidden = append(forbidden, *v)
	}
	for k, v := range sealedTags {
		if k != "retention" {
			forbidden = append(forbidden, k)
		}
		forbidden = append(forbidden, v)
	}
	for _, s := range stored {
		for _, word := range forbidden {
			if strings.Contains(s, word) {
				t.Errorf("the service stores %q, which contains %q", s, word)
			}
		}
	}
	if !slices.Contains(stored, resp.StoredName) || !slices.Contains(stored, nameKeyBlob) || !slices.Contains(stored, "retention") {
		t.Fatalf("the plain listing %q lacks the blob %q, the name key or the public tag name", stored, resp.StoredName)
	}
	t.Logf("stored as %s", resp.StoredName)

	// Through geoseal: the logical name lists under its directory, with
	// its metadata, downloads, and its properties read back.
	listed := listItems(t, f.client, sealedDir)
	var got []string
	for _, it := range listed {
		got = append(got, it.Name)
		if it.SealErr != nil || !it.NameSealed || it.Format != FormatGeoseal {
			t.Errorf("listed %+v", it)
		}
	}
	slices.Sort(got)
	if want := []string{"programs/x57/wing-rib-rev-A.step", sealedName}; !slices.Equal(got, want) {
		t.Fatalf("listed %q under %q, want %q", got, sealedDir, want)
	}
	for _, it := range listed {
		if it.Name == sealedName && (it.StoredName != resp.StoredName || it.Size != int64(len(plaintext)) || !sameMetadata(it.Metadata, sealedMetadata())) {
			t.Errorf("listed %+v, want stored name %s, size %d and the metadata", it, resp.StoredName, len(plaintext))
		}
	}
	back, err := download(f.client, sealedName, nil)
	if err != nil || !bytes.Equal(back, plaintext) {
		t.Fatalf("Download = %q, %v", back, err)
	}
	props, err := f.client.GetProperties(ctx, sealedName, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.Name != sealedName || props.StoredName != resp.StoredName || !props.NameSealed || !sameMetadata(props.Metadata, sealedMetadata()) {
		t.Fatalf("GetProperties = %+v", props)
	}
	// The tags find it by equality, through their tokens.
	found := findByTags(t, f.client, map[string]string{"program": "x57", "retention": "7y"})
	if len(found) != 1 || found[0].Name != sealedName {
		t.Fatalf("found %+v by its tags, want %s", found, sealedName)
	}
	if found := findByTags(t, f.client, map[string]string{"program": "x58"}); len(found) != 0 {
		t.Fatalf("found %+v by a value no blob has", found)
	}
}

func sameMetadata(got, want map[string]*string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g == nil || *g != *v {
			return false
		}
	}
	return true
}

func findByTags(t *testing.T, c *Client, tags map[string]string) []ListItem {
	t.Helper()
	var out []ListItem
	pager := c.NewFindBlobsByTagsPager(tags, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
	}
	return out
}

// TestSealedNameMoved moves sealed entries and bodies between blobs with
// plain azblob: every combination but the original is refused.
func TestSealedNameMoved(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	a := f.upload(t, "programs/x57/a.step", randomBytes(3000), &UploadOptions{Metadata: sealedMetadata()})
	b := f.upload(t, "programs/x57/b.step", randomBytes(3000), &UploadOptions{Metadata: map[string]*string{"rev": to.Ptr("B")}})
	rawA, mdA := f.rawBlob(t, a.StoredName)
	rawB, mdB := f.rawBlob(t, b.StoredName)
	without := func(md map[string]*string, k string) map[string]*string {
		out := map[string]*string{}
		for name, v := range md {
			if !strings.EqualFold(name, k) {
				out[name] = v
			}
		}
		return out
	}
	with := func(md map[string]*string, k string, from map[string]*string) map[string]*string {
		out := without(md, k)
		out[k] = to.Ptr(mdGet(from, k))
		return out
	}
	tests := []struct {
		name string
		data []byte
		md   map[string]*string
		// listed is what a listing, which opens the sealed entries but
		// reads no header, makes of it: refused, or a blob without a
		// sealed name, or (a body swapped under them) not yet noticed.
		listed string
	}{
		{"b's blob copied onto a", rawB, mdB, "refused"},
		{"b's sealed name copied onto a", rawA, with(mdA, metaSealedName, mdB), "refused"},
		{"b's sealed metadata copied onto a", rawA, with(mdA, metaSealedMetadata, mdB), "refused"},
		{"b's body under a's metadata", rawB, mdA, "opened"},
		{"no sealed name", rawA, without(mdA, metaSealedName), "plain"},
		{"no sealed metadata", rawA, without(mdA, metaSealedMetadata), "refused"},
		{"no metadata at all", rawA, nil, "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.putRaw(t, a.StoredName, tt.data, tt.md)
			_, err := download(f.client, "programs/x57/a.step", nil)
			if !errors.Is(err, ErrNameTampered) {
				t.Fatalf("Download = %v, want ErrNameTampered", err)
			}
			if _, err := f.client.GetProperties(ctx, "programs/x57/a.step", nil); !errors.Is(err, ErrNameTampered) {
				t.Fatalf("GetProperties = %v, want ErrNameTampered", err)
			}
			it := listOne(t, f.client, a.StoredName)
			var got string
			switch {
			case errors.Is(it.SealErr, ErrNameTampered) && it.Name == a.StoredName && it.Metadata == nil:
				got = "refused"
			case it.SealErr == nil && !it.NameSealed && it.Name == a.StoredName:
				got = "plain"
			case it.SealErr == nil && it.Name == "programs/x57/a.step":
				got = "opened"
			}
			if got != tt.listed {
				t.Fatalf("listed %+v (%q), want %q", it, got, tt.listed)
			}
		})
	}
	// Put back, a opens again.
	f.putRaw(t, a.StoredName, rawA, mdA)
	if _, err := download(f.client, "programs/x57/a.step", nil); err != nil {
		t.Fatal(err)
	}
}

// listItems lists what c lists under prefix.
func listItems(t *testing.T, c *Client, prefix string) []ListItem {
	t.Helper()
	var out []ListItem
	pager := c.NewListPager(&ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
	}
	return out
}

// listOne lists the container and returns the item stored as stored.
func listOne(t *testing.T, c *Client, stored string) ListItem {
	t.Helper()
	for _, it := range listItems(t, c, "") {
		if it.StoredName == stored {
			return it
		}
	}
	t.Fatalf("%s not listed", stored)
	return ListItem{}
}

// TestSealedNamesWrongKey reads a sealed container with a keyring that
// cannot unwrap its name key, and with a name key that was replaced.
func TestSealedNamesWrongKey(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	f.upload(t, sealedName, []byte("data"), nil)

	other := f.newClient(t, formattest.NewAES(t), &ClientOptions{SealNames: true})
	var nm *keyring.NoMatchError
	if _, err := other.Open(ctx, sealedName, nil); !errors.As(err, &nm) {
		t.Fatalf("Open with another keyring = %v, want a *keyring.NoMatchError", err)
	}
	if _, err := other.NewListPager(nil).NextPage(ctx); !errors.As(err, &nm) {
		t.Fatalf("listing with another keyring = %v, want a *keyring.NoMatchError", err)
	}
	// An Upload must not take a key it cannot read for a missing one.
	f.wire.Reset()
	if _, err := other.Upload(ctx, "programs/x57/new", strings.NewReader("x"), nil); !errors.As(err, &nm) {
		t.Fatalf("Upload with another keyring = %v, want a *keyring.NoMatchError", err)
	}
	if n := f.wire.Puts.Load(); n != 0 {
		t.Fatalf("the refused Upload sent %d PUTs", n)
	}

	// The name key deleted and made again (by a writer who can): the old
	// names no longer open, with a typed error, and never as another name.
	if _, err := f.plain.NewBlobClient(nameKeyBlob).Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	fresh := f.newClient(t, f.kr, &ClientOptions{SealNames: true})
	fresh.Upload(ctx, "programs/x57/after", strings.NewReader("x"), nil)
	var sealErrs, opened int
	for _, it := range listItems(t, fresh, "") {
		switch {
		case errors.Is(it.SealErr, ErrNameTampered):
			sealErrs++
		case it.Name == "programs/x57/after":
			opened++
		}
	}
	if sealErrs != 1 || opened != 1 {
		t.Fatalf("after the name key changed: %d blobs refused, %d opened; want 1 and 1", sealErrs, opened)
	}
	if _, err := fresh.Open(ctx, sealedName, nil); !isNotFound(err) {
		t.Fatalf("Open of a name sealed under the old key = %v, want not found (it maps elsewhere now)", err)
	}
}

// TestSealedNamesRefusedBeforeAnyRequest checks what fails before the
// network: names that cannot be sealed, headers that describe the
// content, metadata and tags that cannot be stored.
func TestSealedNamesRefusedBeforeAnyRequest(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	tooDeep := strings.Repeat("d/", names.MaxSegments) + "f"
	tests := []struct {
		name    string
		blob    string
		opts    *UploadOptions
		wantErr error
	}{
		{"too many segments", tooDeep, nil, ErrInvalidName},
		{"too long", strings.Repeat("n", 1025), nil, ErrInvalidName},
		{"empty segment", "programs//x57", nil, ErrInvalidName},
		{"trailing slash", "programs/x57/", nil, ErrInvalidName},
		{"Content-Disposition", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentDisposition: to.Ptr(`attachment; filename="wing-spar-rev-C.step"`)}}, ErrClearHTTPHeader},
		{"Content-Type", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("model/step")}}, ErrClearHTTPHeader},
		{"Content-Language", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentLanguage: to.Ptr("en-US")}}, ErrClearHTTPHeader},
		{"Content-Encoding", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentEncoding: to.Ptr("gzip")}}, ErrClearHTTPHeader},
		{"Content-MD5", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentMD5: make([]byte, 16)}}, ErrClearHTTPHeader},
		{"Cache-Control with text", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobCacheControl: to.Ptr(`private="x57 wing"`)}}, ErrClearHTTPHeader},
		{"Cache-Control with a form feed", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobCacheControl: to.Ptr("\fno-store")}}, ErrClearHTTPHeader},
		{"Cache-Control with a Unicode space", sealedName, &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobCacheControl: to.Ptr("private,\u00a0max-age=60")}}, ErrClearHTTPHeader},
		{"metadata too large", sealedName, &UploadOptions{Metadata: map[string]*string{"big": to.Ptr(strings.Repeat("v", names.MaxMetadataSize))}}, nil},
		{"metadata without a value", sealedName, &UploadOptions{Metadata: map[string]*string{"empty": nil}}, nil},
		{"reserved metadata", sealedName, &UploadOptions{Metadata: map[string]*string{"geosealname": to.Ptr("x")}}, nil},
		{"too many tags", sealedName, &UploadOptions{Tags: map[string]string{"a": "", "b": "", "c": "", "d": "", "e": "", "f": "", "g": "", "h": "", "i": "", "j": "", "k": ""}}, nil},
		{"tag value too long", sealedName, &UploadOptions{Tags: map[string]string{"a": strings.Repeat("v", 257)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.wire.Reset()
			_, err := f.client.Upload(ctx, tt.blob, strings.NewReader("x"), tt.opts)
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Upload = %v, want %v", err, tt.wantErr)
			}
			if n := f.wire.Requests.Load(); n != 0 {
				t.Fatalf("%d requests before the refusal", n)
			}
		})
	}
	for _, name := range []string{tooDeep, "/x57"} {
		f.wire.Reset()
		for _, err := range []error{
			func() error { _, err := f.client.Open(ctx, name, nil); return err }(),
			func() error { _, err := f.client.Delete(ctx, name, nil); return err }(),
			func() error { _, err := f.client.Rewrap(ctx, name, f.kr, nil); return err }(),
		} {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("%q: %v, want ErrInvalidName", name, err)
			}
		}
		if n := f.wire.Requests.Load(); n != 0 {
			t.Fatalf("%d requests before the refusals", n)
		}
	}
	// Standard headers pass, and so does the deepest name.
	deepest := strings.Repeat("d/", names.MaxSegments-1) + "f"
	resp := f.upload(t, deepest, []byte("x"), &UploadOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream"), BlobCacheControl: to.Ptr("no-store")}})
	if len(resp.StoredName) > 1024 {
		t.Fatalf("stored name of %d characters", len(resp.StoredName))
	}
	if _, err := download(f.client, deepest, nil); err != nil {
		t.Fatal(err)
	}
}

// TestNameKeyReserved checks that a client without SealNames cannot
// overwrite or delete the container's name key, which would take every
// sealed name with it.
func TestNameKeyReserved(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.client.Upload(ctx, nameKeyBlob, strings.NewReader("x"), nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Upload of the name key = %v, want ErrInvalidName", err)
	}
	if _, err := f.client.Delete(ctx, nameKeyBlob, nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Delete of the name key = %v, want ErrInvalidName", err)
	}
	if n := f.wire.Requests.Load(); n != 0 {
		t.Fatalf("%d requests before the refusals", n)
	}
}

// TestSealedNamesPlainClient reads a sealed container without SealNames:
// stored names, marked sealed, nothing of the sealed entries shown, and
// the objects still open by their stored names.
func TestSealedNamesPlainClient(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	resp := f.upload(t, sealedName, []byte("data"), &UploadOptions{Metadata: sealedMetadata()})
	plain := f.newClient(t, f.kr, nil)
	it := listOne(t, plain, resp.StoredName)
	if it.Name != resp.StoredName || !it.NameSealed || len(it.Metadata) != 0 || it.SealErr != nil {
		t.Fatalf("listed %+v", it)
	}
	if key := listOne(t, plain, nameKeyBlob); key.NameSealed || key.Format != FormatGeoseal || key.Size != names.KeySize {
		t.Fatalf("the name key lists as %+v", key)
	}
	props, err := plain.GetProperties(ctx, resp.StoredName, nil)
	if err != nil || !props.NameSealed || len(props.Metadata) != 0 {
		t.Fatalf("GetProperties = %+v, %v", props, err)
	}
	// A plain client cannot ask for the logical name.
	if _, err := plain.Open(ctx, sealedName, nil); !isNotFound(err) {
		t.Fatalf("Open by logical name without SealNames = %v, want not found", err)
	}
}

// TestSealedNamesListing checks prefixes matched by whole segments, and a
// container without a name key.
func TestSealedNamesListing(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()

	// No name key yet: nothing under a prefix, everything by stored name,
	// and reads say why.
	f.putRaw(t, "press/release.txt", []byte("public"), nil)
	if items := listNames(t, f.client, "programs/"); len(items) != 0 {
		t.Fatalf("listed %q without a name key", items)
	}
	if items := listNames(t, f.client, ""); !slices.Equal(items, []string{"press/release.txt"}) {
		t.Fatalf("listed %q without a name key", items)
	}
	_, err := f.client.Open(ctx, sealedName, nil)
	if !errors.Is(err, ErrNoNameKey) || !isNotFound(err) {
		t.Fatalf("Open without a name key = %v, want ErrNoNameKey and not found", err)
	}
	if found := findByTags(t, f.client, map[string]string{"program": "x57"}); len(found) != 0 {
		t.Fatalf("found %+v without a name key", found)
	}

	for _, n := range []string{sealedName, "programs/x57", "programs/x57/wing/rib", "programs/x57b/other", "programs/x5/x"} {
		f.upload(t, n, []byte(n), nil)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"programs/x57/", []string{sealedName, "programs/x57/wing/rib"}},
		{"programs/x57", []string{"programs/x57", sealedName, "programs/x57/wing/rib"}},
		{"programs/x57/wing/", []string{"programs/x57/wing/rib"}},
		{"programs/x5", []string{"programs/x5/x"}},
		{"programs/x", nil},
		{"", []string{nameKeyBlob, "press/release.txt", "programs/x5/x", "programs/x57", sealedName, "programs/x57/wing/rib", "programs/x57b/other"}},
	}
	for _, tt := range tests {
		got := listNames(t, f.client, tt.prefix)
		slices.Sort(got)
		slices.Sort(tt.want)
		if !slices.Equal(got, tt.want) {
			t.Errorf("listing %q: %q, want %q", tt.prefix, got, tt.want)
		}
	}
	if _, err := f.client.NewListPager(&ListOptions{Prefix: "programs//"}).NextPage(ctx); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("listing an invalid prefix: %v, want ErrInvalidName", err)
	}
}

// listNames lists the names c lists under prefix, none refused.
func listNames(t *testing.T, c *Client, prefix string) []string {
	t.Helper()
	var out []string
	for _, it := range listItems(t, c, prefix) {
		if it.SealErr != nil {
			t.Fatalf("listed %+v", it)
		}
		out = append(out, it.Name)
	}
	return out
}

// TestSealedNamesOperations runs the other operations by logical name:
// ServeBlob, Rewrap, RewrapAll (which rotates the name key) and Delete.
func TestSealedNamesOperations(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	data := []byte("chapter 1: the spar\n")
	resp := f.upload(t, sealedName, data, nil)
	f.upload(t, "programs/x57/other", []byte("other"), nil)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.client.ServeBlob(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	}))
	defer srv.Close()
	for path, want := range map[string]int{"/" + sealedName: 200, "/programs/x57/missing": 404, "/" + resp.StoredName: 404, "/programs//x57": 404} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != want || want == 200 && !bytes.Equal(body, data) {
			t.Errorf("GET %s: %d %q, want %d", path, r.StatusCode, body, want)
		}
	}

	// Rewrap one blob; then rotate the container to a new key: the name
	// key goes with it, so the new key alone reads names and data, and
	// the old one neither.
	if _, err := f.client.Rewrap(ctx, sealedName, f.kr, nil); err != nil {
		t.Fatal(err)
	}
	newKey := formattest.NewAES(t)
	all, err := f.client.RewrapAll(ctx, newKey, nil)
	if err != nil || all.Rotated != 3 {
		t.Fatalf("RewrapAll = %+v, %v; want 3 rewrapped (two blobs and the name key)", all, err)
	}
	onlyNew := f.newClient(t, newKey, &ClientOptions{SealNames: true})
	if got, err := download(onlyNew, sealedName, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Download with the new key only = %q, %v", got, err)
	}
	if items := listNames(t, onlyNew, sealedDir); len(items) != 2 {
		t.Fatalf("listed %q with the new key only", items)
	}
	onlyOld := f.newClient(t, f.kr, &ClientOptions{SealNames: true})
	var nm *keyring.NoMatchError
	if _, err := onlyOld.Open(ctx, sealedName, nil); !errors.As(err, &nm) {
		t.Fatalf("Open with the old key after the rotation = %v, want a *keyring.NoMatchError", err)
	}
	// A rotation under a prefix leaves the name key as it is.
	third := formattest.NewAES(t)
	if all, err := onlyNew.RewrapAll(ctx, third, &RewrapAllOptions{Prefix: sealedDir}); err != nil || all.Rotated != 2 {
		t.Fatalf("RewrapAll under %q = %+v, %v; want 2 rewrapped", sealedDir, all, err)
	}
	if _, err := f.newClient(t, third, &ClientOptions{SealNames: true}).Open(ctx, sealedName, nil); !errors.As(err, &nm) {
		t.Fatalf("the name key was rotated by a rotation under a prefix: %v", err)
	}

	// Audit takes the logical prefix too.
	if a, err := onlyNew.Audit(ctx, &AuditOptions{Prefix: sealedDir}); err != nil || a.Blobs != 2 {
		t.Fatalf("Audit under %q = %d blobs, %v; want 2", sealedDir, a.Blobs, err)
	}

	if _, err := onlyNew.Delete(ctx, sealedName, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.plain.NewBlobClient(resp.StoredName).GetProperties(ctx, nil); !isNotFound(err) {
		t.Fatalf("the stored blob is still there after Delete: %v", err)
	}
}

// TestNameKeyOncePerClient checks that a client unwraps the name key once,
// however many calls need it at once, and that many first writers in one
// process agree on one key.
func TestNameKeyOncePerClient(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		c := f.newClient(t, f.kr, &ClientOptions{SealNames: true}) // a client each: no shared cache
		wg.Go(func() {
			_, errs[i] = c.Upload(ctx, fmt.Sprintf("programs/x57/w%d", i), strings.NewReader("x"), nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	kr := counting(f.kr)
	c := f.newClient(t, kr, &ClientOptions{SealNames: true})
	var readers sync.WaitGroup
	for i := range writers {
		readers.Go(func() {
			if _, err := download(c, fmt.Sprintf("programs/x57/w%d", i), nil); err != nil {
				t.Error(err)
			}
		})
	}
	readers.Wait()
	if n := kr.unwraps.Load(); n != writers+1 {
		t.Fatalf("%d unwraps for %d objects: want one per object and one for the name key", n, writers)
	}
	if items := listNames(t, c, sealedDir); len(items) != writers {
		t.Fatalf("listed %q: the writers did not agree on one name key", items)
	}
}

// TestSealedNamesEnvelope checks that a sealed blob's bytes are still a
// geoseal object envelope.Decrypt opens, and the name key one too.
func TestSealedNamesEnvelope(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	resp := f.upload(t, sealedName, []byte("spar"), nil)
	raw, _ := f.rawBlob(t, resp.StoredName)
	if got, err := decryptBytes(f.kr, raw); err != nil || string(got) != "spar" {
		t.Fatalf("envelope.Decrypt = %q, %v", got, err)
	}
	key, _ := f.rawBlob(t, nameKeyBlob)
	r, err := envelope.Decrypt(context.Background(), bytes.NewReader(key), f.kr, &envelope.DecryptOptions{RequireContext: nameKeyContext()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || len(b) != names.KeySize {
		t.Fatalf("the name key object holds %d bytes, %v", len(b), err)
	}
}

// TestFindBlobsByTagsClear checks the tag search of a client without
// SealNames: tags stored as given, found as given, and tag text the
// service cannot hold refused before any request.
func TestFindBlobsByTagsClear(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.upload(t, "a", []byte("a"), &UploadOptions{Tags: map[string]string{"program": "x57", "stage": "cdr"}})
	f.upload(t, "b", []byte("b"), &UploadOptions{Tags: map[string]string{"program": "x58"}})
	found := findByTags(t, f.client, map[string]string{"program": "x57"})
	if len(found) != 1 || found[0].Name != "a" || found[0].Format != FormatGeoseal || found[0].Size != 1 {
		t.Fatalf("found %+v", found)
	}
	tags, err := f.plain.NewBlobClient("a").GetTags(ctx, nil)
	if err != nil || len(tags.BlobTagSet) != 2 {
		t.Fatalf("GetTags = %+v, %v", tags, err)
	}
	f.wire.Reset()
	if _, err := f.client.Upload(ctx, "c", strings.NewReader("c"), &UploadOptions{Tags: map[string]string{"program": "x'57"}}); err == nil {
		t.Fatal("a tag value with a quote was accepted")
	}
	if _, err := f.client.NewFindBlobsByTagsPager(map[string]string{"program": "x' OR 'a'='a"}, nil).NextPage(ctx); err == nil {
		t.Fatal("a tag query with a quote was accepted")
	}
	if n := f.wire.Requests.Load(); n != 0 {
		t.Fatalf("%d requests before the refusals", n)
	}
}

// TestClearMetadataRefused checks that metadata the service would refuse
// at the commit, after the whole body, fails before any request in the
// clear, and is stored when sealed.
func TestClearMetadataRefused(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for name, md := range map[string]map[string]*string{
		"name with a dash":     {"drawing-no": to.Ptr("1")},
		"name with a digit":    {"1st": to.Ptr("1")},
		"name with a space":    {"part no": to.Ptr("1")},
		"value with a newline": {"drawing": to.Ptr("a\nb")},
		"value not ASCII":      {"drawing": to.Ptr("Flügel")},
		"too much":             {"drawing": to.Ptr(strings.Repeat("v", maxClearMetadata))},
		"no value":             {"drawing": nil},
	} {
		f.wire.Reset()
		if _, err := f.client.Upload(ctx, "x", strings.NewReader("x"), &UploadOptions{Metadata: md}); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if n := f.wire.Requests.Load(); n != 0 {
			t.Errorf("%s: %d requests before the refusal", name, n)
		}
	}
	f.upload(t, "ok", []byte("x"), &UploadOptions{Metadata: map[string]*string{"Drawing_2": to.Ptr("Ti-6Al-4V spar, rev. C")}})
	sealed := f.newClient(t, f.kr, &ClientOptions{SealNames: true})
	md := map[string]*string{"drawing-no": to.Ptr("Flügel\nHolm")}
	if _, err := sealed.Upload(ctx, "sealed", strings.NewReader("x"), &UploadOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	props, err := sealed.GetProperties(ctx, "sealed", nil)
	if err != nil || !sameMetadata(props.Metadata, md) {
		t.Fatalf("GetProperties = %+v, %v", props.Metadata, err)
	}
}

// TestNameKeyRewrapAlone rotates the name key by itself, with Rewrap by
// its name from a client without SealNames.
func TestNameKeyRewrapAlone(t *testing.T) {
	f := newFixture(t, &ClientOptions{SealNames: true})
	ctx := context.Background()
	f.upload(t, sealedName, []byte("x"), nil)
	k2 := formattest.NewAES(t)
	if _, err := f.newClient(t, f.kr, nil).Rewrap(ctx, nameKeyBlob, k2, nil); err != nil {
		t.Fatal(err)
	}
	// The names are now under k2 alone, the data still under f.kr.
	if items := listNames(t, f.newClient(t, k2, &ClientOptions{SealNames: true}), sealedDir); !slices.Equal(items, []string{sealedName}) {
		t.Fatalf("listed %q with the name key's new key", items)
	}
	var nm *keyring.NoMatchError
	if _, err := f.newClient(t, f.kr, &ClientOptions{SealNames: true}).NewListPager(nil).NextPage(ctx); !errors.As(err, &nm) {
		t.Fatalf("listing with the name key's old key: %v, want a *keyring.NoMatchError", err)
	}
}
