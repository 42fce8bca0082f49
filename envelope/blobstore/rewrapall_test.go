package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/internal/wire"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// countingKeyring counts the calls that would reach a KMS.
type countingKeyring struct {
	keyring.Keyring
	wraps, unwraps atomic.Int64
}

func counting(kr keyring.Keyring) *countingKeyring { return &countingKeyring{Keyring: kr} }

func (k *countingKeyring) Wrap(ctx context.Context, dek []byte, ec keyring.Context) ([]keyring.WrappedKey, error) {
	k.wraps.Add(1)
	return k.Keyring.Wrap(ctx, dek, ec)
}

func (k *countingKeyring) Unwrap(ctx context.Context, keys []keyring.WrappedKey, ec keyring.Context) ([]byte, error) {
	k.unwraps.Add(1)
	return k.Keyring.Unwrap(ctx, keys, ec)
}

func (k *countingKeyring) KeyIDs() []string { return keyring.KeyIDs(k.Keyring) }

func (k *countingKeyring) calls() int64 { return k.wraps.Load() + k.unwraps.Load() }

// outcomes collects RewrapAll's results, by blob (snapshots and versions
// after a '@').
type outcomes struct {
	mu sync.Mutex
	m  map[string]WalkResult
	n  int
}

func (o *outcomes) record(r WalkResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]WalkResult{}
	}
	key := r.Blob
	if r.Snapshot != "" {
		key += "@" + r.Snapshot
	}
	if r.VersionID != "" {
		key += "@v" + r.VersionID
	}
	if _, dup := o.m[key]; dup {
		panic("reported twice: " + key)
	}
	o.m[key] = r
	o.n++
}

func (o *outcomes) of(name string) string { return o.m[name].Outcome }

// cancelInFirstCommit returns a context that w's first commit cancels
// while it is on the wire: the commit is sent, and its response is lost
// (errLost). The interception ends with the test.
func cancelInFirstCommit(t testing.TB, w *wire.Counter) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var once atomic.Bool
	w.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		if !isCommit(req) || !once.CompareAndSwap(false, true) {
			return send(req)
		}
		cancel()
		resp, err := send(req)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errLost
	})
	t.Cleanup(func() { w.Intercept(nil) })
	return ctx
}

// headerKeys returns the key ids of a blob's stored header.
func (f *fixture) headerKeys(t testing.TB, name string) []string {
	t.Helper()
	raw, _ := f.rawBlob(t, name)
	h, err := envelope.Inspect(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var ids []string
	for _, k := range h.WrappedKeys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

func TestRewrapAll(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	want := map[string][]byte{}
	for i := range 7 {
		name := fmt.Sprintf("rot/%d", i)
		want[name] = randomBytes(i * 5000)
		f.upload(t, name, want[name], &UploadOptions{ChunkSize: testChunk})
	}
	f.upload(t, "rot/tagged", []byte("tagged"), &UploadOptions{
		Tags:        map[string]string{"class": "ear99", "program": "x"},
		Metadata:    map[string]*string{"owner": to.Ptr("alice")},
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/x-step")},
	})
	want["rot/tagged"] = []byte("tagged")
	f.upload(t, "other/untouched", []byte("outside the prefix"), nil)
	f.putRaw(t, "rot/plain", []byte("not encrypted"), nil)
	_, cse := loadCSE(t)
	f.putCSE(t, "rot/legacy", cse[0])
	// A geoseal object stored in one Put Blob: its header is not a block.
	obj := encryptBytes(t, f.kr, []byte("one piece"), nil)
	md := map[string]*string{}
	h, _ := envelope.Inspect(bytes.NewReader(obj))
	if err := setObjectMetadata(md, h.Size, &stream.Options{ChunkSize: h.ChunkSize}, 9); err != nil {
		t.Fatal(err)
	}
	f.putRaw(t, "rot/onepiece", obj, md)

	newKR := formattest.NewAES(t)
	var got outcomes
	resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Prefix: "rot/", Concurrency: 3, Results: got.record})
	if !errors.Is(err, ErrHeaderNotInOwnBlock) {
		t.Fatalf("RewrapAll: got %v, want an error matching ErrHeaderNotInOwnBlock", err)
	}
	if resp != (RewrapAllResponse{Rotated: 8, NotGeoseal: 2, Failed: 1, Done: true}) {
		t.Fatalf("RewrapAll response: %+v", resp)
	}
	for name, outcome := range map[string]string{"rot/plain": OutcomeNotGeoseal, "rot/legacy": OutcomeNotGeoseal, "rot/onepiece": OutcomeFailed, "rot/tagged": OutcomeRotated} {
		if got.of(name) != outcome {
			t.Errorf("%s: %+v, want %s", name, got.m[name], outcome)
		}
	}
	if r := got.m["rot/legacy"]; r.Format != FormatCSEv2 || len(r.KeyIDs) != 1 {
		t.Errorf("a CSE v2 blob is reported with its format and key: %+v", r)
	}
	if r := got.m["rot/tagged"]; !slices.Equal(r.KeyIDs, []string{newKR.KeyID()}) || r.Format != FormatGeoseal {
		t.Errorf("a rotated blob is reported with its new keys: %+v", r)
	}
	if got.n != 11 {
		t.Errorf("%d results for 11 blobs: %v", got.n, got.m)
	}
	newClient := f.newClient(t, newKR, nil)
	for name, pt := range want {
		got, err := download(newClient, name, nil)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s after RewrapAll: %v", name, err)
		}
	}
	if got, err := download(f.client, "other/untouched", nil); err != nil || string(got) != "outside the prefix" {
		t.Fatalf("a blob outside the prefix changed: %v", err)
	}
	// What the tagged blob carried survives, its tags from the listing.
	tags, err := f.plain.NewBlobClient("rot/tagged").GetTags(ctx, nil)
	if err != nil || len(tags.BlobTagSet) != 2 {
		t.Fatalf("tags after RewrapAll: %+v, %v", tags.BlobTagSet, err)
	}
	props, err := f.plain.NewBlobClient("rot/tagged").GetProperties(ctx, nil)
	if err != nil || mdGet(props.Metadata, "owner") != "alice" || *props.ContentType != "application/x-step" {
		t.Fatalf("metadata or content type lost: %v %v", props.Metadata, err)
	}
}

