package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/geoseal/geoseal/keyring"
)

// RewrapAllOptions configure RewrapAll. Nil means the defaults: the whole
// container, DefaultWalkConcurrency blobs at a time, no job, no KMS rate
// limit.
type RewrapAllOptions struct {
	// Prefix restricts the rotation to blobs whose names start with it
	// (under SealNames, a logical prefix: see ListOptions.Prefix).
	Prefix string

	// Shard and Shards split the container between independent workers:
	// with Shards N > 1, this call handles only the blobs whose shard
	// (SHA-256 of the name, modulo N; see the package documentation) is
	// Shard, 0 <= Shard < N. N workers given shards 0 to N-1 cover the
	// container once, without talking to each other.
	Shard, Shards int

	// Job names the rotation, so that it can be resumed: the progress of
	// each shard is recorded after every page of the listing in the
	// container, under .geoseal/jobs/Job/, and a call with the same Job,
	// Prefix, shard and target resumes after the last record. Two calls
	// given the same Job and shard cannot both advance it: the second
	// fails with ErrCheckpointConflict. Empty: nothing is recorded (a
	// rerun is still cheap: see RewrapAll).
	Job string

	// Concurrency is how many blobs are rotated at once. Zero means
	// DefaultWalkConcurrency.
	Concurrency int

	// KMSRate limits the keyring calls (an unwrap with the client's
	// keyring and a wrap with the new one per rotated blob) to KMSRate per
	// second. Zero means no limit. Whatever the rate, a call the KMS
	// throttles (429 or 503, with Retry-After) makes every goroutine of
	// this call wait out one shared back-off, and is tried again.
	KMSRate float64

	// DeleteSnapshots deletes the snapshots and previous versions of a
	// blob whose headers are wrapped for keys outside the new ones, once
	// the blob itself is rotated. They cannot be rewrapped (they are
	// immutable), and until they are deleted they open with the old keys.
	// Off by default: they are reported (OutcomeOutsideKeys), never
	// deleted unless asked.
	DeleteSnapshots bool

	// Results, when set, receives the outcome of every blob, snapshot and
	// version of the shard as soon as it is known, one call at a time.
	// Nothing is kept per blob: this is the only place individual
	// outcomes are reported.
	Results func(WalkResult)

	// PageSize bounds the blobs of one page of the listing, 1 to
	// MaxPageSize; zero means MaxPageSize. A job records its progress
	// after each page: smaller pages redo less after a crash, at the cost
	// of more listing requests.
	PageSize int
}

// RewrapAllResponse counts what a RewrapAll did. For a resumed job it
// includes what the earlier runs of the job recorded.
type RewrapAllResponse struct {
	// Rotated, AlreadyRotated, NotGeoseal and Failed count the blobs
	// (OutcomeRotated...).
	Rotated, AlreadyRotated, NotGeoseal, Failed int64
	// OutsideKeys counts the snapshots and versions wrapped for keys
	// outside the new ones and left in place, Deleted those deleted
	// (DeleteSnapshots).
	OutsideKeys, Deleted int64
	// Resumed reports a job that continued from its checkpoint; Done that
	// the shard was walked to its end.
	Resumed, Done bool
}

