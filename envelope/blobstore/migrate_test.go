package blobstore

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/internal/pysdk"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
	"go.uber.org/goleak"
)

// migrationFixture is a container with Azure client-side encrypted blobs
// (testdata/csev2.json's) and a client that can read them.
type migrationFixture struct {
	*fixture
	kek      csev2.KeyEncryptionKey
	blobs    map[int]cseBlob // by plaintext size
	resolver *countingResolver
	kr       *countingKeyring // the client's keyring: wraps the new objects
	client   *Client
}

func newMigrationFixture(t *testing.T) *migrationFixture {
	t.Helper()
	f := newFixture(t, nil)
	kek, blobs := loadCSE(t)
	m := &migrationFixture{fixture: f, kek: kek, blobs: map[int]cseBlob{}, resolver: &countingResolver{KeyResolver: csev2.Keys(kek)}, kr: counting(f.kr)}
	for _, b := range blobs {
		m.blobs[b.Size] = b
	}
	m.client = f.newClient(t, m.kr, &ClientOptions{CSEv2: m.resolver})
	return m
}

// cseBlobOptions are what an SDK's upload may have set besides the
// encryption.
type cseBlobOptions struct {
	metadata    map[string]*string
	tags        map[string]string
	contentType string
}

// putCSE stores the CSE v2 test blob of the given size as name, with o's
// metadata, tags and content type, in one Put Blob as the SDKs do for small
// blobs.
func (m *migrationFixture) putCSE(t testing.TB, name string, size int, o cseBlobOptions) {
	t.Helper()
	b, ok := m.blobs[size]
	if !ok {
		t.Fatalf("no %d-byte CSE v2 test blob", size)
	}
	m.putEncrypted(t, name, b.Ciphertext, b.EncryptionData, o)
}

func (m *migrationFixture) putEncrypted(t testing.TB, name string, body []byte, encryptionData string, o cseBlobOptions) {
	t.Helper()
	md := map[string]*string{csev2.MetadataKey: to.Ptr(encryptionData)}
	for k, v := range o.metadata {
		md[k] = v
	}
	opts := &blockblob.UploadBufferOptions{Metadata: md, Tags: o.tags}
	if o.contentType != "" {
		opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &o.contentType}
	}
	if _, err := m.plain.NewBlockBlobClient(name).UploadBuffer(context.Background(), body, opts); err != nil {
		t.Fatal(err)
	}
}

// stored is a blob as the service holds it.
type stored struct {
	etag        azcore.ETag
	data        []byte
	metadata    map[string]*string
	contentType string
	tags        map[string]string
}

func (f *fixture) stored(t testing.TB, name string) stored {
	t.Helper()
	ctx := context.Background()
	resp, err := f.plain.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	s := stored{etag: *resp.ETag, data: data, metadata: resp.Metadata}
	if resp.ContentType != nil {
		s.contentType = *resp.ContentType
	}
	tags, err := getTags(ctx, f.plain.NewBlockBlobClient(name))
	if err != nil {
		t.Fatal(err)
	}
	s.tags = tags
	return s
}

func (s stored) hasEncryptionData() bool {
	_, ok := metadataValue(s.metadata, csev2.MetadataKey)
	return ok
}

// same reports whether the blob is exactly as it was: bytes, ETag and
// metadata.
func (s stored) same(o stored) bool {
	return s.etag == o.etag && bytes.Equal(s.data, o.data) && mdGet(s.metadata, csev2.MetadataKey) == mdGet(o.metadata, csev2.MetadataKey)
}

