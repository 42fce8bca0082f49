package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/region"
)

var rewrapAllHelp = `Usage:

	geoseal rewrap-all CONTAINER-URL [--prefix P] [keys] [new keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--shard I/N] [--job NAME] [--kms-rate N] [--delete-snapshots] [--seal-names] [--json]
	geoseal rewrap-all --container NAME ...

rewrap-all does what geoseal rewrap does for every geoseal object in the
container whose name starts with --prefix (or the URL's path after the
container): the rotation of a key-encryption key, or the revocation of a
recipient, across a container of any size.

For each blob it reads the header (one ranged GET); a blob already wrapped
for exactly the new keys is left alone, with no call to the KMS, so a rerun
costs one request per blob already done. Any other geoseal object is
rotated in four requests (the header, the block list, the new header, the
commit); the body is never read. A blob without geoseal metadata is
recognised by its first 13 bytes. Blobs that are not geoseal objects (plain,
or Azure client-side encryption) are left alone (--verbose lists them). A
blob that fails does not stop the others; each failure is printed.

Scale out with --shard: N workers given --shard 0/N to --shard N-1/N (a
Kubernetes Indexed Job, Azure Batch tasks, N shells) split the container by
a hash of the blob names, without talking to each other. With --job NAME,
each shard records its progress in the container (.geoseal/jobs/NAME/) after
every page of the listing, and running the same command again resumes after
the last record; a second worker given the same job and shard stops with an
error instead of doing the work twice.

Revoking a key takes more than a rotation: snapshots and previous versions
keep the header they were made with and still open with the old key
(rewrap-all reports each one; --delete-snapshots deletes them once their
blob is rotated), soft-deleted blobs and backups keep theirs until they
expire. Disable or delete the old key in Key Vault or the HSM when the
rotation is done: only that reaches every copy.

A rotation of the whole container (no prefix) rotates the container's name
key, .geoseal/names.key, too, whether or not --seal-names is given; with
--seal-names the prefix is a logical prefix (see geoseal ls --help), and
the outcomes name blobs by their stored names.
` + sealNamesHelp + `
` + containerHelp + `
` + guardHelp + `
Keys that open the objects now:

` + keyringHelp("") + `
New keys (the objects will be wrapped for exactly these):

` + keyringHelp("to-") + `
Flags:

	--prefix P          only blobs whose names start with P
	--shard I/N         only the blobs of shard I of N (0 <= I < N)
	--job NAME          record progress under .geoseal/jobs/NAME/ and resume
	                    from it (letters, digits, '.', '-', '_')
	--kms-rate N        at most N keyring calls (unwrap or wrap) per second
	                    (0: no limit); whatever the rate, a KMS that throttles
	                    (429) makes the worker back off as a whole and retry
	--concurrency N     blobs rotated at once (default 16)
	--page-size N       blobs per page of the listing, 1 to 5000 (default
	                    5000); a job records its progress after each page
	--delete-snapshots  delete the snapshots and previous versions wrapped for
	                    other keys, once their blob is rotated (never by
	                    default)
	--seal-names        the prefix is a logical prefix (above)
	--json              JSON lines on stdout: one per blob, snapshot or
	                    version ({"blob", "outcome", ...}), then one
	                    {"summary": {...}}

Outcomes: rotated, already-rotated, not-geoseal, failed, and for snapshots
and versions outside-keys or deleted.

Exit status: 0 no blob failed, 3 refused by the region policy, 1 if any blob
failed or on any other error (a job's shard run by another worker included).
`

type rewrapAllCmd struct {
	rewrapFlags
	prefix, shard, job string
	kmsRate            float64
	concurrency        int
	pageSize           int
	deleteSnapshots    bool
	json               bool
}

func (c *rewrapAllCmd) flags(fs *flag.FlagSet) {
	c.rewrapFlags.register(fs, false)
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
	fs.StringVar(&c.shard, "shard", "", "I/N: only shard I of N")
	fs.StringVar(&c.job, "job", "", "record progress under .geoseal/jobs/NAME/ and resume from it")
	fs.Float64Var(&c.kmsRate, "kms-rate", 0, "keyring calls per second (0: no limit)")
	fs.IntVar(&c.concurrency, "concurrency", 0, "blobs at once")
	fs.IntVar(&c.pageSize, "page-size", 0, "blobs per page of the listing (1..5000)")
	fs.BoolVar(&c.deleteSnapshots, "delete-snapshots", false, "delete snapshots and versions under other keys once their blob is rotated")
	fs.BoolVar(&c.json, "json", false, "JSON lines")
}

// listPrefix is the prefix of a command over a container's blobs: the
// path a URL gives after the container, or --prefix, not both.
func listPrefix(loc location, prefix string) (string, error) {
	switch {
	case loc.blob != "" && prefix != "":
		return "", usageErrorf("give the prefix in the URL or with --prefix, not both")
	case loc.blob != "":
		return loc.blob, nil
	}
	return prefix, nil
}