// RewrapAll rotates, as Rewrap does, every geoseal object of the container
// (or of its shard, or under its prefix) to the keys of to: the rotation of
// a key-encryption key, or the revocation of a recipient, across a
// container of any size.
//
// It lists the container, a page of up to 5000 blobs per request, with
// each blob's metadata, snapshots and versions, and for each blob:
//
//   - reads its header with one ranged GET (which also returns the ETag
//     and metadata), and if the header already lists exactly the key ids
//     of to (keyring.KeyIDs), leaves it: one request, no KMS call, no
//     write. A rerun after a crash therefore costs one request per blob
//     already done;
//   - otherwise reads the block list, unwraps the data key with the
//     client's keyring and wraps it with to (paced by KMSRate), stages the
//     new header and commits: four requests in all, and the body is never
//     read. The commit is conditional on the ETag of the header read, and
//     certain as Upload's is: a cancelled RewrapAll never reports a blob
//     as failed that it committed;
//   - a blob whose metadata marks no geoseal object is recognised by its
//     first 13 bytes (one more GET) before it is called not a geoseal
//     object: a geoseal object whose metadata was removed is rotated, and
//     its metadata restored. Azure client-side encryption is recognised by
//     its metadata and left alone;
//   - reads the header of each snapshot and version and reports those
//     wrapped for a key outside to's (OutcomeOutsideKeys), deleting them
//     after the blob is rotated if DeleteSnapshots is set.
//
// Revoking a key takes more than a rotation: snapshots and previous
// versions keep the header they were made with (DeleteSnapshots deletes
// them), soft-deleted blobs and backups keep theirs and open with the old
// key until they expire, and a blob written meanwhile by a client still
// holding the old key is wrapped for it. Disable or delete the old key in
// Key Vault or the HSM once the rotation is done: only that reaches every
// copy.
//
// Memory is bounded by a page of the listing, whatever the container's
// size: outcomes go to opts.Results as they happen and are counted in the
// response, never collected. A blob that fails does not stop the others;
// the returned error, non-nil if any blob failed, carries the first
// failure (errors.Is and errors.As see it) and the count. The region guard
// is asked once, before anything is read: a new header is a write.
//
// A rotation of the whole container (no Prefix) rotates its name key,
// .geoseal/names.key, with the rest, whether or not the client seals
// names; one under a Prefix leaves it as it is. Under SealNames, results
// name blobs by their stored names.
//
// If to cannot tell its key ids (a Wrapper of your own without a KeyID or
// KeyIDs method), nothing is recognised as already rotated: every blob
// costs a KMS call and a commit.
func (c *Client) RewrapAll(ctx context.Context, to keyring.Wrapper, opts *RewrapAllOptions) (RewrapAllResponse, error) {
	if opts == nil {
		opts = &RewrapAllOptions{}
	}
	if to == nil {
		return RewrapAllResponse{}, errors.New("blobstore: nil keyring")
	}
	pacer, err := newPacer(opts.KMSRate)
	if err != nil {
		return RewrapAllResponse{}, err
	}
	r := &rotation{c: c, target: keyring.KeyIDs(to), deleteCopies: opts.DeleteSnapshots}
	r.unwrap = pacedUnwrapper{u: c.keyring, p: pacer}
	r.wrap = pacedWrapper{w: to, p: pacer}
	spec := &walkSpec{
		op:          "rewrap-all",
		params:      keySetDigest(r.target),
		prefix:      opts.Prefix,
		shard:       opts.Shard,
		shards:      opts.Shards,
		job:         opts.Job,
		concurrency: int(firstNonZero(int64(opts.Concurrency), DefaultWalkConcurrency)),
		pageSize:    opts.PageSize,
		results:     r.record(opts.Results),
		visit:       r.visit,
	}
	if err := spec.check(); err != nil {
		return RewrapAllResponse{}, err
	}
	if _, err := c.guard.CheckURL(ctx, c.container.URL()); err != nil {
		return RewrapAllResponse{}, fmt.Errorf("blobstore: rewrap refused: %w", err)
	}
	prefix, _, ok, err := c.storedPrefix(ctx, opts.Prefix)
	if err != nil {
		return RewrapAllResponse{}, fmt.Errorf("blobstore: rewrap of %q: %w", opts.Prefix, err)
	}
	if !ok {
		// A prefix under SealNames, and no name key: nothing is sealed.
		return RewrapAllResponse{Done: true}, nil
	}
	spec.prefix = prefix
	sum, err := c.walk(ctx, spec)
	resp := RewrapAllResponse{
		Rotated:        sum.counts[OutcomeRotated],
		AlreadyRotated: sum.counts[OutcomeAlreadyRotated],
		NotGeoseal:     sum.counts[OutcomeNotGeoseal],
		Failed:         sum.counts[OutcomeFailed],
		OutsideKeys:    sum.counts[OutcomeOutsideKeys],
		Deleted:        sum.counts[OutcomeDeleted],
		Resumed:        sum.resumed,
		Done:           sum.done,
	}
	if err != nil {
		return resp, err
	}
	return resp, r.failureError(resp.Failed, "rewrapped")
}

// keySetDigest names a set of key ids in a checkpoint: a job resumed with
// other target keys is another job.
func keySetDigest(ids []string) string {
	if ids == nil {
		return "unknown-keys"
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sum := sha256.Sum256([]byte(strings.Join(slices.Compact(sorted), "\n")))
	return "keys:" + hex.EncodeToString(sum[:16])
}

// sameKeySet reports whether a header's key ids are exactly the target's,
// as sets.
func sameKeySet(ids, target []string) bool {
	if len(ids) == 0 || target == nil {
		return false
	}
	return subsetOf(ids, target) && subsetOf(target, ids)
}

// subsetOf reports whether every id of ids is in set.
func subsetOf(ids, set []string) bool {
	for _, id := range ids {
		if !slices.Contains(set, id) {
			return false
		}
	}
	return true
}

// A rotation is one RewrapAll: what its visits share.
type rotation struct {
	c            *Client
	target       []string // to's key ids; nil: unknown
	unwrap       keyring.Unwrapper
	wrap         keyring.Wrapper
	deleteCopies bool
	failures
}

// visit rotates a blob, then judges (and with deleteCopies, deletes) its
// snapshots and previous versions.
func (r *rotation) visit(ctx context.Context, g *blobGroup, report func(WalkResult)) {
	baseDone := false
	if g.base != nil {
		res, previous := r.rotate(ctx, g.base)
		if !reportDone(ctx, report, res) {
			return
		}
		baseDone = res.Outcome == OutcomeRotated || res.Outcome == OutcomeAlreadyRotated
		// With versioning on, the commit kept the old header in what is
		// now a previous version of the blob.
		if previous != nil && !reportDone(ctx, report, r.judgeCopy(ctx, &previous.item, &previous.head, baseDone)) {
			return
		}
	}
	for i := range g.copies {
		if !reportDone(ctx, report, r.judgeCopy(ctx, &g.copies[i], nil, baseDone)) {
			return
		}
	}
}

// reportDone reports res and returns true, unless res is only the walk
// being cancelled (interrupted): then it reports nothing, and the visit
// stops.
func reportDone(ctx context.Context, report func(WalkResult), res WalkResult) bool {
	if interrupted(ctx, res) {
		return false
	}
	report(res)
	return true
}

// interrupted reports a failure that is only the walk being cancelled:
// nothing was committed, and the blob is left for the next run rather than
// reported as failed.
func interrupted(ctx context.Context, res WalkResult) bool {
	return res.Outcome == OutcomeFailed && ctx.Err() != nil &&
		(errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, context.DeadlineExceeded) || errors.Is(res.Err, context.Cause(ctx)))
}