// TestMigrate converts CSE v2 blobs in place: each opens as a geoseal
// object (with a client that cannot read CSE v2) with the same plaintext,
// keeps its metadata, tags and content type, and loses "encryptiondata";
// blobs of other formats are not touched. A rerun converts nothing, asks
// no key and writes nothing.
func TestMigrate(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	sizes := []int{0, 1, 5000, 100000}
	for _, n := range sizes {
		m.putCSE(t, fmt.Sprintf("v2/%d", n), n, cseBlobOptions{
			metadata:    map[string]*string{"project": to.Ptr("x-57"), "Owner": to.Ptr("cad team")},
			tags:        map[string]string{"program": "p7"},
			contentType: "model/step",
		})
	}
	m.putRaw(t, "plain/readme", []byte("not encrypted"), map[string]*string{"kind": to.Ptr("notes")})
	m.upload(t, "geoseal/object", []byte("already geoseal"), nil)
	untouched := map[string]stored{"plain/readme": m.stored(t, "plain/readme"), "geoseal/object": m.stored(t, "geoseal/object")}

	m.wire.Reset()
	var got outcomes
	resp, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Results: got.record})
	if err != nil || resp.Migrated != 4 || resp.NotMigrated != 2 || resp.Failed != 0 || !resp.Done {
		t.Fatalf("Migrate: %+v, %v", resp, err)
	}
	// A converted blob costs the GET of the old blob and an Upload: the
	// HEAD that pins it, a header block, one body block and the commit.
	if puts, reqs := m.wire.Puts.Load(), m.wire.Requests.Load(); puts != 3*4 || reqs > 1+5*4 {
		t.Errorf("Migrate made %d requests, %d PUTs (%v); want one listing and at most 5 per converted blob, 3 of them PUTs", reqs, puts, m.wire)
	}
	t.Logf("4 blobs converted, 2 left: %v", m.wire)
	if w := m.kr.wraps.Load(); w != 4 || m.resolver.n.Load() != 4 {
		t.Errorf("%d wraps and %d key lookups for 4 blobs", w, m.resolver.n.Load())
	}

	reader := m.newClient(t, m.fixture.kr, nil) // reads geoseal objects only
	for _, n := range sizes {
		name := fmt.Sprintf("v2/%d", n)
		r := got.m[name]
		if r.Outcome != OutcomeMigrated || r.Format != FormatCSEv2 || r.Err != nil || !slices.Equal(r.KeyIDs, []string{m.fixture.kr.KeyID()}) {
			t.Errorf("%s: %+v", name, r)
		}
		pt, err := download(reader, name, nil)
		if err != nil || !bytes.Equal(pt, csePlaintext(n)) {
			t.Fatalf("%s after migration: %v (%d bytes, want %d)", name, err, len(pt), n)
		}
		s := m.stored(t, name)
		if s.hasEncryptionData() {
			t.Errorf("%s keeps its encryptiondata", name)
		}
		if mdGet(s.metadata, "project") != "x-57" || mdGet(s.metadata, "owner") != "cad team" || mdGet(s.metadata, metaVersion) != metaVersionValue {
			t.Errorf("%s metadata: %v", name, s.metadata)
		}
		if s.contentType != "model/step" || s.tags["program"] != "p7" || len(s.tags) != 1 {
			t.Errorf("%s: content type %q, tags %v", name, s.contentType, s.tags)
		}
	}
	for name, before := range untouched {
		if r := got.m[name]; r.Outcome != OutcomeNotMigrated {
			t.Errorf("%s: %+v", name, r)
		}
		if !m.stored(t, name).same(before) {
			t.Errorf("%s was changed", name)
		}
	}
	if got.m["plain/readme"].Format != FormatNotEncrypted || got.m["geoseal/object"].Format != FormatGeoseal {
		t.Errorf("formats reported: %+v", got.m)
	}

	// A rerun: everything is a geoseal object or not encrypted.
	m.wire.Reset()
	m.kr.wraps.Store(0)
	m.resolver.n.Store(0)
	resp, err = m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2, FormatCSEv1}})
	if err != nil || resp.Migrated != 0 || resp.NotMigrated != 6 {
		t.Fatalf("rerun: %+v, %v", resp, err)
	}
	if m.wire.Requests.Load() != 1 || m.kr.wraps.Load() != 0 || m.resolver.n.Load() != 0 {
		t.Errorf("rerun: %v, %d wraps, %d key lookups; want the listing only", m.wire, m.kr.wraps.Load(), m.resolver.n.Load())
	}
}

