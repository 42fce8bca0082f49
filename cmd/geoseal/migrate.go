package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/region"
)

func init() {
	register(command{name: "migrate", summary: "convert a container's Azure client-side encrypted blobs (CSE v1, v2) into geoseal objects in place", run: runMigrate, help: helpFor(migrateHelp)})
}

var migrateHelp = `Usage:

	geoseal migrate --container NAME --from azure-cse-v1|azure-cse-v2[,...] --to geoseal
	        (--key-file FILE --key-id KID | --rsa-private PEM --key-id KID | --keyvault KEY-URL)
	        [new keys] --policy NAME (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--prefix P] [--shard I/N] [--job NAME [--page-size N]] [--kms-rate N] [--dry-run]
	        [--delete-snapshots] [--json]

migrate converts, in place, the blobs of a container that the Azure Storage
SDKs (.NET, Java, Python) encrypted client-side into geoseal objects under
the new keys: Microsoft's advice for CSE v1 blobs since CVE-2022-30187 is to
download, decrypt and re-encrypt them, and CSE v2 has no encryption context
and no authenticated metadata. Blobs of other formats (geoseal objects, plain
blobs) are left alone, so running it again converts only what is left.

For each blob it reads the old blob in one GET and decrypts it as it
arrives (CSE v2 is authenticated region by region), uploads the plaintext as
a geoseal object to the same name, and commits only if the blob is still the
one it read: a blob another writer changes meanwhile is never overwritten.
The blob keeps its metadata (without the old "encryptiondata" entry), HTTP
headers, index tags and access tier. A blob that fails (a key that does not
unwrap, a region that does not authenticate, a change by another writer) is
reported and left exactly as it was.

CSE v1 (AES-CBC) HAS NO INTEGRITY PROTECTION: nothing tells a modified v1
blob from the one the SDK wrote, so a geoseal object converted from it is
only as trustworthy as the v1 blob was. migrate says so for every v1 blob it
converts (--json: a "warning" on its line) and in its summary.

Snapshots and previous versions keep the old encryption and open with the
old key; migrate reports each one (old-copy), and --delete-snapshots deletes
them once their blob is a geoseal object.

Scale out and resume as with rewrap-all: N workers given --shard 0/N to
--shard N-1/N split the container by a hash of the blob names, and with
--job NAME each shard records its progress in the container
(.geoseal/jobs/NAME/) so that running the same command again resumes after
the last record.

` + containerHelp + `
` + guardHelp + `
Keys that open the old blobs (one key-encryption key, as Azure CSE names it):

	--key-file FILE --key-id KID     a 32-byte AES key file (A256KW), with the
	                                 key id the blobs' metadata names
	--rsa-private PEM --key-id KID   an RSA private key (RSA-OAEP-256, RSA-OAEP)
	--keyvault KEY-URL               a Key Vault or Managed HSM key; its
	                                 versions are the key ids

	Only the algorithms of the key's type are used, whatever the metadata asks
	for; under GODEBUG=fips140=only a local A256KW key and RSA-OAEP (SHA-1)
	are refused: unwrap in Key Vault, Managed HSM, or with RSA-OAEP-256.

New keys (the geoseal objects will be wrapped for exactly these):

` + keyringHelp("to-") + `
Flags:

	--from FORMATS      azure-cse-v1, azure-cse-v2, or both (comma-separated or
	                    repeated): the formats to convert
	--to geoseal        the format to convert to (the only one)
	--prefix P          only blobs whose names start with P
	--shard I/N         only the blobs of shard I of N (0 <= I < N)
	--job NAME          record progress under .geoseal/jobs/NAME/ and resume
	                    from it (letters, digits, '.', '-', '_')
	--kms-rate N        at most N key calls per second: the old key's unwrap
	                    and the new keys' wrap of each blob (0: no limit)
	--concurrency N     blobs converted at once (default 4)
	--page-size N       blobs per page of the listing (default 5000): a job is
	                    checkpointed after each page
	--dry-run           list what would be converted, from the listing alone:
	                    nothing is read, unwrapped or written (no --job)
	--delete-snapshots  delete the snapshots and previous versions in an old
	                    format once their blob is a geoseal object (never by
	                    default)
	--json              JSON lines on stdout: one per blob, snapshot or version
	                    ({"blob", "outcome", "format", ...}), then one
	                    {"summary": {...}}
	--quiet             no progress report

Outcomes: migrated, would-migrate (--dry-run), not-migrated (another format:
"format" says which), failed, and for snapshots and versions old-copy or
deleted.

Exit status: 0 no blob failed, 3 refused by the region policy, 1 if any blob
failed or on any other error (a job's shard run by another worker included).
`

