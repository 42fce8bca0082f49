package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/region"
)

var auditHelp = `Usage:

	geoseal audit CONTAINER-URL [--prefix P] [keys] [--policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)]
	        [--shard I/N] [--json] [--report FILE]
	geoseal audit --container NAME ...

audit reports what a container holds, for a compliance officer: every blob
classified as geoseal, azure-cse-v2, azure-cse-v1 or not-encrypted (a blob
that is not encrypted, in a container of export-controlled technical data,
is the finding that matters most); which key ids wrap how many objects;
with keys given, the objects none of them can open and the snapshots and
versions still wrapped for other keys; the region guard's decision for the
account (with --arm-account: its regions, replication and failover state)
and, for Key Vault keys, the key's type (HSM-backed or not), whether it is
exportable and its vault's region; and the FIPS 140 state of this binary.

It reads listing metadata and headers only, never a body, unwraps nothing
and writes nothing to the container: a geoseal object costs one ranged GET,
a blob without metadata 13 bytes, Azure client-side encryption nothing
beyond the listing.

` + containerHelp + `
Region guard (optional; without it the account's regions are not judged):

	--policy NAME, --primary REGION, --secondary REGION, --arm-account
	SUB/RG/ACCOUNT, --keyvault-region REGION, --override FILE: as for put

Keys the objects should be wrapped for (optional; public keys are enough,
nothing is unwrapped):

` + keyringHelp("") + `
Flags:

	--prefix P        only blobs whose names start with P (or give it in the
	                  URL, after the container)
	--shard I/N       only the blobs of shard I of N (see rewrap-all)
	--concurrency N   blobs read at once (default 16)
	--page-size N     blobs per page of the listing, 1 to 5000 (default 5000)
	--json            print one JSON object: "blobs", "by_format",
	                  "findings" (each with "blob" and "kind"), "keys",
	                  "region", "fips"...
	--report FILE     write the same as an HTML page for filing (tables, the
	                  region decision, the date and the tool version); the
	                  file appears only once complete

Finding kinds: not-encrypted, cannot-open, outside-keys, no-integrity (Azure
CSE v1), unknown-encryption, missing-metadata, unreadable.

Exit status: 0 when the audit ran (whatever it found), 1 on any error.
`

type auditCmd struct {
	where         containerFlags
	guard         guardFlags
	keys          keyringFlags
	prefix, shard string
	concurrency   int
	pageSize      int
	json          bool
	report        string
}