// TestMigrateDryRun: a dry run reports what it would convert from the
// listing and changes nothing: no request but the listing, no key asked.
func TestMigrateDryRun(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	for _, n := range []int{1, 100000} {
		m.putCSE(t, fmt.Sprintf("v2/%d", n), n, cseBlobOptions{})
	}
	m.putRaw(t, "plain", []byte("plain"), nil)
	before := map[string]stored{}
	for _, name := range []string{"v2/1", "v2/100000", "plain"} {
		before[name] = m.stored(t, name)
	}

	m.wire.Reset()
	var got outcomes
	resp, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, DryRun: true, Results: got.record})
	if err != nil || resp.WouldMigrate != 2 || resp.NotMigrated != 1 || resp.Migrated != 0 {
		t.Fatalf("dry run: %+v, %v", resp, err)
	}
	if got.of("v2/1") != OutcomeWouldMigrate || got.of("v2/100000") != OutcomeWouldMigrate || got.of("plain") != OutcomeNotMigrated {
		t.Errorf("dry run outcomes: %+v", got.m)
	}
	if m.wire.Requests.Load() != 1 || m.wire.Gets.Load() != 1 || m.kr.calls() != 0 || m.resolver.n.Load() != 0 {
		t.Errorf("dry run: %v, %d key calls, %d key lookups; want one listing GET and nothing else", m.wire, m.kr.calls(), m.resolver.n.Load())
	}
	for name, b := range before {
		if !m.stored(t, name).same(b) {
			t.Errorf("the dry run changed %s", name)
		}
	}
	// A dry run writes no checkpoint either.
	if _, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, DryRun: true, Job: "j"}); err == nil {
		t.Error("a dry run with a Job: no error")
	}
}

// TestMigrateOptions: what Migrate refuses before any request.
func TestMigrateOptions(t *testing.T) {
	m := newMigrationFixture(t)
	noKeys := m.newClient(t, m.fixture.kr, nil)
	for _, tc := range []struct {
		name   string
		client *Client
		opts   *MigrateOptions
		want   error
	}{
		{"no From", m.client, nil, nil},
		{"geoseal is no source", m.client, &MigrateOptions{From: []string{FormatGeoseal}}, nil},
		{"no CSE key resolver", noKeys, &MigrateOptions{From: []string{FormatCSEv2}}, ErrCSEv2NotConfigured},
		{"bad shard", m.client, &MigrateOptions{From: []string{FormatCSEv2}, Shard: 2, Shards: 2}, nil},
		{"bad job name", m.client, &MigrateOptions{From: []string{FormatCSEv2}, Job: "../x"}, nil},
		{"negative rate", m.client, &MigrateOptions{From: []string{FormatCSEv2}, KMSRate: -1}, nil},
		{"negative concurrency", m.client, &MigrateOptions{From: []string{FormatCSEv2}, Concurrency: -1}, nil},
		{"too much concurrency", m.client, &MigrateOptions{From: []string{FormatCSEv2}, Concurrency: maxConcurrency + 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.wire.Reset()
			_, err := tc.client.Migrate(context.Background(), tc.opts)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Migrate: %v, want an error (matching %v)", err, tc.want)
			}
			if n := m.wire.Requests.Load(); n != 0 {
				t.Errorf("%d requests before the refusal", n)
			}
		})
	}
}