// A previousVersion is the version of a blob a rotation's commit turned
// into a previous one, with the old header it keeps.
type previousVersion struct {
	item walkItem
	head itemHead
}

// rotate rotates one blob. When versioning kept the old header in a
// previous version, it returns that version too.
func (r *rotation) rotate(ctx context.Context, it *walkItem) (WalkResult, *previousVersion) {
	res, previous := r.rotateOnce(ctx, it)
	if errors.Is(res.Err, ErrBlobChanged) && ctx.Err() == nil {
		// Another writer got there first (perhaps another worker rotating
		// it): look again.
		res, previous = r.rotateOnce(ctx, it)
	}
	return res, previous
}

func (r *rotation) rotateOnce(ctx context.Context, it *walkItem) (WalkResult, *previousVersion) {
	res := it.result(OutcomeFailed)
	ih, err := r.c.readItem(ctx, it)
	res.Format, res.KeyIDs = ih.format, ih.keyIDs
	switch {
	case err != nil:
		res.Err = err
		return res, nil
	case ih.format != FormatGeoseal:
		res.Outcome = OutcomeNotGeoseal
		return res, nil
	case sameKeySet(ih.keyIDs, r.target):
		res.Outcome = OutcomeAlreadyRotated
		return res, nil
	}
	bb := r.c.container.NewBlockBlobClient(it.Name)
	s := &rewrapState{
		etag:     ih.head.etag,
		size:     ih.head.size,
		metadata: ih.head.metadata,
		headers:  ih.head.headers,
		tier:     it.tier,
		header:   ih.header,
	}
	if s.blocks, err = readBlocks(ctx, bb, s.etag, len(s.header)); err != nil {
		res.Err = err
		return res, nil
	}
	if n := ih.head.tagCount; n > 0 {
		if s.tags, err = completeTags(ctx, bb, it.tags, n); err != nil {
			res.Err = err
			return res, nil
		}
	}
	p, err := planRewrap(ctx, s, r.unwrap, r.wrap)
	if err != nil {
		res.Err = err
		return res, nil
	}
	resp, err := commitRewrap(ctx, bb, s, p)
	if err != nil {
		res.Err = err
		return res, nil
	}
	res.Outcome, res.Format, res.KeyIDs = OutcomeRotated, FormatGeoseal, keyIDsOf(resp.WrappedKeys)
	if it.versionID == "" {
		return res, nil
	}
	previous := &previousVersion{item: *it, head: ih}
	previous.item.current = false
	return res, previous
}

func keyIDsOf(keys []keyring.WrappedKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.KeyID
	}
	return ids
}

// judgeCopy reads the header of a snapshot or previous version (unless
// known is given), reports whether it is wrapped for keys outside the
// target's, and deletes it if asked to and the blob itself is done.
func (r *rotation) judgeCopy(ctx context.Context, it *walkItem, known *itemHead, baseDone bool) WalkResult {
	res := it.result(OutcomeFailed)
	var ih itemHead
	var err error
	if known != nil {
		ih = *known
	} else {
		ih, err = r.c.readItem(ctx, it)
	}
	res.Format, res.KeyIDs = ih.format, ih.keyIDs
	switch {
	case err != nil:
		res.Err = err
		return res
	case ih.format != FormatGeoseal:
		res.Outcome = OutcomeNotGeoseal
		return res
	case r.target != nil && subsetOf(ih.keyIDs, r.target):
		res.Outcome = OutcomeAlreadyRotated
		return res
	}
	res.Outcome = OutcomeOutsideKeys
	if !r.deleteCopies || !baseDone {
		return res
	}
	return r.c.deleteCopy(ctx, it, res)
}
