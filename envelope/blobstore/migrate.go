package blobstore

import (
	"context"
	"crypto/aes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// Migration: Migrate converts the blobs of a container that the Azure
// Storage SDKs encrypted client-side into geoseal objects, in place, over
// the container walker. Each blob is read (and, for CSE v2, authenticated)
// in one GET and written back with Upload, whose commit is conditional on
// the ETag the GET read: a blob changed meanwhile is never overwritten.

// Outcomes of Migrate, as WalkResult.Outcome reports them, besides
// OutcomeFailed and OutcomeDeleted.
const (
	// OutcomeMigrated: the blob was converted into a geoseal object;
	// WalkResult.Format is the format it had, KeyIDs the keys that wrap it
	// now (when the client's keyring tells them).
	OutcomeMigrated = "migrated"
	// OutcomeWouldMigrate: a dry run found a blob it would convert (from
	// the listing alone: nothing was read, unwrapped or written).
	OutcomeWouldMigrate = "would-migrate"
	// OutcomeNotMigrated: the blob is in none of the formats asked for
	// (already a geoseal object, not encrypted, or the other version of
	// client-side encryption; WalkResult.Format says which) and was left
	// alone.
	OutcomeNotMigrated = "not-migrated"
	// OutcomeOldCopy: a snapshot or previous version in a format the
	// migration converts. Snapshots and versions are immutable: it keeps
	// the old encryption, and opens with the old key, until it is deleted
	// (MigrateOptions.DeleteSnapshots).
	OutcomeOldCopy = "old-copy"
)

// ErrNoIntegrity is the warning of a blob converted from CSE v1: its
// WalkResult has OutcomeMigrated and an Err matching it. CSE v1 (AES-CBC)
// has no integrity protection, so nothing told a modified v1 blob from the
// one the SDK wrote: the geoseal object authenticates what the v1 blob
// decrypted to, which is only as trustworthy as the v1 blob was.
var ErrNoIntegrity = errors.New("blobstore: converted from Azure client-side encryption v1, which has no integrity protection: the geoseal object is only as trustworthy as the v1 blob was")

// errUnknownCSE is why Migrate fails a blob of FormatUnknown, whether the
// listing or the GET says so.
var errUnknownCSE = fmt.Errorf("%w: its %q metadata is not client-side encryption this package reads", ErrNotGeoseal, csev2.MetadataKey)

// MigrateOptions configure Migrate. From is required.
type MigrateOptions struct {
	// From lists the formats to convert: FormatCSEv2, FormatCSEv1 or
	// both. Blobs of other formats are left alone (OutcomeNotMigrated).
	// Naming FormatCSEv1 is what allows its blobs to be read, whatever
	// ClientOptions.ReadCSEv1 says: see ErrNoIntegrity.
	From []string

	// Prefix restricts the migration to blobs whose names start with it.
	Prefix string

	// Shard, Shards and Job split the container between workers and make
	// the migration resumable, as for RewrapAll: a rerun of a Job resumes
	// after its last checkpoint, and a blob converted before is a geoseal
	// object by then and left alone, so even without a Job a rerun
	// converts only what is left.
	Shard, Shards int
	Job           string

	// Concurrency is how many blobs are converted at once. Zero means
	// DefaultConcurrency. Each holds up to about 3 blocks of the upload
	// (see Upload) and one region of CSE v2 in memory.
	Concurrency int

	// KMSRate limits the key calls to KMSRate per second: the unwrap of
	// the old content key (resolved through ClientOptions.CSEv2) and the
	// wrap of the new data key with the client's keyring, one of each per
	// converted blob. Zero means no limit. A wrap the KMS throttles (429
	// or 503) makes every goroutine wait out one shared back-off, as in
	// RewrapAll; an unwrap of CSE cannot be told apart from other unwrap
	// failures (csev2.ErrUnwrap says nothing more, by design), so one that
	// is still throttled after the key client's own retries fails its
	// blob, which stays as it was for the next run.
	KMSRate float64

	// DryRun reports what would be converted (OutcomeWouldMigrate) from
	// the listing alone: no blob is read, no key is asked, nothing is
	// written. It cannot be combined with Job, whose checkpoints are
	// writes.
	DryRun bool

	// DeleteSnapshots deletes the snapshots and previous versions of a
	// converted blob that are in a format it converts (OutcomeOldCopy),
	// once the blob itself is converted: they keep the old encryption,
	// which for CSE v1 has no integrity. Off by default: they are
	// reported, never deleted unless asked.
	DeleteSnapshots bool

	// Results, when set, receives the outcome of every blob, snapshot and
	// version of the shard as soon as it is known, one call at a time.
	Results func(WalkResult)

	// PageSize bounds the blobs of one page of the listing, 1 to
	// MaxPageSize; zero means MaxPageSize. A Job is checkpointed after
	// each page: a rerun after a crash lists again only the page it
	// stopped in, whose blobs converted already are left alone without a
	// request.
	PageSize int
}

// MigrateResponse counts what a Migrate did. For a resumed job it includes
// what the earlier runs of the job recorded.
type MigrateResponse struct {
	// Migrated, WouldMigrate, NotMigrated and Failed count the blobs
	// (OutcomeMigrated...).
	Migrated, WouldMigrate, NotMigrated, Failed int64
	// OldCopies counts the snapshots and versions left in an old format,
	// Deleted those deleted (DeleteSnapshots).
	OldCopies, Deleted int64
	// Resumed reports a job that continued from its checkpoint; Done that
	// the shard was walked to its end.
	Resumed, Done bool
}

// Migrate converts, in place, the blobs of the container (or of its shard,
// or under its prefix) that are encrypted with the Azure Storage SDKs'
// client-side encryption in one of the formats of opts.From into geoseal
// objects: Microsoft's advice for CSE v1 blobs since CVE-2022-30187 is to
// download, decrypt and re-encrypt them, and CSE v2 has neither an
// encryption context nor authenticated metadata.
//
// The old content keys are unwrapped with the key-encryption keys that
// ClientOptions.CSEv2 resolves, under package csev2's rules (each key is
// asked only for the algorithms of its type, every unwrap failure is one
// csev2.ErrUnwrap, and in FIPS 140-only mode what the validated module
// cannot do is refused with csev2.ErrNotApproved); the new objects'
// data keys are wrapped with the client's keyring. For each blob of the
// shard, Migrate:
//
//   - reads it whole in one GET, conditional on the ETag the listing
//     gave, and decrypts it as it arrives (CSE v2 is authenticated region
//     by region; CSE v1 cannot be: see ErrNoIntegrity);
//   - uploads the plaintext as a geoseal object to the same name with
//     Upload, committed only if the blob still has that ETag, keeping its
//     user metadata (without the old "encryptiondata" entry), HTTP headers
//     (except a whole-blob Content-MD5, which no longer holds), index tags
//     and explicit access tier (set again after the commit);
//   - if anything fails — a key that does not unwrap, a region that does
//     not authenticate, a body cut short, another writer's change — it
//     commits nothing: the blob stays as it was, and is reported
//     (OutcomeFailed, with the error). A blob changed since it was listed
//     is looked at once more, as it is now; if it changes again, the
//     other writer's version stands and the blob is reported failed with
//     ErrBlobChanged.
//
// Its snapshots and previous versions cannot be converted: they are
// reported (OutcomeOldCopy) and, with DeleteSnapshots, deleted once the
// blob is converted. Soft-deleted copies and backups keep the old
// encryption until they expire.
//
// The blobs keep their names: under ClientOptions.SealNames too, Migrate
// works on stored names (Prefix is one, results give them) and writes the
// converted objects to the same names with their metadata in the clear, as
// a client without SealNames does; sealing the names of old blobs would
// rename them.
//
// The region guard is asked once before anything is read, and again by
// each Upload before its first byte: a refusal sends nothing. Outcomes
// stream to opts.Results and are counted in the response; memory does not
// grow with the container. The returned error, non-nil if any blob failed,
// carries the first failure (errors.Is and errors.As see it) and the
// count. A cancelled Migrate never reports as failed a blob it committed.
func (c *Client) Migrate(ctx context.Context, opts *MigrateOptions) (MigrateResponse, error) {
	if opts == nil {
		opts = &MigrateOptions{}
	}
	m, err := c.newMigration(opts)
	if err != nil {
		return MigrateResponse{}, err
	}
	spec := &walkSpec{
		op:          "migrate",
		params:      m.params(),
		prefix:      opts.Prefix,
		shard:       opts.Shard,
		shards:      opts.Shards,
		job:         opts.Job,
		concurrency: int(firstNonZero(int64(opts.Concurrency), DefaultConcurrency)),
		pageSize:    opts.PageSize,
		results:     m.record(opts.Results),
		visit:       m.visit,
	}
	if err := spec.check(); err != nil {
		return MigrateResponse{}, err
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return MigrateResponse{}, fmt.Errorf("blobstore: migration refused: %w", err)
	}
	sum, err := c.walk(ctx, spec)
	resp := MigrateResponse{
		Migrated:     sum.counts[OutcomeMigrated],
		WouldMigrate: sum.counts[OutcomeWouldMigrate],
		NotMigrated:  sum.counts[OutcomeNotMigrated],
		Failed:       sum.counts[OutcomeFailed],
		OldCopies:    sum.counts[OutcomeOldCopy],
		Deleted:      sum.counts[OutcomeDeleted],
		Resumed:      sum.resumed,
		Done:         sum.done,
	}
	if err != nil {
		return resp, err
	}
	return resp, m.failureError(resp.Failed, "migrated")
}

// A migration is one Migrate: what its visits share.
type migration struct {
	c      *Client // the client, its keyring paced
	from   []string
	keys   csev2.KeyResolver // paced
	target []string          // the keyring's key ids; nil: unknown
	dryRun bool
	delete bool
	failures
}

// newMigration checks opts and prepares the migration; nothing it refuses
// reaches the network.
func (c *Client) newMigration(opts *MigrateOptions) (*migration, error) {
	if len(opts.From) == 0 {
		return nil, errors.New("blobstore: Migrate needs MigrateOptions.From (FormatCSEv1, FormatCSEv2 or both)")
	}
	for _, f := range opts.From {
		if f != FormatCSEv1 && f != FormatCSEv2 {
			return nil, fmt.Errorf("blobstore: cannot migrate from %q (want %s or %s)", f, FormatCSEv1, FormatCSEv2)
		}
	}
	if opts.DryRun && opts.Job != "" {
		return nil, errors.New("blobstore: a dry run writes nothing, so it takes no Job (its checkpoints are writes)")
	}
	if c.opts.CSEv2 == nil && !opts.DryRun {
		return nil, fmt.Errorf("%w: Migrate reads the old blobs' keys through ClientOptions.CSEv2", ErrCSEv2NotConfigured)
	}
	pacer, err := newPacer(opts.KMSRate)
	if err != nil {
		return nil, err
	}
	// A client of its own, so that every wrap of the new data keys goes
	// through the pacer; it shares the container client and the guard. It
	// writes to the names it lists: sealing the names of old blobs would
	// rename them, which a conversion in place does not do.
	o := c.opts
	o.CSEv2, o.SealNames = nil, false
	mc, err := NewClient(c.container, pacedKeyring{Keyring: c.keyring, w: pacedWrapper{w: c.keyring, p: pacer}}, c.guard, &o)
	if err != nil {
		return nil, err
	}
	m := &migration{
		c:      mc,
		from:   slices.Compact(slices.Sorted(slices.Values(opts.From))),
		target: keyring.KeyIDs(c.keyring),
		dryRun: opts.DryRun,
		delete: opts.DeleteSnapshots,
	}
	if c.opts.CSEv2 != nil {
		m.keys = pacedResolver{r: c.opts.CSEv2, p: pacer}
	}
	return m, nil
}

// params is what a job must keep to resume: the formats and the target
// keys.
func (m *migration) params() string {
	return "from:" + strings.Join(m.from, ",") + ";" + keySetDigest(m.target)
}

// converts reports whether the migration converts blobs of format f.
func (m *migration) converts(f string) bool { return slices.Contains(m.from, f) }

// visit converts a blob, then reports (and with delete, deletes) its
// snapshots and previous versions that keep an old format.
func (m *migration) visit(ctx context.Context, g *blobGroup, report func(WalkResult)) {
	converted := false // the blob is a geoseal object now
	if g.base != nil {
		res, previous := m.migrate(ctx, g.base)
		if !reportDone(ctx, report, res) {
			return
		}
		converted = res.Outcome == OutcomeMigrated || res.Outcome == OutcomeNotMigrated && res.Format == FormatGeoseal
		// With versioning on, the commit kept the old blob as a previous
		// version.
		if previous != nil && !reportDone(ctx, report, m.judgeCopy(ctx, previous, converted)) {
			return
		}
	}
	for i := range g.copies {
		if !reportDone(ctx, report, m.judgeCopy(ctx, &g.copies[i], converted)) {
			return
		}
	}
}

// migrate converts one blob. When versioning kept the old blob as a
// previous version, it returns that version too.
func (m *migration) migrate(ctx context.Context, it *walkItem) (WalkResult, *walkItem) {
	res := it.result(OutcomeFailed)
	switch {
	case it.Format == FormatUnknown:
		res.Err = errUnknownCSE
		return res, nil
	case !m.converts(it.Format):
		res.Outcome = OutcomeNotMigrated
		return res, nil
	case m.dryRun:
		res.Outcome = OutcomeWouldMigrate
		if it.Format == FormatCSEv1 {
			res.Err = ErrNoIntegrity
		}
		return res, nil
	}
	src := &migrationSource{etag: it.ETag, tags: it.tags, tagCount: it.tagCount, tier: it.tier}
	res = m.convert(ctx, it, src)
	if errors.Is(res.Err, ErrBlobChanged) && ctx.Err() == nil {
		// Changed since it was listed (by the other writer of a race this
		// call lost, or since): look at it as it is now, once.
		src, err := m.current(ctx, it.Name)
		if err != nil {
			res.Err = err
			return res, nil
		}
		res = m.convert(ctx, it, src)
	}
	if res.Outcome != OutcomeMigrated || it.versionID == "" {
		return res, nil
	}
	previous := *it
	previous.current = false
	return res, &previous
}

// A migrationSource is the state of a blob a conversion starts from: what
// its commit is conditional on and what it must keep besides the metadata
// and HTTP headers the GET returns.
type migrationSource struct {
	etag     azcore.ETag
	tags     map[string]string // nil or incomplete: read them
	tagCount int
	tier     *blob.AccessTier // explicit, or nil
}

// current reads the state of the blob name as it is now (a HEAD).
func (m *migration) current(ctx context.Context, name string) (*migrationSource, error) {
	st, err := stat(ctx, m.c.container.NewBlobClient(name), nil)
	if err != nil {
		return nil, err
	}
	p := st.props
	src := &migrationSource{etag: st.etag, tier: explicitTier(p.AccessTier, p.AccessTierInferred)}
	if p.TagCount != nil {
		src.tagCount = int(*p.TagCount)
	}
	return src, nil
}

// convert reads the blob from src's state and uploads it as a geoseal
// object, conditional on that state.
func (m *migration) convert(ctx context.Context, it *walkItem, src *migrationSource) WalkResult {
	res := it.result(OutcomeFailed)
	bb := m.c.container.NewBlockBlobClient(it.Name)
	old, err := m.open(ctx, bb.BlobClient(), src.etag)
	if err != nil {
		res.Err = err
		return res
	}
	defer old.Close()
	res.Format = old.format
	switch {
	case old.format == FormatUnknown:
		res.Err = errUnknownCSE
		return res
	case !m.converts(old.format):
		// It changed into something else since it was listed.
		res.Outcome = OutcomeNotMigrated
		return res
	}
	if err := old.decrypt(ctx, m.keys, m.c.opts.Logger); err != nil {
		res.Err = err
		return res
	}
	tags := src.tags
	if src.tagCount > 0 {
		if tags, err = completeTags(ctx, bb, tags, src.tagCount); err != nil {
			res.Err = err
			return res
		}
	}
	_, err = m.c.Upload(ctx, it.Name, old, &UploadOptions{
		Metadata:         userMetadata(old.metadata),
		Tags:             tags,
		HTTPHeaders:      &old.headers,
		BlockSize:        migrationBlockSize(old.Size()),
		Concurrency:      migrationUploadConcurrency,
		AccessConditions: ifMatch(src.etag),
	})
	if err != nil {
		res.Err = err
		return res
	}
	res.Outcome, res.KeyIDs = OutcomeMigrated, m.target
	if old.format == FormatCSEv1 {
		res.Err = ErrNoIntegrity
	}
	if src.tier != nil {
		// A commit puts a blob in the account's default tier.
		if _, err := bb.SetTier(ctx, *src.tier, nil); err != nil {
			res.Err = errors.Join(res.Err, fmt.Errorf("blobstore: migrated, but setting its access tier %s back failed: %w", *src.tier, err))
		}
	}
	return res
}

// migrationUploadConcurrency is how many blocks of one converted blob are
// in flight: the walk's concurrency multiplies it.
const migrationUploadConcurrency = 2

// migrationBlockSize fixes the blocks of a converted blob of at most
// plaintext bytes to one block of its size, when it fits in
// DefaultBlockSize: a container of small blobs then costs small buffers.
// Larger blobs are sized by Upload (0).
func migrationBlockSize(plaintext int64) int64 {
	enc := stream.EncryptedSize(max(plaintext, 0), &stream.Options{})
	if enc < 0 || enc > DefaultBlockSize {
		return 0
	}
	return roundUp(max(enc, 1), minBlockSize)
}

// An oldBlob is a blob in a client-side encryption format, being read: its
// state from the GET, and then (decrypt) a reader of its plaintext that
// fails unless it yields exactly the size the blob's length implies.
type oldBlob struct {
	format   string
	metadata map[string]*string
	headers  blob.HTTPHeaders
	size     int64 // stored bytes
	ed       *csev2.EncryptionData
	body     io.ReadCloser

	plain *csev2.Reader
	lo    int64 // fewest plaintext bytes the size allows
	hi    int64 // most, the Size() reported to Upload
	n     int64 // plaintext bytes read
}

// open GETs the blob, conditional on etag.
func (m *migration) open(ctx context.Context, b *blob.Client, etag azcore.ETag) (*oldBlob, error) {
	resp, err := b.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: ifMatch(etag)})
	if err != nil {
		return nil, fmt.Errorf("blobstore: reading the blob: %w", blobChanged(err))
	}
	old := &oldBlob{
		format:   formatOf(resp.Metadata),
		metadata: resp.Metadata,
		headers:  downloadHeaders(&resp),
		body:     resp.Body,
		size:     -1,
	}
	if resp.ContentLength != nil {
		old.size = *resp.ContentLength
	}
	if old.format == FormatCSEv1 || old.format == FormatCSEv2 {
		if old.ed, err = csev2.EncryptionDataFromMetadata(resp.Metadata); err != nil {
			old.Close()
			return nil, err
		}
	}
	return old, nil
}