// TestMigrateConcurrentChange: a writer that replaces a blob while it is
// being converted is never overwritten, whether it writes between the read
// of the old blob and the upload (where only the condition on the read's
// ETag sees it) or while the upload stages. Changed once, the blob is
// converted from the writer's version; changed at every attempt, it is
// reported with ErrBlobChanged and the writer's version stands.
func TestMigrateConcurrentChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		always bool
		when   string // the request of the upload the writer goes before
	}{
		{"once, before the upload", false, http.MethodHead},
		{"every attempt, before the upload", true, http.MethodHead},
		{"once, while staging", false, http.MethodPut},
		{"every attempt, while staging", true, http.MethodPut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMigrationFixture(t)
			ctx := context.Background()
			m.putCSE(t, "race", 100000, cseBlobOptions{})
			m.putCSE(t, "calm", 5000, cseBlobOptions{})
			// The other writer stores another CSE v2 blob (of 5000 bytes)
			// just as a conversion of "race", having read it, pins it
			// (HEAD) or stages its first block (PUT).
			var armed atomic.Bool
			var raced atomic.Int32
			m.wire.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
				if strings.HasSuffix(req.URL.Path, "/race") {
					switch {
					case req.Method == http.MethodGet && req.URL.RawQuery == "":
						armed.Store(tc.always || raced.Load() == 0)
					case req.Method == tc.when && (tc.when == http.MethodHead || req.URL.Query().Get("comp") == "block") && armed.Swap(false):
						raced.Add(1)
						m.putCSE(t, "race", 5000, cseBlobOptions{metadata: map[string]*string{"writer": to.Ptr(fmt.Sprint(raced.Load()))}})
					}
				}
				return send(req)
			})
			var got outcomes
			_, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Concurrency: 1, Results: got.record})
			m.wire.Intercept(nil)
			if got.of("calm") != OutcomeMigrated {
				t.Fatalf("calm: %+v", got.m["calm"])
			}
			r := got.m["race"]
			if !tc.always {
				// Converted, from the writer's version.
				if err != nil || r.Outcome != OutcomeMigrated || raced.Load() != 1 {
					t.Fatalf("race: %+v, %v (raced %d times)", r, err, raced.Load())
				}
				pt, err := download(m.client, "race", nil)
				if err != nil || !bytes.Equal(pt, csePlaintext(5000)) {
					t.Fatalf("race after migration: %v, %d bytes; want the writer's 5000", err, len(pt))
				}
				if s := m.stored(t, "race"); mdGet(s.metadata, "writer") != "1" || s.hasEncryptionData() {
					t.Errorf("race metadata: %v", s.metadata)
				}
				return
			}
			if r.Outcome != OutcomeFailed || !errors.Is(r.Err, ErrBlobChanged) || !errors.Is(err, ErrBlobChanged) || raced.Load() != 2 {
				t.Fatalf("race: %+v, %v (raced %d times); want a failure matching ErrBlobChanged after 2 attempts", r, err, raced.Load())
			}
			s := m.stored(t, "race")
			if mdGet(s.metadata, "writer") != "2" || !bytes.Equal(s.data, m.blobs[5000].Ciphertext) || !s.hasEncryptionData() {
				t.Fatalf("the writer's last version is not what is stored: metadata %v, %d bytes", s.metadata, len(s.data))
			}
		})
	}
}

