package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

func TestNewClientRequiresGuard(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := NewClient(f.container, f.kr, nil, nil); err == nil || !strings.Contains(err.Error(), "guard") {
		t.Fatalf("nil guard: got %v, want an error naming the guard", err)
	}
	if _, err := NewClient(f.container, nil, unrestrictedGuard(t), nil); err == nil {
		t.Fatal("nil keyring accepted")
	}
	if _, err := NewClient(nil, f.kr, unrestrictedGuard(t), nil); err == nil {
		t.Fatal("nil container accepted")
	}
	for _, o := range []ClientOptions{{BlockSize: 10}, {BlockSize: MaxBlockSize + 1}, {RangeSize: 10}, {Concurrency: -1}, {Concurrency: 1000}} {
		if _, err := NewClient(f.container, f.kr, unrestrictedGuard(t), &o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	_, err := f.client.Upload(context.Background(), "x", strings.NewReader("x"), &UploadOptions{
		Metadata: map[string]*string{"GeosealChunkSize": to.Ptr("1")},
	})
	if err == nil || f.wire.Requests.Load() != 0 {
		t.Fatalf("reserved metadata name: got %v after %d requests, want an error before any", err, f.wire.Requests.Load())
	}
	for name, o := range map[string]*UploadOptions{
		"encryptiondata metadata": {Metadata: map[string]*string{"EncryptionData": to.Ptr("{}")}},
		"chunk size":              {ChunkSize: 5000},
		"suite":                   {Suite: 9},
		"block size":              {BlockSize: 1000},
		"concurrency":             {Concurrency: -2},
	} {
		_, err = f.client.Upload(context.Background(), "x", strings.NewReader("x"), o)
		if err == nil || f.wire.Requests.Load() != 0 {
			t.Errorf("bad %s: got %v after %d requests, want an error before any", name, err, f.wire.Requests.Load())
		}
	}
	if _, err := f.client.Upload(context.Background(), "x", nil, nil); err == nil || f.wire.Requests.Load() != 0 {
		t.Errorf("nil reader: %v after %d requests", err, f.wire.Requests.Load())
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: testBlock, Concurrency: 3})
	ctx := context.Background()
	sizes := []int{0, 1, testChunk - 1, testChunk, testChunk + 1, 5*testChunk + 7,
		testBlock - 100, testBlock, testBlock + 1, 3*testBlock + 12345, 7 * testBlock}
	for _, size := range sizes {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			pt := randomBytes(size)
			name := fmt.Sprintf("rt-%d", size)
			var progress []int64
			resp := f.upload(t, name, pt, &UploadOptions{
				ChunkSize: testChunk,
				Context:   keyring.Context{"size": strconv.Itoa(size)},
				Metadata:  map[string]*string{"owner": to.Ptr("test")},
				Progress:  func(n int64) { progress = append(progress, n) },
			})
			if resp.Size != int64(size) {
				t.Errorf("UploadResponse.Size = %d, want %d", resp.Size, size)
			}
			raw, md := f.rawBlob(t, name)
			if int64(len(raw)) != resp.EncryptedSize {
				t.Errorf("blob has %d bytes, UploadResponse.EncryptedSize = %d", len(raw), resp.EncryptedSize)
			}
			if len(progress) == 0 || progress[len(progress)-1] != resp.EncryptedSize {
				t.Errorf("progress %v does not end at %d", progress, resp.EncryptedSize)
			}
			for i := 1; i < len(progress); i++ {
				if progress[i] <= progress[i-1] {
					t.Errorf("progress not increasing: %v", progress)
				}
			}
			if mdGet(md, "owner") != "test" {
				t.Errorf("user metadata lost: %v", md)
			}
			// The plain bytes are a well-formed object (Decrypt reads it).
			if got, err := decryptBytes(f.kr, raw); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("the stored blob does not decrypt as an object: %v", err)
			}

			// Layout: the header alone in the first block, then the body.
			bl, err := f.plain.NewBlockBlobClient(name).GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
			if err != nil {
				t.Fatal(err)
			}
			blocks := bl.BlockList.CommittedBlocks
			h, err := envelope.Inspect(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) < 2 || *blocks[0].Size != int64(h.Size) {
				t.Fatalf("first block is not the header (%d bytes): %d blocks", h.Size, len(blocks))
			}
			wantBlocks := 1 + (len(raw)-h.Size+testBlock-1)/testBlock
			if len(blocks) != wantBlocks {
				t.Errorf("%d committed blocks, want %d", len(blocks), wantBlocks)
			}
			if n := len(bl.BlockList.UncommittedBlocks); n != 0 {
				t.Errorf("%d uncommitted blocks left", n)
			}

			got, err := download(f.client, name, &DownloadOptions{RequireContext: keyring.Context{"size": strconv.Itoa(size)}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("Download returned %d bytes, not the %d uploaded", len(got), size)
			}
			// Any range size and concurrency reads it back.
			got, err = download(f.client, name, &DownloadOptions{RangeSize: 2 * testBlock, Concurrency: 1})
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Download with other transfer options: %v", err)
			}
			if _, err := download(f.client, name, &DownloadOptions{RequireContext: keyring.Context{"size": "other"}}); !errors.Is(err, envelope.ErrContextMismatch) {
				t.Fatalf("wrong required context: got %v, want ErrContextMismatch", err)
			}
		})
	}
}

