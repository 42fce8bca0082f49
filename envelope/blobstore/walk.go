package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"golang.org/x/sync/errgroup"
)

// The container walker: the one loop under RewrapAll, Audit and migration.
// It lists the container a page at a time with metadata, snapshots,
// versions and tags (one request per page, whatever the blobs hold),
// groups each blob with its snapshots and versions, keeps the groups of its
// shard and hands them to the operation's visit function, Concurrency at a
// time. Outcomes are counted and streamed as they come; nothing is kept per
// blob. With a job name, a checkpoint in the container records, after each
// page, where a rerun resumes (see checkpoint.go).

// Limits and defaults of the walker.
const (
	// DefaultWalkConcurrency is how many blobs a container-wide operation
	// handles at once unless told otherwise. A blob costs a few small
	// requests, so a walk is bound by their latency, not by bandwidth.
	DefaultWalkConcurrency = 16

	// MaxShards bounds the shard count: beyond it each worker lists the
	// whole container for almost nothing.
	MaxShards = 1 << 16

	// MaxPageSize is the service's largest page of a listing.
	MaxPageSize = 5000
)

// jobsPrefix is where the checkpoints of jobs live, in the container they
// walk. Walkers never visit it: a checkpoint is not data.
const jobsPrefix = ".geoseal/jobs/"

// Outcomes of one blob (or snapshot, or version) of a container-wide
// operation, as WalkResult.Outcome reports them and the responses count
// them.
const (
	// OutcomeRotated: the blob's header was replaced by one wrapped for
	// the new keys.
	OutcomeRotated = "rotated"
	// OutcomeAlreadyRotated: the blob's header already lists exactly the
	// new keys; nothing was sent to the KMS or written.
	OutcomeAlreadyRotated = "already-rotated"
	// OutcomeNotGeoseal: the blob is not a geoseal object (its format is
	// in WalkResult.Format); it was left alone.
	OutcomeNotGeoseal = "not-geoseal"
	// OutcomeFailed: the operation failed for this blob (WalkResult.Err
	// says why); the blob is as it was.
	OutcomeFailed = "failed"
	// OutcomeOutsideKeys: a snapshot or version whose header is wrapped
	// for a key outside the target set. It cannot be rewrapped.
	OutcomeOutsideKeys = "outside-keys"
	// OutcomeDeleted: a snapshot or version under keys outside the target
	// set, deleted after its base blob was rotated (DeleteSnapshots).
	OutcomeDeleted = "deleted"
	// OutcomeAudited: a blob (or snapshot, or version) Audit classified.
	OutcomeAudited = "audited"
)

// A WalkResult is the outcome of one blob, snapshot or version of a
// container-wide operation (RewrapAll, Audit), reported as soon as it is
// known.
type WalkResult struct {
	// Blob is the blob's name; Snapshot or VersionID is set for a
	// snapshot or a version.
	Blob      string
	Snapshot  string
	VersionID string
	// Outcome is one of the Outcome constants.
	Outcome string
	// Format is the blob's format (FormatGeoseal, FormatCSEv2...), when
	// known.
	Format string
	// KeyIDs are the key ids its header (or, for Azure client-side
	// encryption, its metadata) lists, after the operation, when known.
	KeyIDs []string
	// Err is why the operation failed (OutcomeFailed), or a problem found
	// on the way.
	Err error
}

// Errors of container-wide operations.
var (
	// ErrCheckpointConflict means another worker advanced the checkpoint
	// of this job and shard: two workers were given the same shard. The
	// operation stopped; the other worker's progress stands.
	ErrCheckpointConflict = errors.New("blobstore: another worker advanced this job's checkpoint")

	// ErrJobMismatch means a job's checkpoint was written by another kind
	// of operation, or for another prefix, shard count or target: a job
	// name names one piece of work. Choose another job name.
	ErrJobMismatch = errors.New("blobstore: the job's checkpoint is for other work")
)

// walkSpec is what an operation asks of the walker.
type walkSpec struct {
	op     string // the operation, recorded in checkpoints: "rewrap-all", "migrate"
	params string // what else a job must keep to resume (the target's key ids)
	prefix string
	shard  int
	shards int // 0 or 1: the whole container
	job    string
	// concurrency is how many groups are visited at once.
	concurrency int
	// pageSize bounds the items of a listing page (0: MaxPageSize).
	pageSize int
	// results receives every outcome, one call at a time.
	results func(WalkResult)
	// visit handles one group and reports each outcome with report. It
	// must not return before its requests are done.
	visit func(ctx context.Context, g *blobGroup, report func(WalkResult))
}