// TestMigrateFailures: a blob that cannot be converted is reported with a
// typed error and left exactly as it was; the others are converted.
func TestMigrateFailures(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	big := m.blobs[100000]
	m.putCSE(t, "good", 100000, cseBlobOptions{})

	// A region in the middle (of 25 of 4096 bytes) modified.
	tampered := bytes.Clone(big.Ciphertext)
	tampered[10*(4096+csev2.Overhead)+100] ^= 1
	m.putEncrypted(t, "tampered", tampered, big.EncryptionData, cseBlobOptions{})
	// Cut inside the last region's nonce.
	m.putEncrypted(t, "cut", big.Ciphertext[:24*(4096+csev2.Overhead)+20], big.EncryptionData, cseBlobOptions{})
	// Its key is one the resolver does not have.
	ed, err := csev2.ParseEncryptionData([]byte(big.EncryptionData))
	if err != nil {
		t.Fatal(err)
	}
	other := *ed
	other.WrappedContentKey.KeyID = "local:someone-else"
	js, _ := other.Marshal()
	m.putEncrypted(t, "unknown-key", big.Ciphertext, string(js), cseBlobOptions{})
	// Its wrapped key does not unwrap under the key its metadata names.
	forged := *ed
	forged.WrappedContentKey.EncryptedKey = bytes.Clone(ed.WrappedContentKey.EncryptedKey)
	forged.WrappedContentKey.EncryptedKey[7] ^= 1
	js, _ = forged.Marshal()
	m.putEncrypted(t, "forged-key", big.Ciphertext, string(js), cseBlobOptions{})
	// Metadata that is no client-side encryption this package reads.
	m.putEncrypted(t, "malformed", big.Ciphertext, `{"EncryptionAgent":{"Protocol":"3.0"}}`, cseBlobOptions{})
	// Whole, but its body ends early in transit, at a region boundary
	// (where CSE v2 cannot see a cut), without the transport noticing.
	m.putCSE(t, "cut-in-transit", 100000, cseBlobOptions{})
	m.wire.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		resp, err := send(req)
		if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/cut-in-transit") {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.LimitReader(resp.Body, 10*(4096+csev2.Overhead)), resp.Body}
		}
		return resp, err
	})
	defer m.wire.Intercept(nil)

	failing := map[string]error{
		"tampered":       csev2.ErrAuthentication,
		"cut":            csev2.ErrTruncated,
		"unknown-key":    csev2.ErrKeyNotFound,
		"forged-key":     csev2.ErrUnwrap,
		"malformed":      ErrNotGeoseal,
		"cut-in-transit": csev2.ErrTruncated,
	}
	before := map[string]stored{}
	for name := range failing {
		before[name] = m.stored(t, name)
	}
	// The reason csev2.ErrUnwrap does not give goes to the client's
	// Logger.
	var log bytes.Buffer
	c := m.newClient(t, m.kr, &ClientOptions{CSEv2: m.resolver, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	var got outcomes
	resp, err := c.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Results: got.record})
	if err == nil || resp.Migrated != 1 || resp.Failed != int64(len(failing)) {
		t.Fatalf("Migrate: %+v, %v", resp, err)
	}
	if got.of("good") != OutcomeMigrated {
		t.Errorf("good: %+v", got.m["good"])
	}
	for name, want := range failing {
		r := got.m[name]
		if r.Outcome != OutcomeFailed || !errors.Is(r.Err, want) {
			t.Errorf("%s: %+v, want a failure matching %v", name, r, want)
		}
		if !m.stored(t, name).same(before[name]) {
			t.Errorf("%s was changed by a failed migration", name)
		}
	}
	if !strings.Contains(log.String(), `"msg":"csev2 unwrap"`) || !strings.Contains(log.String(), `"outcome":"failed","reason":"key-encryption key: `) {
		t.Errorf("the Logger got no reason for the forged key:\n%s", log.String())
	}
}

// TestMigrateGuardRefusal: a guard that refuses the account stops the
// migration before its first request.
func TestMigrateGuardRefusal(t *testing.T) {
	m := newMigrationFixture(t)
	m.putCSE(t, "v2", 5000, cseBlobOptions{})
	before := m.stored(t, "v2")
	guard := itarRefusingGuard(t)
	c, err := NewClient(m.container, m.kr, guard, &ClientOptions{CSEv2: m.resolver})
	if err != nil {
		t.Fatal(err)
	}
	m.wire.Reset()
	_, err = c.Migrate(context.Background(), &MigrateOptions{From: []string{FormatCSEv2}})
	var v *region.Violation
	if !errors.As(err, &v) {
		t.Fatalf("Migrate: %v, want a *region.Violation", err)
	}
	if m.wire.Requests.Load() != 0 || m.wire.Sent.Load() != 0 || m.kr.calls() != 0 || m.resolver.n.Load() != 0 {
		t.Fatalf("a refused migration: %v, %d key calls, %d key lookups; want nothing", m.wire, m.kr.calls(), m.resolver.n.Load())
	}
	if !m.stored(t, "v2").same(before) {
		t.Fatal("a refused migration changed the blob")
	}
}