func TestDownloadRange(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: testBlock, Concurrency: 2})
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for _, size := range []int{0, 1, testChunk, 3*testChunk + 100, 5 * testBlock} {
		pt := randomBytes(size)
		name := fmt.Sprintf("range-%d", size)
		f.upload(t, name, pt, &UploadOptions{ChunkSize: testChunk})
		type rng2 struct{ off, n int64 }
		cases := []rng2{{0, 0}, {0, 1}, {0, int64(size)}, {int64(size), 0}, {int64(size), 10},
			{int64(size) + 5, 1}, {max(int64(size)-1, 0), 100}, {testChunk - 1, 2}, {testChunk, testChunk}}
		for range 25 {
			off := rng.Int64N(int64(size) + 1)
			cases = append(cases, rng2{off, rng.Int64N(int64(size)-off+testChunk) + 1})
		}
		for _, c := range cases {
			got, err := downloadRange(f.client, name, c.off, c.n, nil)
			if err != nil {
				t.Fatalf("size %d, range (%d, %d): %v", size, c.off, c.n, err)
			}
			lo, hi := min(c.off, int64(size)), int64(size)
			if c.n > 0 {
				hi = min(c.off+c.n, int64(size))
			}
			if !bytes.Equal(got, pt[lo:hi]) {
				t.Fatalf("size %d, range (%d, %d): got %d bytes, want pt[%d:%d]", size, c.off, c.n, len(got), lo, hi)
			}
		}
	}
	if _, err := f.client.Download(context.Background(), "range-1", &DownloadOptions{Range: blob.HTTPRange{Offset: -1, Count: 1}}); err == nil {
		t.Fatal("negative offset accepted")
	}
}

// TestRangeFetchBudget counts the bytes a ranged download receives: the
// header and the final chunk (which Open authenticates), and the chunks
// that hold the range, at most two more than the range itself.
func TestRangeFetchBudget(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: 4 * testBlock, RangeSize: 4 * testBlock, Concurrency: 2})
	const size = 40*testChunk + 1234 // the final chunk is short: no freebies
	pt := randomBytes(size)
	f.upload(t, "budget", pt, &UploadOptions{ChunkSize: testChunk})
	raw, _ := f.rawBlob(t, "budget")
	h, _ := envelope.Inspect(bytes.NewReader(raw))
	enc := int64(testChunk + chunkOverhead)
	final := int64(1234 + chunkOverhead)
	rng := mathrand.New(mathrand.NewPCG(3, 4))
	for i := range 40 {
		off := rng.Int64N(size)
		n := rng.Int64N(min(size-off, 3*testChunk)) + 1
		if i == 0 {
			off, n = testChunk-1, 2 // straddles one boundary
		}
		f.wire.Reset()
		got, err := downloadRange(f.client, "budget", off, n, nil)
		if err != nil || !bytes.Equal(got, pt[off:off+n]) {
			t.Fatalf("range (%d, %d): %v", off, n, err)
		}
		chunksOfRange := (n + testChunk - 1) / testChunk
		budget := int64(h.Size) + final + n + 2*enc + chunksOfRange*28
		if r := f.wire.Received.Load(); r > budget {
			t.Errorf("range (%d, %d) received %d bytes, budget header %d + final chunk + range + 2 chunks = %d (%v)", off, n, r, h.Size, budget, f.wire)
		}
		// A HEAD, the header and the final chunk, the chunks.
		if q := f.wire.Requests.Load(); q > 4 {
			t.Errorf("range (%d, %d): %d requests (%v)", off, n, q, f.wire)
		}
	}
}

