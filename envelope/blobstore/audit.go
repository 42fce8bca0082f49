package blobstore

import (
	"context"
	"crypto/fips140"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/geoseal/geoseal/internal/kvurl"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// AuditOptions configure Audit. Nil means the defaults: the whole
// container, DefaultWalkConcurrency blobs at a time, no keys to check
// against.
type AuditOptions struct {
	// Prefix, Shard and Shards select part of the container, as for
	// RewrapAll.
	Prefix        string
	Shard, Shards int

	// Concurrency is how many blobs are read at once. Zero means
	// DefaultWalkConcurrency.
	Concurrency int

	// Keys are the keyrings the container's objects should be wrapped
	// for (their key ids, keyring.KeyIDs; nothing is unwrapped). With
	// keys given, Audit reports every object none of them can open
	// (FindingCannotOpen), and every object, snapshot or version also
	// wrapped for a key outside them (FindingOutsideKeys). A Key Vault
	// keyring (*keyring.KeyVault) is described in AuditResponse.Keys.
	Keys []keyring.Wrapper

	// Findings, when set, receives every finding as it is made, one call
	// at a time. Nothing is kept per blob: the response only counts them.
	Findings func(Finding)

	// Results, when set, receives the classification of every blob,
	// snapshot and version (OutcomeAudited), one call at a time.
	Results func(WalkResult)

	// PageSize bounds the blobs of one page of the listing, as for
	// RewrapAll.
	PageSize int
}

// Kinds of findings. A compliance officer reads them in this order.
const (
	// FindingNotEncrypted: a blob (or snapshot, or version) that is not
	// encrypted at all. In a container of export-controlled technical data
	// this is the finding that matters most.
	FindingNotEncrypted = "not-encrypted"
	// FindingCannotOpen: an encrypted blob that none of the keys given
	// can open (decided from its header or metadata, without unwrapping).
	FindingCannotOpen = "cannot-open"
	// FindingOutsideKeys: a snapshot or version wrapped for a key outside
	// those given, or a blob wrapped for one as well as for one of them:
	// that key still opens it.
	FindingOutsideKeys = "outside-keys"
	// FindingNoIntegrity: a blob of Azure client-side encryption v1
	// (AES-CBC), which has no integrity protection: migrate it.
	FindingNoIntegrity = "no-integrity"
	// FindingUnknownEncryption: encryption metadata this package does not
	// understand (another protocol, or malformed).
	FindingUnknownEncryption = "unknown-encryption"
	// FindingMissingMetadata: a geoseal object whose geoseal metadata was
	// removed (recognised by its header); it reads and rotates, and
	// RewrapAll restores the metadata.
	FindingMissingMetadata = "missing-metadata"
	// FindingUnreadable: a blob whose header could not be read or parsed
	// (Finding.Detail says why).
	FindingUnreadable = "unreadable"
)

// A Finding is one thing the audit found that someone must look at.
type Finding struct {
	// Blob is the blob's name; Snapshot or VersionID is set for a
	// snapshot or a previous version.
	Blob      string
	Snapshot  string
	VersionID string
	// Kind is one of the Finding constants.
	Kind string
	// Format is the blob's format, and KeyIDs the key ids its header (or
	// its client-side encryption metadata) lists.
	Format string
	KeyIDs []string
	// Detail explains an unreadable blob.
	Detail string
}

// maxAuditKeyIDs bounds the distinct key ids an audit counts objects for:
// headers are written by anyone who can write to the container, and a
// hostile one must not grow the response without bound.
const maxAuditKeyIDs = 10000

// AuditResponse is what Audit found.
type AuditResponse struct {
	// Container is the container's URL; Prefix, Shard and Shards what was
	// audited of it.
	Container     string
	Prefix        string
	Shard, Shards int

	// Blobs counts the blobs (snapshots and previous versions apart),
	// ByFormat them by format: FormatGeoseal, FormatCSEv2, FormatCSEv1 and
	// FormatNotEncrypted are always present, FormatUnknown when there are
	// any.
	Blobs    int64
	ByFormat map[string]int64
	// Snapshots and Versions count the snapshots and previous versions.
	Snapshots, Versions int64

	// KeyIDs counts, for each key id, the blobs wrapped for it (a blob
	// wrapped for two keys counts for each). Past maxAuditKeyIDs distinct
	// ids, the rest are counted in OtherKeyIDs.
	KeyIDs      map[string]int64
	OtherKeyIDs int64

	// Findings counts the findings by kind.
	Findings map[string]int64

	// Keys describes the keys given in AuditOptions.Keys.
	Keys []AuditKey

	// Decision is the region guard's decision for the account (with ARM:
	// its primary and secondary regions, replication and failover state,
	// and the vaults of the keys the guard was told about). When the
	// guard refuses, Decision is set and GuardError is the *region.Violation;
	// when it cannot decide, Decision is nil and GuardError says why.
	Decision   *region.Decision
	GuardError error

	// FIPS is the state of this process's FIPS 140 cryptography.
	FIPS FIPSState

	// Started and Finished bound the audit.
	Started, Finished time.Time
}

// An AuditKey is one of the keys the audit checked the objects against.
type AuditKey struct {
	KeyID string
	// Objects counts the blobs wrapped for it (any version of a Key Vault
	// key, which its keyring unwraps).
	Objects int64
	// KeyVault describes a Key Vault or Managed HSM key: its type, whether
	// an HSM holds it, whether it is exportable. Nil for other keys.
	KeyVault *keyring.KeyVaultKeyInfo
	// Vault is where the guard located the key's vault (see
	// region.GuardOptions.KeyVaults), when it was told to and the vault
	// could be matched to the key; nil otherwise.
	Vault *region.Location
}

// FIPSState is the FIPS 140 state of the running process
// (crypto/fips140).
type FIPSState struct {
	// ModuleVersion is the version of Go's FIPS 140-3 cryptographic
	// module in this binary.
	ModuleVersion string
	// Enabled reports FIPS 140-3 mode (GODEBUG=fips140=on or only);
	// Enforced reports that non-approved algorithms are refused
	// (fips140=only).
	Enabled, Enforced bool
}

// CurrentFIPSState reports the FIPS 140 state of this process.
func CurrentFIPSState() FIPSState {
	return FIPSState{ModuleVersion: fips140.Version(), Enabled: fips140.Enabled(), Enforced: fips140.Enforced()}
}

// Audit reports what the container holds, for a compliance officer: every
// blob classified by format (FormatGeoseal, FormatCSEv2, FormatCSEv1,
// FormatNotEncrypted), which key ids wrap how many objects, the findings
// (blobs not encrypted, objects none of opts.Keys can open, snapshots and
// versions under other keys...), the region guard's decision for the
// account, the Key Vault keys' type and vault, and this process's FIPS 140
// state.
//
// It reads the listing's metadata and headers only, never a body, and
// unwraps nothing: a geoseal object costs one ranged GET (its header), a
// blob without metadata one GET of 13 bytes (two if it turns out to be a
// geoseal object), Azure client-side encryption nothing beyond the
// listing. It writes nothing, so it needs no guard's permission: the
// guard's decision is reported, whatever it is. Memory is bounded by a
// page of the listing: findings go to opts.Findings as they are made.
//
// The error is that of the walk (the listing failed, ctx ended); a blob
// that cannot be read is a finding (FindingUnreadable), not an error.
func (c *Client) Audit(ctx context.Context, opts *AuditOptions) (AuditResponse, error) {
	if opts == nil {
		opts = &AuditOptions{}
	}
	a := &audit{
		c:    c,
		opts: opts,
		resp: AuditResponse{
			Container: c.container.URL(),
			Prefix:    opts.Prefix,
			Shard:     opts.Shard,
			Shards:    opts.Shards,
			ByFormat:  map[string]int64{FormatGeoseal: 0, FormatCSEv2: 0, FormatCSEv1: 0, FormatNotEncrypted: 0},
			KeyIDs:    map[string]int64{},
			Findings:  map[string]int64{},
			FIPS:      CurrentFIPSState(),
			Started:   time.Now().UTC(),
		},
	}
	if err := a.keys(); err != nil {
		return AuditResponse{}, err
	}
	spec := &walkSpec{
		op:          "audit",
		prefix:      opts.Prefix,
		shard:       opts.Shard,
		shards:      opts.Shards,
		concurrency: int(firstNonZero(int64(opts.Concurrency), DefaultWalkConcurrency)),
		pageSize:    opts.PageSize,
		results:     opts.Results,
		visit:       a.visit,
	}
	if err := spec.check(); err != nil {
		return AuditResponse{}, err
	}
	d, err := c.guard.CheckURL(ctx, c.container.URL())
	a.resp.Decision, a.resp.GuardError = d, err
	if err := context.Cause(ctx); err != nil {
		return AuditResponse{}, err
	}
	a.locateVaults()
	prefix, _, ok, err := c.storedPrefix(ctx, opts.Prefix)
	if err != nil {
		return AuditResponse{}, fmt.Errorf("blobstore: audit of %q: %w", opts.Prefix, err)
	}
	if !ok {
		// A prefix under SealNames, and no name key: nothing is sealed.
		a.resp.Finished = time.Now().UTC()
		return a.resp, nil
	}
	spec.prefix = prefix
	_, err = c.walk(ctx, spec)
	a.resp.Finished = time.Now().UTC()
	for i := range a.resp.Keys {
		a.resp.Keys[i].Objects = a.keyObjects[i]
	}
	return a.resp, err
}

// audit is one Audit: what its visits share.
type audit struct {
	c    *Client
	opts *AuditOptions
	ids  []string // the key ids of opts.Keys

	mu         sync.Mutex // guards resp and keyObjects, and serializes Findings
	resp       AuditResponse
	keyObjects []int64
}

// keys collects the key ids of opts.Keys and describes them.
func (a *audit) keys() error {
	for i, w := range a.opts.Keys {
		if w == nil {
			return fmt.Errorf("blobstore: AuditOptions.Keys[%d] is nil", i)
		}
		ids := keyring.KeyIDs(w)
		if ids == nil {
			return fmt.Errorf("blobstore: AuditOptions.Keys[%d] (%T) cannot tell its key ids", i, w)
		}
		info := func(id string) *keyring.KeyVaultKeyInfo {
			if kv, ok := w.(*keyring.KeyVault); ok && kv.KeyID() == id {
				in := kv.Info()
				return &in
			}
			return nil
		}
		for _, id := range ids {
			a.ids = append(a.ids, id)
			a.resp.Keys = append(a.resp.Keys, AuditKey{KeyID: id, KeyVault: info(id)})
		}
	}
	a.keyObjects = make([]int64, len(a.resp.Keys))
	return nil
}

// locateVaults matches the key vaults the guard located to the Key Vault
// keys: by the vault's resource name (ARM), or, when the guard was given
// one declared location and no name, that one.
func (a *audit) locateVaults() {
	d := a.resp.Decision
	if d == nil {
		return
	}
	for i := range a.resp.Keys {
		k := &a.resp.Keys[i]
		if k.KeyVault == nil {
			continue
		}
		vault, _, _, err := kvurl.Parse(k.KeyID)
		if err != nil {
			continue
		}
		for j := range d.KeyLocations {
			if loc := &d.KeyLocations[j]; loc.Account != "" && vaultNamed(vault, loc.Account) {
				k.Vault = loc
			}
		}
		if k.Vault == nil && len(d.KeyLocations) == 1 && d.KeyLocations[0].Account == "" {
			k.Vault = &d.KeyLocations[0]
		}
	}
}

// vaultNamed reports whether the vault URL (https://NAME.vault.azure.net,
// or a Managed HSM's) is the vault of the ARM resource id.
func vaultNamed(vault, resourceID string) bool {
	name := resourceID[strings.LastIndexByte(resourceID, '/')+1:]
	host, _ := strings.CutPrefix(vault, "https://")
	return name != "" && len(host) > len(name) && host[len(name)] == '.' && strings.EqualFold(host[:len(name)], name)
}

// visit classifies a blob and its snapshots and versions.
func (a *audit) visit(ctx context.Context, g *blobGroup, report func(WalkResult)) {
	if g.base != nil {
		if !a.item(ctx, g.base, report) {
			return
		}
	}
	for i := range g.copies {
		if !a.item(ctx, &g.copies[i], report) {
			return
		}
	}
}

// item classifies one blob, snapshot or version, counts it and reports its
// findings. It returns false when the walk is being cancelled.
func (a *audit) item(ctx context.Context, it *walkItem, report func(WalkResult)) bool {
	ih, err := a.c.readItem(ctx, it)
	if err != nil && ctx.Err() != nil {
		return false
	}
	res := it.result(OutcomeAudited)
	res.Format, res.KeyIDs, res.Err = ih.format, ih.keyIDs, err
	var findings []Finding
	add := func(kind string) {
		f := Finding{Blob: res.Blob, Snapshot: res.Snapshot, VersionID: res.VersionID, Kind: kind, Format: res.Format, KeyIDs: res.KeyIDs}
		if kind == FindingUnreadable {
			f.Detail = err.Error()
		}
		findings = append(findings, f)
	}
	switch {
	case err != nil:
		add(FindingUnreadable)
	case ih.format == FormatNotEncrypted:
		add(FindingNotEncrypted)
	case ih.format == FormatUnknown:
		add(FindingUnknownEncryption)
	}
	if err == nil && ih.format == FormatCSEv1 {
		add(FindingNoIntegrity)
	}
	if ih.missingMeta {
		add(FindingMissingMetadata)
	}
	encrypted := ih.format == FormatGeoseal || ih.format == FormatCSEv2 || ih.format == FormatCSEv1
	if err == nil && encrypted && a.ids != nil {
		// A snapshot or version under another key is a copy that key
		// still opens, whether or not one of ours does too.
		opened, outside := a.judge(ih.keyIDs)
		switch {
		case it.current && !opened:
			add(FindingCannotOpen)
		case outside:
			add(FindingOutsideKeys)
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case it.snapshot != "":
		a.resp.Snapshots++
	case !it.current:
		a.resp.Versions++
	default:
		a.resp.Blobs++
		a.resp.ByFormat[ih.format]++
		for _, id := range ih.keyIDs {
			if _, ok := a.resp.KeyIDs[id]; ok || len(a.resp.KeyIDs) < maxAuditKeyIDs {
				a.resp.KeyIDs[id]++
			} else {
				a.resp.OtherKeyIDs++
			}
		}
		for i, k := range a.resp.Keys {
			if opensAny(k.KeyID, ih.keyIDs) {
				a.keyObjects[i]++
			}
		}
	}
	for _, f := range findings {
		a.resp.Findings[f.Kind]++
		if a.opts.Findings != nil {
			a.opts.Findings(f)
		}
	}
	report(res)
	return true
}

// judge decides from an object's key ids whether one of the audit's keys
// opens it, and whether it is also wrapped for a key outside them.
func (a *audit) judge(keyIDs []string) (opened, outside bool) {
	for _, wrappedFor := range keyIDs {
		if slices.ContainsFunc(a.ids, func(id string) bool { return opens(id, wrappedFor) }) {
			opened = true
		} else {
			outside = true
		}
	}
	return opened, outside
}

// opensAny reports whether the key id opens a key wrapped for one of
// wrappedFor.
func opensAny(id string, wrappedFor []string) bool {
	return slices.ContainsFunc(wrappedFor, func(k string) bool { return opens(id, k) })
}

// opens reports whether the key id opens a key wrapped for wrappedFor: the
// same key id, or, for Key Vault, any version of the same key (which the
// Key Vault keyring unwraps).
func opens(id, wrappedFor string) bool {
	return id == wrappedFor || strings.HasPrefix(id, "https://") && strings.HasPrefix(wrappedFor, "https://") && kvurl.SameKey(id, wrappedFor)
}