// walkScope is what a container-wide command (rewrap-all, migrate, audit)
// walks: the container, the prefix of the URL or --prefix, and the shard
// of --shard (shards 0: the whole container).
type walkScope struct {
	loc           location
	prefix        string
	shard, shards int
}

// walkScope reads a container-wide command's scope from its argument,
// --prefix and --shard.
func (f *containerFlags) walkScope(args []string, prefix, shard string) (walkScope, error) {
	loc, err := f.locateArg(args)
	if err != nil {
		return walkScope{}, err
	}
	if prefix, err = listPrefix(loc, prefix); err != nil {
		return walkScope{}, err
	}
	i, n, err := parseShard(shard)
	if err != nil {
		return walkScope{}, err
	}
	return walkScope{loc: loc, prefix: prefix, shard: i, shards: n}, nil
}

// countGeoseal counts the geoseal objects under prefix by the listing's
// metadata: the total the progress of an interactive run reports against.
// It costs a request per page of 5,000 blobs.
func countGeoseal(ctx context.Context, client *blobstore.Client, prefix string) (int64, error) {
	var n int64
	pager := client.NewListPager(&blobstore.ListOptions{Prefix: prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, it := range page.Items {
			if it.Format == blobstore.FormatGeoseal {
				n++
			}
		}
	}
	return n, nil
}

// parseShard reads --shard I/N ("" is the whole container).
func parseShard(s string) (shard, shards int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	i, n, ok := strings.Cut(s, "/")
	shard, err1 := strconv.Atoi(i)
	shards, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || shards < 1 || shard < 0 || shard >= shards || shards > blobstore.MaxShards {
		return 0, 0, usageErrorf("--shard %s: want I/N with 0 <= I < N <= %d", quoteUntrusted(s), blobstore.MaxShards)
	}
	return shard, shards, nil
}

func (c *rewrapAllCmd) run(ctx context.Context, env *environment, args []string) error {
	scope, err := c.where.walkScope(args, c.prefix, c.shard)
	if err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	client, s, newKR, err := c.client(ctx, env, scope.loc, &cl)
	if err != nil {
		return err
	}
	// An interactive run over the whole container counts first, so that
	// its progress has a total; a worker of a sharded or resumable job does
	// not list everything twice.
	total := int64(-1)
	if !env.common.quiet && !c.json && c.shard == "" && c.job == "" {
		if total, err = countGeoseal(ctx, client, scope.prefix); err != nil {
			return s.fail(err)
		}
	}
	p := env.walkProgress("rewrapping "+quoteUntrusted(scope.loc.container), total, c.json)
	out := &resultWriter{env: env, store: s, cmd: "rewrap-all", asJSON: c.json, enc: json.NewEncoder(env.stdout)}
	resp, err := client.RewrapAll(ctx, newKR, &blobstore.RewrapAllOptions{
		Prefix:          scope.prefix,
		Shard:           scope.shard,
		Shards:          scope.shards,
		Job:             c.job,
		KMSRate:         c.kmsRate,
		Concurrency:     c.concurrency,
		PageSize:        c.pageSize,
		DeleteSnapshots: c.deleteSnapshots,
		Results: func(r blobstore.WalkResult) {
			if r.Snapshot == "" && r.VersionID == "" && r.Outcome != blobstore.OutcomeNotGeoseal {
				p.add(1)
			}
			out.result(ctx, r)
		},
	})
	p.done()
	var v *region.Violation
	if errors.As(err, &v) {
		return err
	}
	sum := rewrapAllSummary{
		Container: scope.loc.container, Prefix: scope.prefix, Shard: c.shard, Job: c.job,
		Rotated: resp.Rotated, AlreadyRotated: resp.AlreadyRotated, NotGeoseal: resp.NotGeoseal, Failed: resp.Failed,
		OutsideKeys: resp.OutsideKeys, Deleted: resp.Deleted, Resumed: resp.Resumed, Done: resp.Done,
	}
	if err := out.summary(sum, fmt.Sprintf("%s (%s)", sum, s.loc.containerURL())); err != nil {
		return err
	}
	if resp.Resumed && resp.Done && resp.Failed > 0 && err == nil && !env.common.quiet {
		// A finished job does not try its failures again.
		fmt.Fprintf(env.stderr, "geoseal rewrap-all: job %s is done; %d blobs failed in its runs (see their output): rerun under another --job name, or without one, to try them again (blobs already rotated cost one request each)\n",
			quoteUntrusted(c.job), resp.Failed)
	}
	return walkError(s, err, resp.Failed)
}

// walkError is what a container-wide command returns once its summary is
// printed, for err, the walk's error, and failed blobs: an error that
// failed no blob is reported as any other; one with failed blobs, whose
// lines said why, is not printed again.
func walkError(s *store, err error, failed int64) error {
	switch {
	case err == nil:
		return nil
	case failed == 0:
		return s.fail(err)
	}
	return shown{err}
}

// rewrapAllSummary is the last line of rewrap-all: the counts of the run
// (of the whole job, for a resumed one).
type rewrapAllSummary struct {
	Container      string `json:"container"`
	Prefix         string `json:"prefix"`
	Shard          string `json:"shard,omitempty"`
	Job            string `json:"job,omitempty"`
	Rotated        int64  `json:"rotated"`
	AlreadyRotated int64  `json:"already_rotated"`
	NotGeoseal     int64  `json:"not_geoseal"`
	Failed         int64  `json:"failed"`
	OutsideKeys    int64  `json:"outside_keys"`
	Deleted        int64  `json:"deleted"`
	Resumed        bool   `json:"resumed"`
	Done           bool   `json:"done"`
}

func (s rewrapAllSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotated %d blobs in %s; %d already rotated; %d not geoseal objects; %d failed", s.Rotated, quoteUntrusted(s.Container), s.AlreadyRotated, s.NotGeoseal, s.Failed)
	if s.OutsideKeys+s.Deleted > 0 {
		fmt.Fprintf(&b, "; %d snapshots or versions wrapped for other keys", s.OutsideKeys)
		if s.Deleted > 0 {
			fmt.Fprintf(&b, ", %d deleted", s.Deleted)
		}
	}
	b.WriteString(jobState(s.Job, s.Shard, s.Done, s.Resumed))
	return b.String()
}

// jobState ends the summary of a container-wide command run as a job: the
// job, the shard and how far it got ("" without a job).
func jobState(job, shard string, done, resumed bool) string {
	if job == "" {
		return ""
	}
	state := "in progress"
	if done {
		state = "done"
	}
	if shard == "" {
		shard = "0/1"
	}
	s := fmt.Sprintf("; job %s, shard %s: %s", quoteUntrusted(job), shard, state)
	if resumed {
		s += ", resumed"
	}
	return s
}

// resultName is how people see a result's blob, snapshot or version, quoted:
// whoever can write to the container chooses the names.
func resultName(r blobstore.WalkResult) string {
	name := quoteUntrusted(r.Blob)
	switch {
	case r.Snapshot != "":
		name += " snapshot " + quoteUntrusted(r.Snapshot)
	case r.VersionID != "":
		name += " version " + quoteUntrusted(r.VersionID)
	}
	return name
}

// A resultWriter prints the outcomes of a container-wide command as they
// come: JSON lines, or for people the failures on stderr, and the
// snapshots under other keys (and with --verbose the blobs skipped) on
// stdout, blob names quoted: whoever can write to the container chooses
// them.
type resultWriter struct {
	env    *environment
	store  *store
	cmd    string
	asJSON bool
	enc    *json.Encoder
}

// summary ends the output with sum: the last JSON line, {"summary": sum},
// or text for people.
func (w *resultWriter) summary(sum any, text string) error {
	if w.asJSON {
		return w.enc.Encode(map[string]any{"summary": sum})
	}
	fmt.Fprintln(w.env.stdout, text)
	return nil
}

// resultLine is one line of --json.
type resultLine struct {
	Blob      string   `json:"blob"`
	Snapshot  string   `json:"snapshot,omitempty"`
	VersionID string   `json:"version_id,omitempty"`
	Outcome   string   `json:"outcome"`
	Format    string   `json:"format,omitempty"`
	KeyIDs    []string `json:"key_ids,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// newResultLine is r as a line of --json, why its error described.
func newResultLine(r blobstore.WalkResult, why string) resultLine {
	return resultLine{Blob: r.Blob, Snapshot: r.Snapshot, VersionID: r.VersionID, Outcome: r.Outcome, Format: r.Format, KeyIDs: r.KeyIDs, Error: why}
}

// describeErr is how err, the error of the result for blob, reads to
// people, with any SAS signature redacted.
func (w *resultWriter) describeErr(ctx context.Context, blob string, err error) string {
	be := w.store.blobError(err)
	be.blob = blob
	why, _ := describe(ctx, be)
	return redactSAS(why)
}

// printFailure prints why a blob (name, quoted) failed on stderr, on one
// line.
func (w *resultWriter) printFailure(name, why string) {
	fmt.Fprintln(w.env.stderr, shorten(oneLine("geoseal "+w.cmd+": "+name+": "+why), maxLine))
}

func (w *resultWriter) result(ctx context.Context, r blobstore.WalkResult) {
	var why string
	if r.Err != nil {
		why = w.describeErr(ctx, r.Blob, r.Err)
	}
	if w.asJSON {
		w.enc.Encode(newResultLine(r, why))
		return
	}
	name := resultName(r)
	var stdout io.Writer = w.env.stdout
	switch r.Outcome {
	case blobstore.OutcomeNotGeoseal:
		if w.env.common.verbose {
			fmt.Fprintf(stdout, "  skipped %s\n", name)
		}
	case blobstore.OutcomeFailed:
		w.printFailure(name, why)
	case blobstore.OutcomeOutsideKeys:
		fmt.Fprintf(stdout, "  %s is still wrapped for other keys (%s)\n", name, quoteUntrusted(strings.Join(r.KeyIDs, ", ")))
	case blobstore.OutcomeDeleted:
		fmt.Fprintf(stdout, "  %s deleted: it was wrapped for other keys\n", name)
	}
}