func TestGuardRefusalSendsNothing(t *testing.T) {
	f := newFixture(t, nil)
	ear, err := region.LoadPolicy("ear")
	if err != nil {
		t.Fatal(err)
	}
	guard, err := region.NewGuard(ear, region.Static("chinaeast", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.upload(t, "existing", []byte("before"), nil)
	refused, err := NewClient(f.container, f.kr, guard, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.wire.Reset()
	_, err = refused.Upload(context.Background(), "secret", bytes.NewReader(randomBytes(1<<20)), nil)
	var v *region.Violation
	if !errors.As(err, &v) {
		t.Fatalf("Upload to chinaeast under EAR: got %v, want a *region.Violation", err)
	}
	_, err = refused.Rewrap(context.Background(), "existing", f.kr, nil)
	if !errors.As(err, &v) {
		t.Fatalf("Rewrap under a refusing guard: got %v, want a *region.Violation", err)
	}
	_, err = refused.RewrapAll(context.Background(), f.kr, nil)
	if !errors.As(err, &v) {
		t.Fatalf("RewrapAll under a refusing guard: got %v, want a *region.Violation", err)
	}
	if f.wire.Requests.Load() != 0 || f.wire.Sent.Load() != 0 {
		t.Fatalf("refused writes reached the wire: %v", f.wire)
	}
	if _, err := f.plain.NewBlobClient("secret").GetProperties(context.Background(), nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("refused blob exists: %v", err)
	}
	// Reading is not a storage decision: the refusing client still reads.
	if got, err := download(refused, "existing", nil); err != nil || string(got) != "before" {
		t.Fatalf("read through a refusing client: %q, %v", got, err)
	}
}

func TestRewrap(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	pt := randomBytes(3*testBlock + 999)
	f.upload(t, "doc", pt, &UploadOptions{
		ChunkSize:   testChunk,
		Context:     keyring.Context{"project": "x-57"},
		Metadata:    map[string]*string{"owner": to.Ptr("alice")},
		Tags:        map[string]string{"class": "ear99"},
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/x-geoseal")},
	})
	rawBefore, _ := f.rawBlob(t, "doc")
	hBefore, _ := envelope.Inspect(bytes.NewReader(rawBefore))

	newKR := formattest.NewAES(t)
	f.wire.Reset()
	resp, err := f.client.Rewrap(ctx, "doc", newKR, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No chunk was uploaded: the bytes sent are the new header block and
	// the block list (a few dozen bytes per block ID).
	if s, limit := f.wire.Sent.Load(), int64(resp.HeaderSize+2048); s > limit {
		t.Fatalf("rewrap sent %d bytes, more than the header (%d) and the block list (%v)", s, resp.HeaderSize, f.wire)
	}
	// Nor downloaded: the header block only.
	if r := f.wire.Received.Load(); r > int64(hBefore.Size)+4096 {
		t.Fatalf("rewrap received %d bytes (%v)", r, f.wire)
	}
	if len(resp.WrappedKeys) != 1 || resp.WrappedKeys[0].KeyID != newKR.KeyID() {
		t.Fatalf("new wrapped keys: %+v", resp.WrappedKeys)
	}

	rawAfter, md := f.rawBlob(t, "doc")
	hAfter, _ := envelope.Inspect(bytes.NewReader(rawAfter))
	if !bytes.Equal(rawAfter[hAfter.Size:], rawBefore[hBefore.Size:]) {
		t.Fatal("the body changed")
	}
	newClient := f.newClient(t, newKR, nil)
	got, err := download(newClient, "doc", &DownloadOptions{RequireContext: keyring.Context{"project": "x-57"}})
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("download with the new key: %v", err)
	}
	got, err = downloadRange(newClient, "doc", testBlock, 3*testChunk, nil)
	if err != nil || !bytes.Equal(got, pt[testBlock:testBlock+3*testChunk]) {
		t.Fatalf("ranged download with the new key (metadata updated?): %v", err)
	}
	var nomatch *keyring.NoMatchError
	if _, err := download(f.client, "doc", nil); !errors.As(err, &nomatch) {
		t.Fatalf("download with the old key: got %v, want a *keyring.NoMatchError", err)
	}

	// What the blob carried survives.
	if v := mdGet(md, "owner"); v != "alice" {
		t.Errorf("metadata owner = %q after rewrap", v)
	}
	if v := mdGet(md, metaHeaderLength); v != strconv.Itoa(hAfter.Size) {
		t.Errorf("header length metadata %q, header is %d bytes", v, hAfter.Size)
	}
	props, err := f.plain.NewBlobClient("doc").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.ContentType == nil || *props.ContentType != "application/x-geoseal" {
		t.Errorf("content type after rewrap: %v", props.ContentType)
	}
	if *props.ETag != *resp.ETag {
		t.Errorf("ETag %s, RewrapResponse says %s", *props.ETag, *resp.ETag)
	}
	tags, err := f.plain.NewBlobClient("doc").GetTags(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.BlobTagSet) != 1 || *tags.BlobTagSet[0].Key != "class" || *tags.BlobTagSet[0].Value != "ear99" {
		t.Errorf("tags after rewrap: %+v", tags.BlobTagSet)
	}
	bl, err := f.plain.NewBlockBlobClient("doc").GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bl.BlockList.UncommittedBlocks); n != 0 {
		t.Errorf("%d uncommitted blocks after rewrap", n)
	}
}

// racingWrapper overwrites the blob while Rewrap holds its header: the
// concurrent writer Rewrap's ETag condition must detect.
type racingWrapper struct {
	keyring.Wrapper
	race func()
}

func (r racingWrapper) Wrap(ctx context.Context, dek []byte, ec keyring.Context) ([]keyring.WrappedKey, error) {
	r.race()
	return r.Wrapper.Wrap(ctx, dek, ec)
}

func TestRewrapConcurrentWriter(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	f.upload(t, "doc", randomBytes(2*testBlock), &UploadOptions{ChunkSize: testChunk})
	winner := randomBytes(testBlock + 5)
	w := racingWrapper{Wrapper: formattest.NewAES(t), race: func() { f.upload(t, "doc", winner, nil) }}
	_, err := f.client.Rewrap(context.Background(), "doc", w, nil)
	if !errors.Is(err, ErrBlobChanged) {
		t.Fatalf("rewrap racing a writer: got %v, want ErrBlobChanged", err)
	}
	if !bloberror.HasCode(err, bloberror.ConditionNotMet) {
		t.Errorf("the service's error is not in the chain: %v", err)
	}
	got, err := download(f.client, "doc", nil)
	if err != nil || !bytes.Equal(got, winner) {
		t.Fatalf("the concurrent writer's blob did not survive: %v", err)
	}
}

func TestAccessConditions(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	noneMatch := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	first := f.upload(t, "c", []byte("first"), &UploadOptions{AccessConditions: noneMatch})
	f.wire.Reset()
	_, err := f.client.Upload(ctx, "c", strings.NewReader("second"), &UploadOptions{AccessConditions: noneMatch})
	if !errors.Is(err, ErrBlobChanged) {
		t.Fatalf("If-None-Match * over an existing blob: %v", err)
	}
	// The condition was checked before anything was staged.
	if f.wire.Puts.Load() != 0 {
		t.Errorf("a failed condition staged blocks: %v", f.wire)
	}
	f.upload(t, "c", []byte("third"), &UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: first.ETag}},
	})
	f.wire.Reset()
	_, err = f.client.Upload(ctx, "c", strings.NewReader("fourth"), &UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: first.ETag}},
	})
	if !errors.Is(err, ErrBlobChanged) || !bloberror.HasCode(err, bloberror.ConditionNotMet) {
		t.Fatalf("If-Match a stale ETag: %v", err)
	}
	if f.wire.Puts.Load() != 0 {
		t.Errorf("a failed condition staged blocks: %v", f.wire)
	}
	_, err = f.client.Upload(ctx, "missing", strings.NewReader("x"), &UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: first.ETag}},
	})
	if !errors.Is(err, ErrBlobChanged) {
		t.Fatalf("If-Match on a missing blob: %v", err)
	}
	if got, err := download(f.client, "c", nil); err != nil || string(got) != "third" {
		t.Fatalf("got %q, %v; want third", got, err)
	}
}