// TestMigrateSnapshots: a snapshot keeps the old encryption and is
// reported; with DeleteSnapshots it is deleted once its blob is a geoseal
// object, in the run that converts it or a later one.
func TestMigrateSnapshots(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		m.putCSE(t, name, 5000, cseBlobOptions{})
		if _, err := m.plain.NewBlobClient(name).CreateSnapshot(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got outcomes
	resp, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Prefix: "a", Results: got.record})
	if err != nil || resp.Migrated != 1 || resp.OldCopies != 1 {
		t.Fatalf("Migrate: %+v, %v (%+v)", resp, err, got.m)
	}
	resp, err = m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, DeleteSnapshots: true})
	if err != nil || resp.Migrated != 1 || resp.NotMigrated != 1 || resp.Deleted != 2 || resp.OldCopies != 0 {
		t.Fatalf("Migrate with DeleteSnapshots: %+v, %v", resp, err)
	}
	for _, it := range listWithSnapshots(t, m.plain) {
		if it.Snapshot != nil {
			t.Errorf("snapshot %s of %s left", *it.Snapshot, *it.Name)
		}
	}
}

// TestMigrateKeepsTier: an explicit access tier survives the conversion.
func TestMigrateKeepsTier(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	m.putCSE(t, "cool", 5000, cseBlobOptions{})
	if _, err := m.plain.NewBlobClient("cool").SetTier(ctx, blob.AccessTierCool, nil); err != nil {
		t.Fatal(err)
	}
	if resp, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}}); err != nil || resp.Migrated != 1 {
		t.Fatalf("Migrate: %+v, %v", resp, err)
	}
	p, err := m.plain.NewBlobClient("cool").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.AccessTier == nil || *p.AccessTier != string(blob.AccessTierCool) || p.AccessTierInferred != nil && *p.AccessTierInferred {
		t.Fatalf("tier after migration: %v (inferred %v)", p.AccessTier, p.AccessTierInferred)
	}
	if _, ok := metadataValue(p.Metadata, csev2.MetadataKey); ok {
		t.Fatal("encryptiondata kept")
	}
}

// TestMigrate429Storm: the new objects' keys are wrapped in a vault that
// throttles; the shared back-off loses no blob.
func TestMigrate429Storm(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	s := kvtest.NewServer(t)
	s.CreateOctHSMKey("new") // wraps in the vault, as a Managed HSM key does
	kv, err := keyring.NewKeyVault(ctx, s.KeyURL("new"), s.Credential(), &keyring.KeyVaultOptions{ClientOptions: s.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	c := m.newClient(t, kv, &ClientOptions{CSEv2: m.resolver})
	const n = 40
	for i := range n {
		m.putCSE(t, fmt.Sprintf("storm/%02d", i), 1, cseBlobOptions{})
	}
	s.ResetCounts()
	s.FailNext(30, http.StatusTooManyRequests)
	resp, err := c.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Concurrency: 8})
	if err != nil || resp.Migrated != n || resp.Failed != 0 {
		t.Fatalf("Migrate in a 429 storm: %+v, %v", resp, err)
	}
	if got := s.Counts(); got.Injected != 30 || got.WrapKey != n {
		t.Errorf("vault saw %d injected failures and %d wraps, want 30 and %d", got.Injected, got.WrapKey, n)
	}
	for i := range n {
		if ids := m.headerKeys(t, fmt.Sprintf("storm/%02d", i)); !slices.Equal(ids, keyring.KeyIDs(kv)) {
			t.Fatalf("storm/%02d is wrapped for %q", i, ids)
		}
	}
}