// migrateNoIntegrity is what migrate says of the blobs it converts from CSE
// v1.
const migrateNoIntegrity = "converted from Azure client-side encryption v1, which has no integrity protection: the geoseal object is only as trustworthy as the v1 blob was"

// formatsFlag is --from: formats, comma-separated or repeated.
type formatsFlag []string

func (f *formatsFlag) String() string { return strings.Join(*f, ",") }

func (f *formatsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		switch s = strings.TrimSpace(s); s {
		case formatCSEv1, formatCSEv2:
			if !slices.Contains(*f, s) {
				*f = append(*f, s)
			}
		default:
			return fmt.Errorf("%s is not a format migrate converts (want %s or %s)", quoteUntrusted(s), formatCSEv1, formatCSEv2)
		}
	}
	return nil
}

func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "migrate"
	fs := flagSet(cmd, stderr, helpFor(migrateHelp))
	var b blobFlags
	b.registerContainer(fs)
	b.registerGuard(fs)
	var from formatsFlag
	fs.Var(&from, "from", "formats to convert: azure-cse-v1, azure-cse-v2")
	to := fs.String("to", "", "the format to convert to: geoseal")
	keyID := fs.String("key-id", "", "key id of --key-file or --rsa-private, as the blobs' metadata names it")
	prefix := fs.String("prefix", "", "only blobs whose names start with this")
	shard := fs.String("shard", "", "I/N: only shard I of N")
	job := fs.String("job", "", "record progress under .geoseal/jobs/NAME/ and resume from it")
	kmsRate := fs.Float64("kms-rate", 0, "key calls per second (0: no limit)")
	concurrency := fs.Int("concurrency", 0, "blobs at once")
	pageSize := fs.Int("page-size", 0, "blobs per page of the listing, and between two checkpoints (default 5000)")
	dryRun := fs.Bool("dry-run", false, "report what would be converted; change nothing")
	deleteSnapshots := fs.Bool("delete-snapshots", false, "delete snapshots and versions in an old format once their blob is converted")
	asJSON := fs.Bool("json", false, "JSON lines")
	quiet := fs.Bool("quiet", false, "no progress report")
	// The old blobs have one key-encryption key, as Azure CSE names it: the
	// keyring flags that can be one.
	keys, newKeys := keyringFlags{}, keyringFlags{prefix: "to-"}
	fs.Var(&keys.keyFiles, "key-file", "the old blobs' AES-256 key file (A256KW), with --key-id")
	fs.Var(&keys.rsaPrivate, "rsa-private", "the old blobs' RSA private key PEM, with --key-id")
	fs.Var(&keys.keyVault, "keyvault", "the old blobs' Key Vault / Managed HSM key URL")
	newKeys.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	switch {
	case len(from) == 0:
		return usageError(stderr, cmd, "--from is required: azure-cse-v1, azure-cse-v2, or both")
	case *to != formatGeoseal:
		return usageError(stderr, cmd, "--to geoseal is required (the only format migrate converts to)")
	case *dryRun && *job != "":
		return usageError(stderr, cmd, "--dry-run writes nothing, so it takes no --job (checkpoints are writes)")
	case *pageSize < 0 || *pageSize > blobstore.MaxPageSize:
		return usageError(stderr, cmd, "--page-size %d: want 1 to %d (0: %d)", *pageSize, blobstore.MaxPageSize, blobstore.MaxPageSize)
	}
	si, sn, err := parseShard(*shard)
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	guard, err := b.guard(true, newKeys.keyVault)
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	cc, err := b.containerClient()
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	_, oldKeys, err := cseKEK(ctx, &keys, *keyID, false)
	if err != nil {
		return usageError(stderr, cmd, "keys of the old blobs: %s", oneLine(err))
	}
	kr, err := newKeys.build(ctx, "encrypt", &cl)
	if err != nil {
		return fail(stderr, cmd, exitUsage, fmt.Errorf("new keys: %w", err))
	}
	client, err := blobstore.NewClient(cc, kr, guard, &blobstore.ClientOptions{CSEv2: oldKeys})
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	if slices.Contains(from, formatCSEv1) && !*asJSON && !*dryRun {
		fmt.Fprintf(stderr, "geoseal migrate: warning: Azure client-side encryption v1 has no integrity protection: each geoseal object converted from a v1 blob is only as trustworthy as that blob was.\n")
	}
	p := newProgress(stderr, "migrating "+b.container, "blobs", -1, *quiet || *asJSON)
	out := &migrateWriter{resultWriter: newResultWriter(stdout, stderr, cmd, *asJSON)}
	resp, err := client.Migrate(ctx, &blobstore.MigrateOptions{
		From:            from,
		Prefix:          *prefix,
		Shard:           si,
		Shards:          sn,
		Job:             *job,
		KMSRate:         *kmsRate,
		Concurrency:     *concurrency,
		PageSize:        *pageSize,
		DryRun:          *dryRun,
		DeleteSnapshots: *deleteSnapshots,
		Results: func(r blobstore.WalkResult) {
			p.add(1)
			out.result(r)
		},
	})
	p.done()
	var v *region.Violation
	if errors.As(err, &v) {
		return blobFail(stderr, cmd, err)
	}
	summary := migrateSummary{
		Container: b.container, Prefix: *prefix, Shard: *shard, Job: *job, From: from, DryRun: *dryRun,
		Migrated: resp.Migrated, WouldMigrate: resp.WouldMigrate, NotMigrated: resp.NotMigrated, Failed: resp.Failed,
		OldCopies: resp.OldCopies, Deleted: resp.Deleted, Resumed: resp.Resumed, Done: resp.Done,
		FromV1: out.fromV1,
	}
	if out.fromV1 > 0 {
		summary.Warning = migrateNoIntegrity
	}
	if *asJSON {
		out.json(map[string]any{"summary": summary})
	} else {
		fmt.Fprintf(stdout, "%s\n", summary)
	}
	if err != nil && resp.Failed == 0 {
		return blobFail(stderr, cmd, err)
	}
	if err != nil {
		return exitUsage
	}
	return exitOK
}