// TestRewrapAllRerun is the regression test of a rerun: with the old key
// alone it used to fail on every blob already rotated (and with both keys
// to rotate each one again). Now a rotated blob costs one request and no
// KMS call.
func TestRewrapAllRerun(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const n = 12
	for i := range n {
		f.upload(t, fmt.Sprintf("r/%02d", i), randomBytes(100*i), nil)
	}
	oldKR, newKR := counting(f.kr), counting(formattest.NewAES(t))
	client := f.newClient(t, oldKR, nil)
	if resp, err := client.RewrapAll(ctx, newKR, nil); err != nil || resp.Rotated != n {
		t.Fatalf("first run: %+v, %v", resp, err)
	}
	// The old key alone, as after a crash or on a second pass.
	oldKR.wraps.Store(0)
	oldKR.unwraps.Store(0)
	newKR.wraps.Store(0)
	f.wire.Reset()
	resp, err := client.RewrapAll(ctx, newKR, nil)
	if err != nil || resp.AlreadyRotated != n || resp.Rotated != 0 || resp.Failed != 0 {
		t.Fatalf("rerun: %+v, %v", resp, err)
	}
	if calls := oldKR.calls() + newKR.calls(); calls != 0 {
		t.Errorf("rerun made %d keyring calls", calls)
	}
	// One listing page and one GET per blob, nothing written.
	if r, p := f.wire.Requests.Load(), f.wire.Puts.Load(); r != n+1 || p != 0 {
		t.Errorf("rerun over %d rotated blobs: %v", n, f.wire)
	}
	// With both keys, the same.
	both := f.newClient(t, keyring.NewMulti(f.kr, newKR), nil)
	if resp, err := both.RewrapAll(ctx, newKR, nil); err != nil || resp.AlreadyRotated != n || newKR.calls() != 0 {
		t.Fatalf("rerun with both keys: %+v, %v, %d calls", resp, err, newKR.calls())
	}
}