// TestMigratePython converts what the Python SDK wrote, CSE v1 and v2,
// single put and chunked: migrating from v2 alone leaves the v1 blobs,
// from v1 too converts them with the no-integrity warning. A v1 blob
// whose padding is broken is reported and left as it was. In FIPS
// 140-only mode the blobs under a local A256KW key are refused with
// csev2.ErrNotApproved and left as they were.
func TestMigratePython(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	pysdk.Require(t)
	aes, rsa, resolver := cseKEKs(t)
	var blobs []pysdk.Blob
	for _, v := range []string{pysdk.V1, pysdk.V2} {
		for _, kek := range []pysdk.KEK{aes, rsa} {
			for _, c := range []struct {
				size    int
				chunked bool
			}{{0, false}, {17, false}, {100000, true}, {4<<20 + 5, true}} {
				if kek == aes && c.size > 100000 {
					continue
				}
				blobs = append(blobs, pysdk.Blob{
					Name:      fmt.Sprintf("%s/%s/%d", v, kek.Algorithm(), c.size),
					Plaintext: randomBytes(c.size), Version: v, KEK: kek, Chunked: c.chunked,
					Metadata: map[string]string{"source": "python"}, Tags: map[string]string{"v": v},
				})
			}
		}
	}
	blobs = append(blobs, pysdk.Blob{Name: "plain", Plaintext: []byte("plain"), Metadata: map[string]string{"source": "python"}})
	pysdk.Upload(t, f.srv.ConnectionString(), f.containerName(), blobs)
	raw, md := f.rawBlob(t, "1.0/RSA-OAEP-256/17")
	raw[len(raw)-17] ^= 0x80
	f.putRaw(t, "1.0/broken-padding", raw, md)
	broken := f.stored(t, "1.0/broken-padding")
	plain := f.stored(t, "plain")

	local := func(b pysdk.Blob) bool { return b.KEK == aes && fips140.Enforced() }
	c := f.newClient(t, f.kr, &ClientOptions{CSEv2: resolver})
	var got outcomes
	if _, err := c.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Results: got.record}); err != nil && !fips140.Enforced() {
		t.Fatalf("Migrate from v2: %v", err)
	}
	for _, b := range blobs {
		want := OutcomeNotMigrated
		if b.Version == pysdk.V2 {
			want = OutcomeMigrated
			if local(b) {
				want = OutcomeFailed
			}
		}
		if r := got.m[b.Name]; r.Outcome != want {
			t.Errorf("from v2: %s: %+v, want %s", b.Name, r, want)
		}
	}

	got = outcomes{}
	_, err := c.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv1, FormatCSEv2}, Results: got.record})
	if !errors.Is(err, csev2.ErrV1Decrypt) && !fips140.Enforced() {
		t.Fatalf("Migrate from v1 and v2: %v, want the broken padding's csev2.ErrV1Decrypt", err)
	}
	reader := f.newClient(t, f.kr, nil)
	for _, b := range blobs {
		r := got.m[b.Name]
		s := f.stored(t, b.Name)
		switch {
		case b.Version == "":
			if r.Outcome != OutcomeNotMigrated || !s.same(plain) {
				t.Errorf("%s: %+v, changed: %v", b.Name, r, !s.same(plain))
			}
			continue
		case local(b):
			if r.Outcome != OutcomeFailed || !errors.Is(r.Err, csev2.ErrNotApproved) || !s.hasEncryptionData() {
				t.Errorf("%s in FIPS 140-only mode: %+v", b.Name, r)
			}
			continue
		case b.Version == pysdk.V1:
			if r.Outcome != OutcomeMigrated || r.Format != FormatCSEv1 || !errors.Is(r.Err, ErrNoIntegrity) {
				t.Errorf("%s: %+v, want migrated with ErrNoIntegrity", b.Name, r)
			}
		default: // converted by the first run
			if r.Outcome != OutcomeNotMigrated || r.Format != FormatGeoseal {
				t.Errorf("%s: %+v", b.Name, r)
			}
		}
		pt, err := download(reader, b.Name, nil)
		if err != nil || !bytes.Equal(pt, b.Plaintext) {
			t.Fatalf("%s after migration: %v (%d bytes, want %d)", b.Name, err, len(pt), len(b.Plaintext))
		}
		if s.hasEncryptionData() || mdGet(s.metadata, "source") != "python" || s.tags["v"] != b.Version {
			t.Errorf("%s: metadata %v, tags %v", b.Name, s.metadata, s.tags)
		}
	}
	if r := got.m["1.0/broken-padding"]; r.Outcome != OutcomeFailed || !errors.Is(r.Err, csev2.ErrV1Decrypt) || !f.stored(t, "1.0/broken-padding").same(broken) {
		t.Errorf("broken padding: %+v", r)
	}
}