// check validates a spec before any request.
func (s *walkSpec) check() error {
	switch {
	case s.shards < 0 || s.shards > MaxShards:
		return fmt.Errorf("blobstore: %d shards, want 1..%d", s.shards, MaxShards)
	case s.shards <= 1 && s.shard != 0, s.shards > 1 && (s.shard < 0 || s.shard >= s.shards):
		return fmt.Errorf("blobstore: shard %d of %d: want 0 <= shard < shards", s.shard, max(s.shards, 1))
	case s.pageSize < 0 || s.pageSize > MaxPageSize:
		return fmt.Errorf("blobstore: page size %d outside 1..%d", s.pageSize, MaxPageSize)
	case s.concurrency < 1 || s.concurrency > maxConcurrency:
		return fmt.Errorf("blobstore: concurrency %d outside 1..%d", s.concurrency, maxConcurrency)
	case strings.HasPrefix(s.prefix, jobsPrefix):
		return fmt.Errorf("blobstore: prefix %q is where job checkpoints live", s.prefix)
	}
	if s.job != "" {
		return checkJobName(s.job)
	}
	return nil
}

// shardOf is the shard of a blob: the first 8 bytes of SHA-256 of its name,
// as a big-endian integer, modulo the shard count. Every worker computes
// the same partition without talking to the others, and any tool can
// compute it too.
func shardOf(name string, shards int) int {
	sum := sha256.Sum256([]byte(name))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(shards))
}

func (s *walkSpec) mine(name string) bool {
	return s.shards <= 1 || shardOf(name, s.shards) == s.shard
}

// walkSummary is what a walk did.
type walkSummary struct {
	// counts are the outcomes by name, those of earlier runs of the job
	// included.
	counts map[string]int64
	// resumed reports a run that started from a job's checkpoint.
	resumed bool
	// done reports that the shard was walked to its end (by this run or,
	// for a finished job, an earlier one).
	done bool
}

// A walkItem is one listed blob, snapshot or version.
type walkItem struct {
	ListItem
	metadata  map[string]*string // all of it, geoseal's own entries included
	snapshot  string
	versionID string
	current   bool // the base blob: not a snapshot, not a previous version
	tags      map[string]string
	tagCount  int
	tier      *blob.AccessTier // an explicit access tier, nil when inferred
}

// walkItemOf turns a listed item into a walkItem.
func walkItemOf(it *container.BlobItem) walkItem {
	// Stored names: the walker's requests go by them (nil keys).
	w := walkItem{ListItem: listItem(nil, it), metadata: it.Metadata}
	if it.Snapshot != nil {
		w.snapshot = *it.Snapshot
	}
	if it.VersionID != nil {
		w.versionID = *it.VersionID
	}
	w.current = w.snapshot == "" && (w.versionID == "" || it.IsCurrentVersion != nil && *it.IsCurrentVersion)
	if it.BlobTags != nil {
		w.tags = make(map[string]string, len(it.BlobTags.BlobTagSet))
		for _, t := range it.BlobTags.BlobTagSet {
			if t != nil && t.Key != nil && t.Value != nil {
				w.tags[*t.Key] = *t.Value
			}
		}
	}
	if p := it.Properties; p != nil {
		if p.TagCount != nil {
			w.tagCount = int(*p.TagCount)
		}
		w.tier = explicitTier(p.AccessTier, p.AccessTierInferred)
	}
	return w
}

// explicitTier is a blob's access tier as the service reports it (a
// listing or a HEAD), when it was set on the blob rather than inferred
// from the account's default: the tier a commit must set again. Nil
// otherwise.
func explicitTier[T ~string](tier *T, inferred *bool) *blob.AccessTier {
	if tier == nil || inferred != nil && *inferred {
		return nil
	}
	t := blob.AccessTier(*tier)
	return &t
}

// completeTags returns the count index tags of a blob: listed, the tags
// its listing gave, when they are all there (which spares a request),
// or else those GetTags reads.
func completeTags(ctx context.Context, bb *blockblob.Client, listed map[string]string, count int) (map[string]string, error) {
	if len(listed) == count {
		return listed, nil
	}
	return getTags(ctx, bb)
}

// client returns the blob client of the item: the blob, or its snapshot
// or version.
func (it *walkItem) client(c *Client) (*blob.Client, error) {
	b := c.container.NewBlobClient(it.Name)
	switch {
	case it.snapshot != "":
		return b.WithSnapshot(it.snapshot)
	case it.versionID != "" && !it.current:
		return b.WithVersionID(it.versionID)
	}
	return b, nil
}