// decrypt unwraps the blob's content key with keys and starts reading its
// plaintext. log, when set, gets csev2's record of the unwrap (its reason,
// when it fails: csev2.ErrUnwrap does not say).
func (o *oldBlob) decrypt(ctx context.Context, keys csev2.KeyResolver, log *slog.Logger) error {
	read := &csev2.ReaderOptions{Logger: log}
	switch o.format {
	case FormatCSEv2:
		o.lo = cseV2PlaintextSize(o.size, o.ed.EncryptedRegionInfo.DataLength)
		o.hi = o.lo
		if o.lo < 0 {
			return fmt.Errorf("blobstore: client-side encryption v2 blob of %d bytes: %w", o.size, csev2.ErrTruncated)
		}
	case FormatCSEv1:
		// PKCS #7 pads 1 to 16 bytes onto the plaintext.
		if o.size < aes.BlockSize || o.size%aes.BlockSize != 0 {
			return csev2.ErrV1Decrypt
		}
		o.lo, o.hi = o.size-aes.BlockSize, o.size-1
		read.ReadCSEv1 = true
	default:
		return fmt.Errorf("blobstore: cannot migrate %s", o.format)
	}
	r, err := csev2.NewReader(ctx, o.body, o.ed, keys, read)
	if err != nil {
		return fmt.Errorf("blobstore: client-side encrypted blob: %w", err)
	}
	o.plain = r
	return nil
}