// migrateWriter prints migrate's outcomes: the failures and snapshots as
// rewrap-all prints them, and what is particular to a migration.
type migrateWriter struct {
	*resultWriter
	fromV1 int64 // blobs converted from CSE v1 by this run
}

// migrateLine is one line of --json: a blob's outcome and, for one
// converted from CSE v1, the warning.
type migrateLine struct {
	resultLine
	Warning string `json:"warning,omitempty"`
}

func (w *migrateWriter) result(r blobstore.WalkResult) {
	noIntegrity := errors.Is(r.Err, blobstore.ErrNoIntegrity)
	if noIntegrity && r.Outcome == blobstore.OutcomeMigrated {
		w.fromV1++
	}
	if w.asJSON {
		line := migrateLine{resultLine: resultLine{Blob: r.Blob, Snapshot: r.Snapshot, VersionID: r.VersionID, Outcome: r.Outcome, Format: r.Format, KeyIDs: r.KeyIDs}}
		if noIntegrity {
			line.Warning = migrateNoIntegrity
			if r.Err != blobstore.ErrNoIntegrity {
				line.Error = oneLine(explain(r.Err)) // a problem besides
			}
		} else if r.Err != nil {
			line.Error = oneLine(explain(r.Err))
		}
		w.enc.Encode(line)
		return
	}
	name := quoteUntrusted(r.Blob)
	switch {
	case r.Snapshot != "":
		name += " snapshot " + quoteUntrusted(r.Snapshot)
	case r.VersionID != "":
		name += " version " + quoteUntrusted(r.VersionID)
	}
	switch r.Outcome {
	case blobstore.OutcomeWouldMigrate:
		note := ""
		if noIntegrity {
			note = ", no integrity protection"
		}
		fmt.Fprintf(w.stdout, "  would migrate %s (%s%s)\n", name, r.Format, note)
	case blobstore.OutcomeMigrated:
		if r.Err != nil && r.Err != blobstore.ErrNoIntegrity {
			fmt.Fprintf(w.stderr, "geoseal %s: %s: %s\n", w.cmd, name, oneLine(explain(r.Err)))
		}
	case blobstore.OutcomeOldCopy:
		fmt.Fprintf(w.stdout, "  %s keeps the old encryption (%s)\n", name, r.Format)
	case blobstore.OutcomeDeleted:
		fmt.Fprintf(w.stdout, "  %s deleted: it kept the old encryption\n", name)
	case blobstore.OutcomeFailed:
		w.resultWriter.result(r)
	}
}