func TestTampered(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: testBlock})
	pt := randomBytes(2*testBlock + 3*testChunk + 100) // a short final chunk
	f.upload(t, "orig", pt, &UploadOptions{ChunkSize: testChunk})
	raw, md := f.rawBlob(t, "orig")
	h, _ := envelope.Inspect(bytes.NewReader(raw))
	enc := testChunk + chunkOverhead

	flip := func(off int) []byte {
		b := bytes.Clone(raw)
		b[off] ^= 0x40
		return b
	}
	noMeta := map[string]*string{}
	cases := []struct {
		name string
		data []byte
		md   map[string]*string
		want error
	}{
		{"body bit", flip(h.Size + 5*enc + 100), md, envelope.ErrBodyTampered},
		{"last byte", flip(len(raw) - 1), md, envelope.ErrBodyTampered},
		{"header tag", flip(h.Size - 10), md, envelope.ErrHeaderTampered},
		{"chunks swapped", swapChunks(raw, h.Size, enc, 2, 3), md, envelope.ErrBodyTampered},
		{"truncated at a chunk boundary", raw[:len(raw)-(len(raw)-h.Size)%enc], noMeta, envelope.ErrBodyTampered},
		{"truncated, metadata kept", raw[:len(raw)-enc], md, ErrInvalidMetadata},
		{"extended", append(bytes.Clone(raw), raw[h.Size:h.Size+enc]...), noMeta, envelope.ErrBodyTampered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.putRaw(t, "t", c.data, c.md)
			got, err := download(f.client, "t", nil)
			if err == nil {
				t.Fatalf("tampered blob downloaded (%d bytes)", len(got))
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			// Reading it through Open fails the same way.
			b, err := f.client.Open(context.Background(), "t", nil)
			if err == nil {
				_, err = io.ReadAll(b)
				b.Close()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("through Open: got %v, want %v", err, c.want)
			}
		})
	}
	// A ranged read that avoids the modified chunk still works: chunks are
	// authenticated one by one, each bound to its index.
	f.putRaw(t, "t", flip(h.Size+5*enc+100), md)
	if got, err := downloadRange(f.client, "t", 0, 4*testChunk, nil); err != nil || !bytes.Equal(got, pt[:4*testChunk]) {
		t.Fatalf("range before the flipped chunk: %v", err)
	}
	if _, err := downloadRange(f.client, "t", 5*testChunk+10, 10, nil); !errors.Is(err, envelope.ErrBodyTampered) {
		t.Fatalf("range over the flipped chunk: got %v, want ErrBodyTampered", err)
	}
}