// TestRewrapAllRequestsPerBlob counts the requests of each kind of blob: at
// most 4 for a rotated one (there used to be 6), 1 for one already
// rotated, 1 or none for what is not a geoseal object.
func TestRewrapAllRequestsPerBlob(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	newKR := formattest.NewAES(t)
	const n = 5
	for i := range n {
		f.upload(t, fmt.Sprintf("rotate/%d", i), randomBytes(2*testBlock+i), &UploadOptions{
			ChunkSize: testChunk,
			Tags:      map[string]string{"i": fmt.Sprint(i)},
			Metadata:  map[string]*string{"owner": to.Ptr("bob")},
		})
		f.putRaw(t, fmt.Sprintf("plain/%d", i), []byte("a blob without encryption"), nil)
		f.putRaw(t, fmt.Sprintf("empty/%d", i), nil, nil)
	}
	_, cse := loadCSE(t)
	for i := range n {
		f.putCSE(t, fmt.Sprintf("cse/%d", i), cse[i%len(cse)])
	}
	f.upload(t, "stripped/0", randomBytes(3000), nil)
	if _, err := f.plain.NewBlobClient("stripped/0").SetMetadata(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix  string
		count   int
		perBlob int64
		resp    RewrapAllResponse
	}{
		{"rotate/", n, 4, RewrapAllResponse{Rotated: n, Done: true}},
		{"rotate/", n, 1, RewrapAllResponse{AlreadyRotated: n, Done: true}},
		{"plain/", n, 1, RewrapAllResponse{NotGeoseal: n, Done: true}},
		{"empty/", n, 0, RewrapAllResponse{NotGeoseal: n, Done: true}},
		{"cse/", n, 0, RewrapAllResponse{NotGeoseal: n, Done: true}},
		// Without metadata: the 13 bytes, the rest of the header, then as
		// any other; afterwards its metadata is back.
		{"stripped/", 1, 5, RewrapAllResponse{Rotated: 1, Done: true}},
		{"stripped/", 1, 1, RewrapAllResponse{AlreadyRotated: 1, Done: true}},
	} {
		f.wire.Reset()
		resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Prefix: tc.prefix})
		if err != nil || resp != tc.resp {
			t.Fatalf("%s: %+v, %v; want %+v", tc.prefix, resp, err, tc.resp)
		}
		got := f.wire.Requests.Load() - 1 // the listing
		if got != tc.perBlob*int64(tc.count) {
			t.Errorf("%s (%+v): %d requests for %d blobs, want %d each (%v)", tc.prefix, tc.resp, got, tc.count, tc.perBlob, f.wire)
		}
		t.Logf("%-10s %-28s %.1f requests per blob, %.0f bytes received", tc.prefix, fmt.Sprintf("%+v", tc.resp), float64(got)/float64(tc.count), float64(f.wire.Received.Load())/float64(tc.count))
	}
}

// TestRewrapAllStrippedMetadata is the regression test of a geoseal object
// whose metadata was removed: it used to be skipped as "not a geoseal
// object", staying under the old key.
func TestRewrapAllStrippedMetadata(t *testing.T) {
	f := newFixture(t, &ClientOptions{BlockSize: testBlock})
	ctx := context.Background()
	pt := randomBytes(3*testBlock + 7)
	f.upload(t, "doc", pt, &UploadOptions{ChunkSize: testChunk, Metadata: map[string]*string{"owner": to.Ptr("carol")}})
	if _, err := f.plain.NewBlobClient("doc").SetMetadata(ctx, map[string]*string{"owner": to.Ptr("carol")}, nil); err != nil {
		t.Fatal(err)
	}
	newKR := formattest.NewAES(t)
	if _, err := f.client.RewrapAll(ctx, newKR, nil); err != nil {
		t.Fatal(err)
	}
	if ids := f.headerKeys(t, "doc"); !slices.Equal(ids, []string{newKR.KeyID()}) {
		t.Fatalf("the stripped object is wrapped for %q, want only the new key", ids)
	}
	_, md := f.rawBlob(t, "doc")
	if formatOf(md) != FormatGeoseal || mdGet(md, "owner") != "carol" {
		t.Fatalf("metadata after the rotation: %v", md)
	}
	got, err := downloadRange(f.newClient(t, newKR, nil), "doc", testBlock+5, 2*testChunk, nil)
	if err != nil || !bytes.Equal(got, pt[testBlock+5:testBlock+5+2*testChunk]) {
		t.Fatalf("ranged read with the restored metadata: %v", err)
	}
}