// TestMigrateCancel cancels a migration while its first commit is on the
// wire and loses the response: that blob was committed, and is reported
// as migrated, never as failed; the blobs not yet started are not reported
// and stay as they were; no goroutine is left behind.
func TestMigrateCancel(t *testing.T) {
	m := newMigrationFixture(t)
	for i := range 5 {
		m.putCSE(t, fmt.Sprintf("c/%d", i), 5000, cseBlobOptions{})
	}
	before := goleak.IgnoreCurrent()
	ctx := cancelInFirstCommit(t, m.wire)
	var got outcomes
	resp, err := m.client.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Concurrency: 1, Results: got.record})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate cancelled: %v", err)
	}
	if resp.Migrated != 1 || resp.Failed != 0 || got.n != 1 || got.of("c/0") != OutcomeMigrated {
		t.Fatalf("after a cancel during the first commit: %+v, results %v", resp, got.m)
	}
	if s := m.stored(t, "c/0"); s.hasEncryptionData() || mdGet(s.metadata, metaVersion) != metaVersionValue {
		t.Fatalf("c/0 after the cancelled migration: %v", s.metadata)
	}
	for i := 1; i < 5; i++ {
		if s := m.stored(t, fmt.Sprintf("c/%d", i)); !bytes.Equal(s.data, m.blobs[5000].Ciphertext) {
			t.Errorf("c/%d was changed", i)
		}
	}
	m.transport.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// TestMigrateSealNames: a client that seals names converts in place too:
// the blob keeps its stored name and clear metadata, and opens through a
// client without SealNames.
func TestMigrateSealNames(t *testing.T) {
	m := newMigrationFixture(t)
	ctx := context.Background()
	m.putCSE(t, "legacy/part.step", 5000, cseBlobOptions{metadata: map[string]*string{"project": to.Ptr("x-57")}})
	sealing := m.newClient(t, m.kr, &ClientOptions{CSEv2: m.resolver, SealNames: true})
	var got outcomes
	resp, err := sealing.Migrate(ctx, &MigrateOptions{From: []string{FormatCSEv2}, Prefix: "legacy/", Results: got.record})
	if err != nil || resp.Migrated != 1 || got.of("legacy/part.step") != OutcomeMigrated {
		t.Fatalf("Migrate with SealNames: %+v, %v (%v)", resp, err, got.m)
	}
	pt, err := download(m.newClient(t, m.fixture.kr, nil), "legacy/part.step", nil)
	if err != nil || !bytes.Equal(pt, csePlaintext(5000)) {
		t.Fatalf("the converted blob under its own name: %v", err)
	}
	if s := m.stored(t, "legacy/part.step"); mdGet(s.metadata, "project") != "x-57" || s.hasEncryptionData() {
		t.Fatalf("metadata: %v", s.metadata)
	}
}