// migrateSummary is the last line of migrate: the counts of the run (of the
// whole job, for a resumed one).
type migrateSummary struct {
	Container    string   `json:"container"`
	Prefix       string   `json:"prefix"`
	Shard        string   `json:"shard,omitempty"`
	Job          string   `json:"job,omitempty"`
	From         []string `json:"from"`
	DryRun       bool     `json:"dry_run"`
	Migrated     int64    `json:"migrated"`
	WouldMigrate int64    `json:"would_migrate"`
	NotMigrated  int64    `json:"not_migrated"`
	Failed       int64    `json:"failed"`
	OldCopies    int64    `json:"old_copies"`
	Deleted      int64    `json:"deleted"`
	Resumed      bool     `json:"resumed"`
	Done         bool     `json:"done"`
	// FromV1 counts the blobs this run (not the job's earlier runs)
	// converted from CSE v1, and Warning says what that means.
	FromV1  int64  `json:"migrated_from_v1"`
	Warning string `json:"warning,omitempty"`
}

func (s migrateSummary) String() string {
	var b strings.Builder
	if s.DryRun {
		fmt.Fprintf(&b, "would migrate %d blobs in %s to geoseal (dry run: nothing was read or written); %d not in %s; %d would fail",
			s.WouldMigrate, s.Container, s.NotMigrated, strings.Join(s.From, " or "), s.Failed)
	} else {
		fmt.Fprintf(&b, "migrated %d blobs in %s to geoseal; %d not in %s; %d failed (left as they were)",
			s.Migrated, s.Container, s.NotMigrated, strings.Join(s.From, " or "), s.Failed)
	}
	if s.OldCopies+s.Deleted > 0 {
		fmt.Fprintf(&b, "; %d snapshots or versions keep the old encryption", s.OldCopies)
		if s.Deleted > 0 {
			fmt.Fprintf(&b, ", %d deleted", s.Deleted)
		}
	}
	if s.Job != "" {
		state := "in progress"
		if s.Done {
			state = "done"
		}
		fmt.Fprintf(&b, " (job %s, shard %s: %s", s.Job, cmpOr(s.Shard, "0/1"), state)
		if s.Resumed {
			b.WriteString(", resumed")
		}
		b.WriteString(")")
	}
	if s.FromV1 > 0 {
		fmt.Fprintf(&b, "\nwarning: %d of them %s", s.FromV1, migrateNoIntegrity)
	}
	return b.String()
}