// Size is the most plaintext the blob can hold, for Upload's block sizing.
func (o *oldBlob) Size() int64 { return o.hi }

// Read reads plaintext. At the end of the body it fails unless the count
// is one the blob's length implies: a body cut short in transit, at a
// region boundary where CSE v2 cannot see it, must not become a shorter
// geoseal object.
func (o *oldBlob) Read(p []byte) (int, error) {
	n, err := o.plain.Read(p)
	o.n += int64(n)
	if o.n > o.hi || err == io.EOF && o.n < o.lo {
		cut := csev2.ErrTruncated
		if o.format == FormatCSEv1 {
			cut = csev2.ErrV1Decrypt
		}
		return n, fmt.Errorf("blobstore: the blob of %d bytes decrypted to %d plaintext bytes (want %d to %d): %w", o.size, o.n, o.lo, o.hi, cut)
	}
	return n, err
}

// Close zeroes the plaintext buffered and closes the body.
func (o *oldBlob) Close() error {
	if o.plain != nil {
		o.plain.Close()
	}
	return o.body.Close()
}

// judgeCopy reports a snapshot or previous version that keeps a format the
// migration converts, and deletes it if asked to and the blob itself is a
// geoseal object now (converted by this run or an earlier one).
func (m *migration) judgeCopy(ctx context.Context, it *walkItem, converted bool) WalkResult {
	res := it.result(OutcomeOldCopy)
	if !m.converts(it.Format) {
		res.Outcome = OutcomeNotMigrated
		return res
	}
	if !m.delete || !converted || m.dryRun {
		return res
	}
	return m.c.deleteCopy(ctx, it, res)
}

// pacedKeyring is a keyring whose wraps go through a pacer; its unwraps
// (which a migration does not make) are the keyring's own.
type pacedKeyring struct {
	keyring.Keyring
	w pacedWrapper
}

func (k pacedKeyring) Wrap(ctx context.Context, dek []byte, ec keyring.Context) ([]keyring.WrappedKey, error) {
	return k.w.Wrap(ctx, dek, ec)
}

// pacedResolver paces the unwraps of client-side encryption: each blob
// resolves its key-encryption key once, just before unwrapping with it.
// The key itself is handed over as it is, so that csev2's rules for its
// type apply unchanged.
type pacedResolver struct {
	r csev2.KeyResolver
	p *kmsPacer
}

func (k pacedResolver) Resolve(ctx context.Context, keyID string) (csev2.KeyEncryptionKey, error) {
	if _, err := k.p.wait(ctx); err != nil {
		return nil, err
	}
	return k.r.Resolve(ctx, keyID)
}