// result starts the WalkResult of the item.
func (it *walkItem) result(outcome string) WalkResult {
	r := WalkResult{Blob: it.Name, Snapshot: it.snapshot, Outcome: outcome, Format: it.Format}
	if !it.current {
		r.VersionID = it.versionID
	}
	return r
}

// A blobGroup is a blob and its snapshots and previous versions, which a
// listing returns next to each other, possibly across pages.
type blobGroup struct {
	name   string
	base   *walkItem  // nil when only snapshots or versions are left
	copies []walkItem // snapshots and previous versions

	page int     // the page its first item was on
	from *string // the marker of that page
	// carried is the group whose rest that page starts with.
	carried string
}

func (g *blobGroup) add(it walkItem) {
	if it.current && g.base == nil {
		g.base = &it
		return
	}
	g.copies = append(g.copies, it)
}

// walker is one walk in progress.
type walker struct {
	c    *Client
	spec *walkSpec
	cp   *checkpointer // nil without a job

	mu      sync.Mutex               // guards the fields below and serializes results
	settled map[string]int64         // outcomes of the groups before the checkpoint
	recent  map[int]map[string]int64 // outcomes since, by the page each group started on
}

// walk runs spec over the container.
func (c *Client) walk(ctx context.Context, spec *walkSpec) (walkSummary, error) {
	if err := spec.check(); err != nil {
		return walkSummary{}, err
	}
	w := &walker{c: c, spec: spec, settled: map[string]int64{}, recent: map[int]map[string]int64{}}
	var marker *string
	var skip string
	var sum walkSummary
	if spec.job != "" {
		cp, state, err := openCheckpoint(ctx, c.container, spec)
		if err != nil {
			return walkSummary{}, err
		}
		w.cp = cp
		sum.resumed = state.resumed
		for k, v := range state.Counts {
			w.settled[k] = v
		}
		if state.Done {
			return walkSummary{counts: w.settled, resumed: true, done: true}, nil
		}
		if state.Marker != "" {
			marker, skip = &state.Marker, state.Skip
		}
	}
	done, err := w.pages(ctx, marker, skip)
	sum.counts, sum.done = w.totals(), done
	return sum, err
}

// listed is one page of the listing and the marker it was listed from.
type listed struct {
	marker *string // nil: the start
	next   *string // nil: the last page
	items  []walkItem
	err    error
}

// pages walks the listing from marker to its end, skipping the leading
// items named skip (the rest of a blob an earlier run finished, or of
// another shard's): it hands out the groups of each page, waits for them,
// and checkpoints. It returns whether it got to the end.
func (w *walker) pages(ctx context.Context, marker *string, skip string) (bool, error) {
	opts := &container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Metadata: true, Snapshots: true, Versions: true, Tags: true},
		Marker:  marker,
	}
	if w.spec.prefix != "" {
		opts.Prefix = &w.spec.prefix
	}
	if w.spec.pageSize > 0 {
		n := int32(w.spec.pageSize)
		opts.MaxResults = &n
	}
	pager := w.c.container.NewListBlobsFlatPager(opts)
	fetch := func(from *string) listed {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return listed{marker: from, err: fmt.Errorf("blobstore: listing the container: %w", err)}
		}
		l := listed{marker: from, next: page.NextMarker}
		if l.next != nil && *l.next == "" {
			l.next = nil
		}
		if page.Segment != nil {
			for _, it := range page.Segment.BlobItems {
				if it != nil && it.Name != nil && !strings.HasPrefix(*it.Name, jobsPrefix) {
					l.items = append(l.items, walkItemOf(it))
				}
			}
		}
		return l
	}

	cur := fetch(marker)
	// pending is the group the listing may not be done with; done the
	// name of the last group handed out (or skipped), whose rest the next
	// page may start with.
	var pending *blobGroup
	done := skip
	for index := 0; ; index++ {
		if cur.err != nil {
			return false, cur.err
		}
		// Fetch the next page while this one is worked on: its first
		// name says whether the last group of this one is complete.
		var ahead chan listed
		if cur.next != nil {
			ahead = make(chan listed, 1)
			go func(from *string) { ahead <- fetch(from) }(cur.next)
		}
		g := &errgroup.Group{}
		g.SetLimit(w.spec.concurrency)
		dispatch := func(grp *blobGroup) {
			if w.spec.mine(grp.name) && ctx.Err() == nil {
				g.Go(func() error { w.spec.visit(ctx, grp, w.reporter(grp.page)); return nil })
			}
		}
		// carried is the group whose rest this page starts with.
		carried := ""
		for i, it := range cur.items {
			switch {
			case pending == nil && it.Name == done:
				carried = done // the rest of a group already done: skip it
				continue
			case pending != nil && pending.name == it.Name:
				if i == 0 {
					carried = it.Name
				}
				pending.add(it)
				continue
			case pending != nil:
				dispatch(pending)
				done = pending.name
			}
			pending = &blobGroup{name: it.Name, page: index, from: cur.marker, carried: carried}
			pending.add(it)
		}
		var next listed
		if ahead != nil {
			next = <-ahead
		}
		if pending != nil && (ahead == nil || next.err == nil && len(next.items) > 0 && next.items[0].Name != pending.name) {
			dispatch(pending)
			done, pending = pending.name, nil
		}
		g.Wait()
		if err := context.Cause(ctx); err != nil {
			return false, err
		}
		if ahead == nil {
			return true, w.checkpoint(ctx, index+1, nil, "", true)
		}
		// Resume where the first unfinished group of this shard started
		// (the next page, or the page of a group that goes on there),
		// skipping the rest of a group that page starts with if it is done
		// or not this shard's.
		var err error
		switch {
		case pending != nil && w.spec.mine(pending.name):
			err = w.checkpoint(ctx, pending.page, pending.from, pending.carried, false)
		case pending != nil:
			err = w.checkpoint(ctx, index+1, cur.next, pending.name, false)
		default:
			err = w.checkpoint(ctx, index+1, cur.next, done, false)
		}
		if err != nil {
			return false, err
		}
		cur = next
	}
}