func swapChunks(raw []byte, hl, enc, i, j int) []byte {
	b := bytes.Clone(raw)
	ci := b[hl+i*enc : hl+(i+1)*enc]
	cj := b[hl+j*enc : hl+(j+1)*enc]
	tmp := bytes.Clone(ci)
	copy(ci, cj)
	copy(cj, tmp)
	return b
}

func TestMetadata(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	pt := randomBytes(3*testBlock + 17)
	f.upload(t, "m", pt, &UploadOptions{ChunkSize: testChunk})
	raw, md := f.rawBlob(t, "m")

	// Without metadata (a copy made by other means) reads still work.
	f.putRaw(t, "bare", raw, nil)
	if got, err := download(f.client, "bare", nil); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("download without metadata: %v", err)
	}
	if got, err := downloadRange(f.client, "bare", testBlock+5, 2*testChunk, nil); err != nil || !bytes.Equal(got, pt[testBlock+5:testBlock+5+2*testChunk]) {
		t.Fatalf("ranged download without metadata: %v", err)
	}

	// Lying metadata is caught against the authenticated header.
	for _, k := range []string{metaChunkSize, metaHeaderLength, metaPlaintextSize, metaSuite} {
		bad := map[string]*string{}
		for name, v := range md {
			if !strings.EqualFold(name, k) {
				bad[name] = v
			}
		}
		switch k {
		case metaChunkSize:
			bad[k] = to.Ptr(strconv.Itoa(2 * testChunk))
		case metaHeaderLength:
			bad[k] = to.Ptr(strconv.Itoa(len(raw) / 2))
		case metaPlaintextSize:
			bad[k] = to.Ptr("5")
		case metaSuite:
			bad[k] = to.Ptr("2")
		}
		if _, err := f.plain.NewBlobClient("m").SetMetadata(ctx, bad, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := download(f.client, "m", nil); !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("%s lies: Download got %v, want ErrInvalidMetadata", k, err)
		}
		if _, err := downloadRange(f.client, "m", 10, 10, nil); !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("%s lies: ranged Download got %v, want ErrInvalidMetadata", k, err)
		}
	}

	// Not a geoseal object at all.
	f.putRaw(t, "plain", []byte("hello, world"), nil)
	if _, err := download(f.client, "plain", nil); !errors.Is(err, ErrNotGeoseal) || !errors.Is(err, envelope.ErrNotGeoseal) {
		t.Errorf("plain blob: got %v, want ErrNotGeoseal", err)
	}
	f.putRaw(t, "empty", nil, nil)
	if _, err := download(f.client, "empty", nil); !errors.Is(err, ErrNotGeoseal) {
		t.Errorf("empty blob: got %v, want ErrNotGeoseal", err)
	}
	if _, err := downloadRange(f.client, "empty", 0, 0, nil); !errors.Is(err, ErrNotGeoseal) {
		t.Errorf("empty blob, ranged: got %v", err)
	}
	if _, err := download(f.client, "missing", nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Errorf("missing blob: got %v, want BlobNotFound", err)
	}
}