func (c *auditCmd) flags(fs *flag.FlagSet) {
	c.where.register(fs, false)
	c.guard.register(fs)
	c.keys.register(fs)
	fs.StringVar(&c.prefix, "prefix", "", "only blobs whose names start with this")
	fs.StringVar(&c.shard, "shard", "", "I/N: only shard I of N")
	fs.IntVar(&c.concurrency, "concurrency", 0, "blobs at once")
	fs.IntVar(&c.pageSize, "page-size", 0, "blobs per page of the listing (1..5000)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	fs.StringVar(&c.report, "report", "", "write an HTML report to this file")
}

func (c *auditCmd) run(ctx context.Context, env *environment, args []string) error {
	scope, err := c.where.walkScope(args, c.prefix, c.shard)
	if err != nil {
		return err
	}
	var cl closers
	defer cl.close()
	krs, err := c.keys.buildEach(ctx, env, "encrypt", &cl)
	if err != nil {
		return err
	}
	// The guard is optional: an audit writes nothing, and reports the
	// guard's decision when it is given a policy.
	judged := c.guard.policy != "" || env.getenv(envPolicy) != ""
	guard := readGuard()
	if judged {
		if guard, err = c.guard.build(env, c.keys.keyVault); err != nil {
			return err
		}
	}
	s, err := env.openContainer(scope.loc)
	if err != nil {
		return err
	}
	// The client's keyring is never used: an audit unwraps nothing.
	client, err := blobstore.NewClient(s.cc, noKeys{}, guard, nil)
	if err != nil {
		return err
	}
	var report *auditReport
	if c.report != "" {
		if report, err = newAuditReport(c.report, env.stdout); err != nil {
			return err
		}
		defer report.abort()
	}
	var out *auditJSON
	if c.json {
		out = newAuditJSON(env.stdout)
	}
	p := env.walkProgress("auditing "+quoteUntrusted(scope.loc.container), -1, c.json)
	opts := &blobstore.AuditOptions{
		Prefix: scope.prefix, Shard: scope.shard, Shards: scope.shards, Concurrency: c.concurrency, PageSize: c.pageSize,
		Results: func(blobstore.WalkResult) { p.add(1) },
		Findings: func(f blobstore.Finding) {
			if out != nil {
				out.finding(f)
			} else {
				fmt.Fprintf(env.stdout, "finding: %s\n", describeFinding(f))
			}
			if report != nil {
				report.finding(f)
			}
		},
	}
	for _, kr := range krs {
		opts.Keys = append(opts.Keys, kr)
	}
	resp, err := client.Audit(ctx, opts)
	p.done()
	if err != nil {
		return s.fail(err)
	}
	sum := newAuditSummary(scope.loc.container, c.shard, judged, resp)
	if out != nil {
		if err := out.finish(sum); err != nil {
			return err
		}
	} else {
		io.WriteString(env.stdout, sum.text())
	}
	if report != nil {
		return report.finish(sum)
	}
	return nil
}

// describeFinding is a finding on one line, the blob name quoted (whoever
// can write to the container chooses it).
func describeFinding(f blobstore.Finding) string {
	var b strings.Builder
	b.WriteString(f.Kind)
	b.WriteString(" ")
	b.WriteString(quoteUntrusted(f.Blob))
	switch {
	case f.Snapshot != "":
		b.WriteString(" snapshot " + quoteUntrusted(f.Snapshot))
	case f.VersionID != "":
		b.WriteString(" version " + quoteUntrusted(f.VersionID))
	}
	if f.Format != "" {
		b.WriteString(" (" + f.Format)
		if len(f.KeyIDs) > 0 {
			b.WriteString(", wrapped for " + quoteUntrusted(strings.Join(f.KeyIDs, ", ")))
		}
		b.WriteString(")")
	}
	if f.Detail != "" {
		b.WriteString(": " + quoteUntrusted(f.Detail))
	}
	return b.String()
}

// auditSummary is the audit's result as --json and --report present it.
type auditSummary struct {
	Container    string           `json:"container"`
	URL          string           `json:"url"`
	Prefix       string           `json:"prefix"`
	Shard        string           `json:"shard,omitempty"`
	Blobs        int64            `json:"blobs"`
	ByFormat     map[string]int64 `json:"by_format"`
	Snapshots    int64            `json:"snapshots"`
	Versions     int64            `json:"versions"`
	KeyIDs       []keyCount       `json:"key_ids"`
	OtherKeyIDs  int64            `json:"other_key_ids,omitempty"`
	FindingCount map[string]int64 `json:"finding_counts"`
	Keys         []auditKey       `json:"keys"`
	Region       auditRegion      `json:"region"`
	FIPS         auditFIPS        `json:"fips"`
	Started      time.Time        `json:"started"`
	Finished     time.Time        `json:"finished"`
	Tool         string           `json:"tool"`
}

type keyCount struct {
	KeyID   string `json:"key_id"`
	Objects int64  `json:"objects"`
}

type auditKey struct {
	KeyID      string           `json:"key_id"`
	Objects    int64            `json:"objects"`
	KeyType    string           `json:"key_type,omitempty"`
	HSM        *bool            `json:"hsm,omitempty"`
	ManagedHSM bool             `json:"managed_hsm,omitempty"`
	Exportable *bool            `json:"exportable,omitempty"`
	Vault      *region.Location `json:"vault,omitempty"`
}

type auditRegion struct {
	// Judged is false when no --policy was given.
	Judged   bool             `json:"judged"`
	Decision *region.Decision `json:"decision,omitempty"`
	Error    string           `json:"error,omitempty"`
	Text     string           `json:"text"`
}

type auditFIPS struct {
	ModuleVersion string `json:"module_version"`
	Enabled       bool   `json:"enabled"`
	Enforced      bool   `json:"enforced"`
}

func newAuditSummary(container, shard string, judged bool, r blobstore.AuditResponse) *auditSummary {
	s := &auditSummary{
		Container: container, URL: r.Container, Prefix: r.Prefix, Shard: shard,
		Blobs: r.Blobs, ByFormat: r.ByFormat, Snapshots: r.Snapshots, Versions: r.Versions,
		OtherKeyIDs: r.OtherKeyIDs, FindingCount: r.Findings,
		FIPS:    auditFIPS{r.FIPS.ModuleVersion, r.FIPS.Enabled, r.FIPS.Enforced},
		Started: r.Started, Finished: r.Finished, Tool: toolVersion(),
		KeyIDs: []keyCount{}, Keys: []auditKey{},
	}
	for id, n := range r.KeyIDs {
		s.KeyIDs = append(s.KeyIDs, keyCount{id, n})
	}
	slices.SortFunc(s.KeyIDs, func(a, b keyCount) int {
		if a.Objects != b.Objects {
			return int(b.Objects - a.Objects)
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	for _, k := range r.Keys {
		ak := auditKey{KeyID: k.KeyID, Objects: k.Objects, Vault: k.Vault}
		if kv := k.KeyVault; kv != nil {
			ak.KeyType, ak.HSM, ak.ManagedHSM, ak.Exportable = kv.KeyType, &kv.HSM, kv.ManagedHSM, &kv.Exportable
		}
		s.Keys = append(s.Keys, ak)
	}
	s.Region.Judged = judged
	switch {
	case !judged:
		s.Region.Text = "not judged: no --policy given (give --policy with --primary/--secondary or --arm-account)"
	case r.Decision != nil:
		s.Region.Decision = r.Decision
		if r.Decision.Allowed {
			s.Region.Text = "allowed: " + r.Decision.Reason
		} else {
			s.Region.Text = r.GuardError.Error()
		}
	default:
		s.Region.Error = r.GuardError.Error()
		s.Region.Text = "not decided: " + r.GuardError.Error()
	}
	return s
}

// text is the summary for people.
func (s *auditSummary) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit of %s", s.Container)
	if s.Prefix != "" {
		fmt.Fprintf(&b, ", prefix %s", quoteUntrusted(s.Prefix))
	}
	if s.Shard != "" {
		fmt.Fprintf(&b, ", shard %s", s.Shard)
	}
	fmt.Fprintf(&b, "\n  %d blobs: %d geoseal, %d azure-cse-v2, %d azure-cse-v1, %d not-encrypted", s.Blobs,
		s.ByFormat[blobstore.FormatGeoseal], s.ByFormat[blobstore.FormatCSEv2], s.ByFormat[blobstore.FormatCSEv1], s.ByFormat[blobstore.FormatNotEncrypted])
	if n := s.ByFormat[blobstore.FormatUnknown]; n > 0 {
		fmt.Fprintf(&b, ", %d unknown", n)
	}
	fmt.Fprintf(&b, "; %d snapshots, %d previous versions\n", s.Snapshots, s.Versions)
	var findings []string
	for _, k := range findingOrder {
		if n := s.FindingCount[k]; n > 0 {
			findings = append(findings, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(findings) == 0 {
		findings = []string{"none"}
	}
	fmt.Fprintf(&b, "  findings: %s\n", strings.Join(findings, ", "))
	for _, k := range s.KeyIDs {
		fmt.Fprintf(&b, "  key %s wraps %d objects\n", quoteUntrusted(k.KeyID), k.Objects)
	}
	for _, k := range s.Keys {
		fmt.Fprintf(&b, "  given key %s: %d objects", quoteUntrusted(k.KeyID), k.Objects)
		if k.KeyType != "" {
			fmt.Fprintf(&b, ", %s, HSM %v, exportable %v", k.KeyType, *k.HSM, *k.Exportable)
		}
		if k.Vault != nil {
			fmt.Fprintf(&b, ", vault in %s", k.Vault.Primary)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  region: %s\n", s.Region.Text)
	fmt.Fprintf(&b, "  FIPS 140: module %s, enabled %v, enforced %v\n", s.FIPS.ModuleVersion, s.FIPS.Enabled, s.FIPS.Enforced)
	return b.String()
}

// findingOrder is the order findings are summarized in: the most serious
// first.
var findingOrder = []string{
	blobstore.FindingNotEncrypted, blobstore.FindingCannotOpen, blobstore.FindingOutsideKeys, blobstore.FindingNoIntegrity,
	blobstore.FindingUnknownEncryption, blobstore.FindingMissingMetadata, blobstore.FindingUnreadable,
}

// toolVersion names this binary for the report: geoseal's version and
// revision, the Go version (see geoseal version).
func toolVersion() string {
	b := currentBuild()
	v := "geoseal " + b.Version
	if b.Revision != "" {
		v += " " + b.Revision
	}
	return v + ", " + b.GoVersion
}

// auditJSON writes the one JSON object of audit --json, the findings
// first and as they come, so that nothing accumulates per blob.
type auditJSON struct {
	w   io.Writer
	n   int
	err error
}

func newAuditJSON(w io.Writer) *auditJSON {
	j := &auditJSON{w: w}
	_, j.err = io.WriteString(w, `{"findings":[`)
	return j
}

type findingJSON struct {
	Blob      string   `json:"blob"`
	Snapshot  string   `json:"snapshot,omitempty"`
	VersionID string   `json:"version_id,omitempty"`
	Kind      string   `json:"kind"`
	Format    string   `json:"format,omitempty"`
	KeyIDs    []string `json:"key_ids,omitempty"`
	Detail    string   `json:"detail,omitempty"`
}

func (j *auditJSON) finding(f blobstore.Finding) {
	if j.err != nil {
		return
	}
	data, err := json.Marshal(findingJSON{f.Blob, f.Snapshot, f.VersionID, f.Kind, f.Format, f.KeyIDs, f.Detail})
	if err != nil {
		j.err = err
		return
	}
	if j.n > 0 {
		data = append([]byte{','}, data...)
	}
	j.n++
	_, j.err = j.w.Write(data)
}

// finish closes the findings and writes the rest of the object.
func (j *auditJSON) finish(s *auditSummary) error {
	if j.err != nil {
		return j.err
	}
	rest, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// rest is {...}: it continues the object after the findings.
	_, err = fmt.Fprintf(j.w, "],%s\n", rest[1:])
	return err
}

// auditReport writes audit --report: the findings are spooled to a
// temporary file as they come, then the page is written with the summary
// first, and renamed into place only once complete.
type auditReport struct {
	rows  *os.File
	n     int64
	err   error
	final *output
}

func newAuditReport(path string, stdout io.Writer) (*auditReport, error) {
	out, err := createOutput(path, stdout, false)
	if err != nil {
		return nil, err
	}
	rows, err := os.CreateTemp("", "geoseal-audit-*.rows")
	if err != nil {
		out.abort()
		return nil, err
	}
	os.Remove(rows.Name()) // unlinked: gone when closed, whatever happens
	return &auditReport{rows: rows, final: out}, nil
}

func (r *auditReport) finding(f blobstore.Finding) {
	if r.err != nil {
		return
	}
	r.n++
	r.err = findingRow.Execute(r.rows, f)
}

func (r *auditReport) finish(s *auditSummary) error {
	if r.err != nil {
		return r.err
	}
	if _, err := r.rows.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := writeReport(r.final, s, r.n, r.rows); err != nil {
		return err
	}
	return r.final.commit()
}

func (r *auditReport) abort() {
	r.rows.Close()
	r.final.abort()
}