// reporter returns the report function of a group that started on page.
func (w *walker) reporter(page int) func(WalkResult) {
	return func(r WalkResult) {
		w.mu.Lock()
		defer w.mu.Unlock()
		m := w.recent[page]
		if m == nil {
			m = map[string]int64{}
			w.recent[page] = m
		}
		m[r.Outcome]++
		if w.spec.results != nil {
			w.spec.results(r)
		}
	}
}

// checkpoint settles the outcomes of the groups that started before page
// fromPage (those a resume from marker from will not see again) and, for a
// job, records from, the name of the group whose rest that page starts
// with (skip), and the settled counts.
func (w *walker) checkpoint(ctx context.Context, fromPage int, from *string, skip string, done bool) error {
	w.mu.Lock()
	for p, m := range w.recent {
		if p < fromPage {
			for k, v := range m {
				w.settled[k] += v
			}
			delete(w.recent, p)
		}
	}
	counts := maps.Clone(w.settled) // save keeps it
	w.mu.Unlock()
	if w.cp == nil {
		return nil
	}
	marker := ""
	if from != nil {
		marker = *from
	}
	return w.cp.save(ctx, marker, skip, counts, done)
}

// totals returns every outcome counted, settled or not.
func (w *walker) totals() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := maps.Clone(w.settled)
	for _, m := range w.recent {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// failures keeps the first failure a container-wide operation reports.
type failures struct {
	mu    sync.Mutex
	first error
}

// record wraps the caller's Results to keep the first failure.
func (f *failures) record(results func(WalkResult)) func(WalkResult) {
	return func(res WalkResult) {
		if res.Outcome == OutcomeFailed {
			f.mu.Lock()
			if f.first == nil {
				f.first = fmt.Errorf("%q: %w", res.Blob, res.Err)
			}
			f.mu.Unlock()
		}
		if results != nil {
			results(res)
		}
	}
}

// failureError is the error of an operation that counted failed
// failures: nil if none was recorded, otherwise the count and the first
// (errors.Is and errors.As see it). notDone says what the failed ones
// were not: "rewrapped", "migrated".
func (f *failures) failureError(failed int64, notDone string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == nil {
		return nil
	}
	return fmt.Errorf("blobstore: %d blobs, snapshots or versions not %s; the first: %w", failed, notDone, f.first)
}

// deleteCopy deletes the snapshot or previous version it, which res
// describes, and returns res as OutcomeDeleted, or as OutcomeFailed with
// why.
func (c *Client) deleteCopy(ctx context.Context, it *walkItem, res WalkResult) WalkResult {
	b, err := it.client(c)
	if err == nil {
		_, err = b.Delete(ctx, nil)
	}
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, fmt.Errorf("blobstore: deleting: %w", err)
		return res
	}
	res.Outcome = OutcomeDeleted
	return res
}