// TestConcurrentUse runs many uploads, downloads, ranged and concurrent
// ReadAt reads, GetProperties and ServeBlob requests through one Client at
// once; run under -race.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock, RangeSize: testBlock, Concurrency: 2})
	shared := randomBytes(2*testBlock + 1)
	f.upload(t, "shared", shared, &UploadOptions{ChunkSize: testChunk})
	sharedBlob, err := f.client.Open(context.Background(), "shared", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sharedBlob.Close()
	srv := f.serve(t, f.client)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 12 {
		wg.Go(func() {
			pt := randomBytes(i*9000 + 1)
			name := fmt.Sprintf("g%d", i)
			if _, err := f.client.Upload(context.Background(), name, bytes.NewReader(pt), &UploadOptions{ChunkSize: testChunk}); err != nil {
				errs <- err
				return
			}
			for _, n := range []string{name, "shared"} {
				want := pt
				if n == "shared" {
					want = shared
				}
				got, err := download(f.client, n, nil)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s: %v", n, err)
					return
				}
				off := int64(len(want) / 3)
				got, err = downloadRange(f.client, n, off, testChunk, nil)
				if err != nil || !bytes.Equal(got, want[off:min(off+testChunk, int64(len(want)))]) {
					errs <- fmt.Errorf("%s ranged: %v", n, err)
					return
				}
				if _, err := f.client.GetProperties(context.Background(), n, nil); err != nil {
					errs <- fmt.Errorf("%s properties: %v", n, err)
					return
				}
			}
			// Concurrent ReadAt on one shared Blob.
			buf := make([]byte, 3*testChunk+7)
			off := int64(i * 1111)
			if _, err := sharedBlob.ReadAt(buf, off); err != nil || !bytes.Equal(buf, shared[off:off+int64(len(buf))]) {
				errs <- fmt.Errorf("shared ReadAt at %d: %v", off, err)
			}
			// And ServeBlob, through the same client.
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/shared", nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+999))
			resp, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, shared[off:off+1000]) {
				errs <- fmt.Errorf("ServeBlob range at %d: %d, %v", off, resp.StatusCode, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
