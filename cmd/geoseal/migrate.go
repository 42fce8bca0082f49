package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/region"
)

var migrateHelp = `Usage:

	geoseal migrate CONTAINER-URL --from azure-cse-v1|azure-cse-v2[,...] --to geoseal
	        (--key-file FILE --key-id KID | --rsa-private PEM --key-id KID | --keyvault KEY-URL)
	        [new keys] --policy NAME (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--prefix P] [--shard I/N] [--job NAME [--page-size N]] [--kms-rate N] [--dry-run]
	        [--delete-snapshots] [--json]
	geoseal migrate --container NAME ...

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
	--prefix P          only blobs whose names start with P (or the URL's path
	                    after the container)
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

type migrateCmd struct {
	where containerFlags
	guard guardFlags
	// keys name the old blobs' one key-encryption key; to the new keys.
	keys, to        keyringFlags
	keyID           string
	from            formatsFlag
	toFormat        string
	prefix          string
	shard, job      string
	kmsRate         float64
	concurrency     int
	pageSize        int
	dryRun          bool
	deleteSnapshots bool
	json            bool
}

func (c *migrateCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, false)
	c.guard.register(fs)
	// Azure CSE has one key-encryption key per blob: the keyring flags that
	// can be one.
	fs.Var(&c.keys.keyFiles, "key-file", "the old blobs' AES-256 key file (A256KW), with --key-id")
	fs.Var(&c.keys.rsaPrivate, "rsa-private", "the old blobs' RSA private key PEM, with --key-id")
	fs.Var(&c.keys.keyVault, "keyvault", "the old blobs' Key Vault / Managed HSM key URL")
	fs.StringVar(&c.keyID, "key-id", "", "key id of --key-file or --rsa-private, as the blobs' metadata names it")
	c.to.prefix = "to-"
	c.to.register(fs)
	fs.Var(&c.from, "from", "formats to convert: azure-cse-v1, azure-cse-v2")
	fs.StringVar(&c.toFormat, "to", "", "the format to convert to: geoseal")
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
	fs.StringVar(&c.shard, "shard", "", "I/N: only shard I of N")
	fs.StringVar(&c.job, "job", "", "record progress under .geoseal/jobs/NAME/ and resume from it")
	fs.Float64Var(&c.kmsRate, "kms-rate", 0, "key calls per second (0: no limit)")
	fs.IntVar(&c.concurrency, "concurrency", 0, "blobs at once")
	fs.IntVar(&c.pageSize, "page-size", 0, "blobs per page of the listing, and between two checkpoints (1..5000)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "report what would be converted; change nothing")
	fs.BoolVar(&c.deleteSnapshots, "delete-snapshots", false, "delete snapshots and versions in an old format once their blob is converted")
	fs.BoolVar(&c.json, "json", false, "JSON lines")
}

func (c *migrateCmd) run(ctx context.Context, env *environment, args []string) error {
	switch {
	case len(c.from) == 0:
		return usageErrorf("--from is required: azure-cse-v1, azure-cse-v2, or both")
	case c.toFormat != formatGeoseal:
		return usageErrorf("--to geoseal is required (the only format migrate converts to)")
	case c.dryRun && c.job != "":
		return usageErrorf("--dry-run writes nothing, so it takes no --job (checkpoints are writes)")
	case c.pageSize < 0 || c.pageSize > blobstore.MaxPageSize:
		return usageErrorf("--page-size %d: want 1 to %d (0: %d)", c.pageSize, blobstore.MaxPageSize, blobstore.MaxPageSize)
	}
	scope, err := c.where.walkScope(args, c.prefix, c.shard)
	if err != nil {
		return err
	}
	// The new objects' keys are wrapped for the new keys: theirs are the
	// vaults that will hold the means of decryption.
	guard, err := c.guard.build(env, c.to.keyVault)
	if err != nil {
		return err
	}
	s, err := env.openContainer(scope.loc)
	if err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	_, oldKeys, err := cseKEK(ctx, env, &c.keys, c.keyID, false)
	if err != nil {
		return usageErrorf("the old blobs' key: %v", err)
	}
	kr, err := c.to.build(ctx, env, "encrypt", &cl)
	if err != nil {
		return fmt.Errorf("new keys: %w", err)
	}
	client, err := blobstore.NewClient(s.cc, kr, guard, &blobstore.ClientOptions{CSEv2: oldKeys})
	if err != nil {
		return err
	}
	if slices.Contains(c.from, formatCSEv1) && !c.json && !c.dryRun && !env.common.quiet {
		fmt.Fprintln(env.stderr, "geoseal migrate: warning: Azure client-side encryption v1 has no integrity protection: each geoseal object converted from a v1 blob is only as trustworthy as that blob was.")
	}
	p := env.walkProgress("migrating "+quoteUntrusted(scope.loc.container), -1, c.json)
	out := &migrateWriter{resultWriter: &resultWriter{env: env, store: s, cmd: "migrate", asJSON: c.json, enc: json.NewEncoder(env.stdout)}}
	resp, err := client.Migrate(ctx, &blobstore.MigrateOptions{
		From:            c.from,
		Prefix:          scope.prefix,
		Shard:           scope.shard,
		Shards:          scope.shards,
		Job:             c.job,
		KMSRate:         c.kmsRate,
		Concurrency:     c.concurrency,
		PageSize:        c.pageSize,
		DryRun:          c.dryRun,
		DeleteSnapshots: c.deleteSnapshots,
		Results: func(r blobstore.WalkResult) {
			if r.Snapshot == "" && r.VersionID == "" {
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
	sum := migrateSummary{
		Container: scope.loc.container, Prefix: scope.prefix, Shard: c.shard, Job: c.job, From: c.from, DryRun: c.dryRun,
		Migrated: resp.Migrated, WouldMigrate: resp.WouldMigrate, NotMigrated: resp.NotMigrated, Failed: resp.Failed,
		OldCopies: resp.OldCopies, Deleted: resp.Deleted, Resumed: resp.Resumed, Done: resp.Done,
		FromV1: out.fromV1,
	}
	if out.fromV1 > 0 {
		sum.Warning = migrateNoIntegrity
	}
	if err := out.summary(sum, sum.String()); err != nil {
		return err
	}
	return walkError(s, err, resp.Failed)
}

// migrateWriter prints migrate's outcomes: the failures and snapshots as
// rewrap-all prints them, and what is particular to a migration.
type migrateWriter struct {
	*resultWriter
	fromV1 int64 // blobs converted from CSE v1 by this run
}

// migrateLine is one line of --json: a blob's outcome and, for one
// converted (or to be converted) from CSE v1, the warning.
type migrateLine struct {
	resultLine
	Warning string `json:"warning,omitempty"`
}

func (w *migrateWriter) result(ctx context.Context, r blobstore.WalkResult) {
	noIntegrity := errors.Is(r.Err, blobstore.ErrNoIntegrity)
	if noIntegrity && r.Outcome == blobstore.OutcomeMigrated {
		w.fromV1++
	}
	var why string
	if r.Err != nil && r.Err != blobstore.ErrNoIntegrity {
		// A failure, or a problem besides.
		why = w.describeErr(ctx, r.Blob, r.Err)
	}
	if w.asJSON {
		line := migrateLine{resultLine: newResultLine(r, why)}
		if noIntegrity {
			line.Warning = migrateNoIntegrity
		}
		w.enc.Encode(line)
		return
	}
	name := resultName(r)
	stdout := w.env.stdout
	switch r.Outcome {
	case blobstore.OutcomeWouldMigrate:
		note := ""
		if noIntegrity {
			note = ", no integrity protection"
		}
		fmt.Fprintf(stdout, "  would migrate %s (%s%s)\n", name, r.Format, note)
	case blobstore.OutcomeNotMigrated:
		if w.env.common.verbose {
			fmt.Fprintf(stdout, "  left %s (%s)\n", name, r.Format)
		}
	case blobstore.OutcomeOldCopy:
		fmt.Fprintf(stdout, "  %s keeps the old encryption (%s)\n", name, r.Format)
	case blobstore.OutcomeDeleted:
		fmt.Fprintf(stdout, "  %s deleted: it kept the old encryption\n", name)
	}
	if why != "" {
		w.printFailure(name, why)
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
			s.WouldMigrate, quoteUntrusted(s.Container), s.NotMigrated, strings.Join(s.From, " or "), s.Failed)
	} else {
		fmt.Fprintf(&b, "migrated %d blobs in %s to geoseal; %d not in %s; %d failed (left as they were)",
			s.Migrated, quoteUntrusted(s.Container), s.NotMigrated, strings.Join(s.From, " or "), s.Failed)
	}
	if s.OldCopies+s.Deleted > 0 {
		fmt.Fprintf(&b, "; %d snapshots or versions keep the old encryption", s.OldCopies)
		if s.Deleted > 0 {
			fmt.Fprintf(&b, ", %d deleted", s.Deleted)
		}
	}
	b.WriteString(jobState(s.Job, s.Shard, s.Done, s.Resumed))
	if s.FromV1 > 0 {
		fmt.Fprintf(&b, "\nwarning: %d of them %s", s.FromV1, migrateNoIntegrity)
	}
	return b.String()
}