// TestRewrapAllSnapshots is the regression test of snapshots: a snapshot
// taken before a rotation still opens with the old key, and used to go
// unmentioned.
func TestRewrapAllSnapshots(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.upload(t, "doc", []byte("revision A"), nil)
	f.upload(t, "other", []byte("no snapshots"), nil)
	snap, err := f.plain.NewBlobClient("doc").CreateSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	newKR := formattest.NewAES(t)
	var first outcomes
	resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Results: first.record})
	if err != nil || resp != (RewrapAllResponse{Rotated: 2, OutsideKeys: 1, Done: true}) {
		t.Fatalf("RewrapAll: %+v, %v", resp, err)
	}
	if r := first.m["doc@"+*snap.Snapshot]; r.Outcome != OutcomeOutsideKeys || !slices.Equal(r.KeyIDs, []string{f.kr.KeyID()}) {
		t.Fatalf("the snapshot is reported as %+v", r)
	}
	// Why it matters: the snapshot still opens with the old key.
	sb, _ := f.plain.NewBlobClient("doc").WithSnapshot(*snap.Snapshot)
	raw, err := sb.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(raw.Body)
	raw.Body.Close()
	if pt, err := decryptBytes(f.kr, buf.Bytes()); err != nil || string(pt) != "revision A" {
		t.Fatalf("the snapshot under the old key: %q, %v", pt, err)
	}

	// A snapshot taken after the rotation is under the new key: kept.
	later, err := f.plain.NewBlobClient("doc").CreateSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var second outcomes
	resp, err = f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{DeleteSnapshots: true, Results: second.record})
	if err != nil || resp != (RewrapAllResponse{AlreadyRotated: 3, Deleted: 1, Done: true}) {
		t.Fatalf("RewrapAll with DeleteSnapshots: %+v, %v (%v)", resp, err, second.m)
	}
	if second.of("doc@"+*snap.Snapshot) != OutcomeDeleted || second.of("doc@"+*later.Snapshot) != OutcomeAlreadyRotated {
		t.Fatalf("outcomes: %v", second.m)
	}
	var left []string
	for _, it := range listWithSnapshots(t, f.plain) {
		if it.Snapshot != nil {
			left = append(left, *it.Snapshot)
		}
	}
	if !slices.Equal(left, []string{*later.Snapshot}) {
		t.Fatalf("snapshots left: %q, want only %q", left, *later.Snapshot)
	}
}

// TestRewrapAll429Storm is the regression test of a throttling vault: 60
// consecutive 429s used to make about one blob in twenty fail while the
// run went on at full speed. The shared back-off now loses none.
func TestRewrapAll429Storm(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	s := kvtest.NewServer(t)
	s.CreateRSAKey("old", 2048)
	kv, err := keyring.NewKeyVault(ctx, s.KeyURL("old"), s.Credential(), &keyring.KeyVaultOptions{ClientOptions: s.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	client := f.newClient(t, kv, nil)
	const n = 200
	uploadMany(t, client, "storm/", n, 64)
	newKR := formattest.NewAES(t)
	s.ResetCounts()
	s.FailNext(60, http.StatusTooManyRequests)
	var got outcomes
	resp, err := client.RewrapAll(ctx, newKR, &RewrapAllOptions{Results: got.record})
	if err != nil || resp.Rotated != n || resp.Failed != 0 {
		t.Fatalf("RewrapAll in a 429 storm: %+v, %v", resp, err)
	}
	c := s.Counts()
	if c.Injected != 60 || c.UnwrapKey != n {
		t.Errorf("vault saw %d injected failures and %d unwraps, want 60 and %d", c.Injected, c.UnwrapKey, n)
	}
	for i := range n {
		if ids := f.headerKeys(t, fmt.Sprintf("storm/%04d", i)); !slices.Equal(ids, []string{newKR.KeyID()}) {
			t.Fatalf("storm/%04d is wrapped for %q", i, ids)
		}
	}
}

// uploadMany uploads n small objects named prefix%04d, conc at a time.
func uploadMany(t testing.TB, c *Client, prefix string, n, conc int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, conc)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := c.Upload(context.Background(), fmt.Sprintf("%s%04d", prefix, i), bytes.NewReader([]byte(fmt.Sprintf("object %d", i))), nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRewrapAllCancelCommitted cancels a rotation while its first commit
// is on the wire and loses the response: the blob was committed, and it is
// reported as rotated, never as failed; the blobs not yet started are not
// reported at all.
func TestRewrapAllCancelCommitted(t *testing.T) {
	f := newFixture(t, nil)
	for i := range 5 {
		f.upload(t, fmt.Sprintf("c/%d", i), []byte("x"), nil)
	}
	ctx := cancelInFirstCommit(t, f.wire)
	newKR := formattest.NewAES(t)
	var got outcomes
	resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Concurrency: 1, Results: got.record})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RewrapAll cancelled: %v", err)
	}
	if resp.Rotated != 1 || resp.Failed != 0 || got.n != 1 || got.of("c/0") != OutcomeRotated {
		t.Fatalf("after a cancel during the first commit: %+v, results %v", resp, got.m)
	}
	if ids := f.headerKeys(t, "c/0"); !slices.Equal(ids, []string{newKR.KeyID()}) {
		t.Fatalf("c/0 is wrapped for %q", ids)
	}
}
