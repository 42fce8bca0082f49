package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// Verdict is the decision about one region that holds a copy of the data
// or of the keys that decrypt it.
type Verdict struct {
	Role string `json:"role"` // "primary" or "secondary"
	// Holder names what keeps the copy when it is not the account written
	// to: "object replication destination ..." or "key vault ...". It is
	// empty for the account itself.
	Holder      string `json:"holder,omitempty"`
	Region      string `json:"region"`
	DisplayName string `json:"display_name,omitempty"`
	Known       bool   `json:"known"` // in the catalog
	Country     string `json:"country,omitempty"`
	CountryName string `json:"country_name,omitempty"`
	// TreatedAs is the country the policy counts Country as ("CN" for HK).
	TreatedAs         string `json:"treated_as,omitempty"`
	TreatedAsCitation string `json:"treated_as_citation,omitempty"`
	Cloud             string `json:"cloud,omitempty"`
	// Inferred reports a secondary that no one reported: the catalog pair
	// of the primary, assumed because ARM (or a key vault's service
	// rules) imply a copy there.
	Inferred  bool   `json:"inferred,omitempty"`
	Allowed   bool   `json:"allowed"`
	Rule      Rule   `json:"rule"`
	Citation  string `json:"citation,omitempty"`
	Effective string `json:"effective,omitempty"` // of the deciding entry
	Reason    string `json:"reason"`
}

// A Refusal is one reason the guard refused, with its rule and citation.
type Refusal struct {
	Rule     Rule   `json:"rule"`
	Citation string `json:"citation,omitempty"`
	Reason   string `json:"reason"`
}

// Decision is the guard's answer for one account.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Policy  string `json:"policy"`
	// PolicyCitation is the rule the policy implements as a whole.
	PolicyCitation string   `json:"policy_citation"`
	Location       Location `json:"location"`
	Primary        Verdict  `json:"primary"`
	Secondary      *Verdict `json:"secondary,omitempty"` // nil when not geo-replicated
	// Copies are the regions of every other place the guard found holding
	// the data or the means to decrypt it: object replication destination
	// accounts (primary and secondary, along chains) and the vaults or
	// Managed HSMs of the key-encryption keys (primary and pair).
	Copies []Verdict `json:"copies,omitempty"`
	// KeyLocations are where the key-encryption keys live, as resolved.
	KeyLocations []Location `json:"key_locations,omitempty"`
	// Endpoint and EndpointCloud are set by CheckURL.
	Endpoint      string `json:"endpoint,omitempty"`
	EndpointCloud string `json:"endpoint_cloud,omitempty"`
	// Rule, Citation and Reason are the deciding ones: the first refusal,
	// or a summary when allowed.
	Rule     Rule   `json:"rule"`
	Citation string `json:"citation"`
	Reason   string `json:"reason"`
	// Refusals lists every reason for refusing, in order; empty when
	// allowed.
	Refusals    []Refusal `json:"refusals,omitempty"`
	CatalogAsOf string    `json:"catalog_as_of"`
	PolicyAsOf  string    `json:"policy_as_of,omitempty"`

	// note is said with the decision whatever it is (Static(primary, "")).
	note string
}

// Violation is the error the guard returns when a policy refuses storage.
// Its message is written for a compliance officer: the region, its country,
// the rule and its citation, and what to do about it.
type Violation struct {
	Decision *Decision
}

func (v *Violation) Error() string {
	if v == nil || v.Decision == nil {
		return "region: refused"
	}
	d := v.Decision
	reasons := make([]string, 0, len(d.Refusals)+1)
	for _, r := range d.Refusals {
		reasons = append(reasons, r.Reason)
	}
	if d.note != "" {
		reasons = append(reasons, d.note)
	}
	return "region: refused: " + strings.Join(reasons, "; ") +
		fmt.Sprintf("; policy %s (%s)", d.Policy, d.PolicyCitation)
}

// GuardOptions configures a Guard. A nil *GuardOptions is valid.
type GuardOptions struct {
	// Catalog places regions in countries. Nil means DefaultCatalog(); pass
	// DefaultCatalog().Apply(override) to use an override file.
	Catalog *Catalog
	// Logger, when set, receives one record per decision (never any data).
	Logger *slog.Logger
	// KeyVaults say where the key-encryption keys live, one Resolver per
	// key: KeyVaultARM(cred, subscription, keyURL, opts) asks Azure
	// Resource Manager where the vault or Managed HSM holding keyURL is,
	// StaticKeyVault(region) declares it. Whoever holds the key can
	// decrypt, so its regions are judged under the same policy as the
	// data's: a key in a vault in Southeast Asia is replicated to Hong Kong.
	KeyVaults []Resolver
}

// Guard decides, before any byte is sent, whether an account may hold data
// under a policy. It is safe for concurrent use.
type Guard struct {
	policy    *Policy
	resolver  Resolver
	keyVaults []Resolver
	catalog   *Catalog
	logger    *slog.Logger
}

// NewGuard returns a guard for policy p over the account r resolves. The
// policy is validated and copied; later changes to p do not affect the guard.
func NewGuard(p *Policy, r Resolver, opts *GuardOptions) (*Guard, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("region: NewGuard: nil Resolver")
	}
	g := &Guard{policy: p.clone(), resolver: r, catalog: DefaultCatalog()}
	if opts != nil {
		if opts.Catalog != nil {
			g.catalog = opts.Catalog
		}
		g.logger = opts.Logger
		for i, kv := range opts.KeyVaults {
			if kv == nil {
				return nil, fmt.Errorf("region: NewGuard: KeyVaults[%d] is nil", i)
			}
		}
		g.keyVaults = slices.Clone(opts.KeyVaults)
	}
	return g, nil
}

// Policy returns a copy of the guard's policy.
func (g *Guard) Policy() *Policy { return g.policy.clone() }

// Check resolves the account's location (and the key vaults' locations,
// when GuardOptions.KeyVaults names any) and decides. The package
// documentation lists every check it makes.
//
// When the policy refuses, Check returns the decision AND a *Violation
// (use errors.As). Any other error (a resolver failed, ctx ended) comes
// with a nil decision; callers must treat every error as "do not write".
func (g *Guard) Check(ctx context.Context) (*Decision, error) {
	return g.check(ctx, nil)
}

// CheckURL is Check plus checks of the endpoint the data will be sent to:
//
//   - the endpoint's cloud (…core.windows.net is the public cloud,
//     …core.usgovcloudapi.net Azure Government, …core.chinacloudapi.cn
//     Azure China) must be the cloud of every resolved region;
//   - an endpoint on any other host is refused, because its cloud cannot
//     be known;
//   - a loopback endpoint (Azurite on 127.0.0.1 or localhost) is allowed
//     only with a Static resolver, whose declared regions are still checked;
//   - with a resolver that looks the account up (ARM), the endpoint's host
//     must be one of the account's own blob endpoints: a location resolved
//     for one account says nothing about another account's.
func (g *Guard) CheckURL(ctx context.Context, endpoint string) (*Decision, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("region: endpoint %q is not an absolute URL", endpoint)
	}
	return g.check(ctx, u)
}

func (g *Guard) check(ctx context.Context, endpoint *url.URL) (*Decision, error) {
	loc, err := g.resolver.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("region: resolving the account's location: %w", err)
	}
	keys := make([]Location, 0, len(g.keyVaults))
	for _, kv := range g.keyVaults {
		k, err := kv.Resolve(ctx)
		if err != nil {
			return nil, fmt.Errorf("region: locating a key-encryption key: %w", err)
		}
		keys = append(keys, k)
	}
	d := g.decide(loc, keys)
	if endpoint != nil {
		g.checkEndpoint(d, endpoint)
	}
	return g.finish(ctx, d)
}

// Decide judges a location without resolving it: what Check would answer
// for an account at loc, without the key vaults (which need resolving).
// The CLI and `region list` use it.
func (g *Guard) Decide(loc Location) (*Decision, error) {
	return g.finish(context.Background(), g.decide(loc, nil))
}

func (g *Guard) decide(loc Location, keys []Location) *Decision {
	p := g.policy
	d := &Decision{
		Policy:         p.Name,
		PolicyCitation: p.Citation,
		CatalogAsOf:    g.catalog.AsOf(),
		PolicyAsOf:     p.AsOf,
	}
	loc = g.inferSecondaries(loc)
	d.Location = loc
	var sv *Verdict
	d.Primary, sv = g.judgeRegions(loc, "")
	d.Secondary = sv
	for _, v := range []*Verdict{&d.Primary, d.Secondary} {
		if v != nil && !v.Allowed {
			d.refuse(v.Rule, v.Citation, v.Reason)
		}
	}
	g.judgeAccount(d, loc, "")
	g.judgeReplicas(d, loc.ReplicatesTo)
	for i, k := range keys {
		k = g.inferSecondaries(k)
		keys[i] = k
		holder := "key vault " + quoteOr(k.Account, "(declared)")
		g.addCopies(d, k, holder)
		if !p.unrestricted {
			for _, u := range k.Unknown {
				d.refuse(RuleUnresolved, p.Citation, holder+": "+u)
			}
		}
	}
	d.KeyLocations = keys
	if loc.Source == SourceStatic && !loc.GeoReplicated {
		d.note = "the account was declared as not geo-replicated (region.Static(primary, \"\")); if it is GRS, RA-GRS, GZRS or RA-GZRS, " +
			"declare its secondary with region.Static(primary, secondary) (CLI: --secondary REGION), or let geoseal ask Azure Resource Manager " +
			"with region.ARM (CLI: --arm-account SUB/RG/ACCOUNT)"
	}
	if len(d.Refusals) == 0 {
		d.Allowed = true
		d.Rule, d.Citation = d.Primary.Rule, d.Primary.Citation
		d.Reason = d.Primary.Reason
		if d.Secondary != nil {
			d.Reason += "; " + d.Secondary.Reason
		}
		for _, c := range d.Copies {
			d.Reason += "; " + c.Reason
		}
	}
	if d.note != "" {
		d.Reason += "; " + d.note
	}
	return d
}

// judgeReplicas judges object replication destinations like the source:
// their regions and their own account-level state, along chains.
func (g *Guard) judgeReplicas(d *Decision, dests []Location) {
	for _, dst := range dests {
		holder := "object replication destination " + quoteOr(dst.Account, "(unnamed)")
		g.addCopies(d, dst, holder)
		g.judgeAccount(d, dst, holder)
		g.judgeReplicas(d, dst.ReplicatesTo)
	}
}

// addCopies judges the regions of a location other than the account's and
// records them in d.Copies (a location with no primary, one that could not
// be resolved, has only its Unknown entries, judged by the caller).
func (g *Guard) addCopies(d *Decision, loc Location, holder string) {
	if loc.Primary == "" {
		if len(loc.Unknown) == 0 && !g.policy.unrestricted {
			// A resolver that answers with no region and no reason is
			// broken; deny rather than judge nothing.
			d.refuse(RuleUnresolved, g.policy.Citation, holder+": the resolver reported no region")
		}
		return
	}
	pv, sv := g.judgeRegions(loc, holder)
	for _, v := range []*Verdict{&pv, sv} {
		if v == nil {
			continue
		}
		d.Copies = append(d.Copies, *v)
		if !v.Allowed {
			d.refuse(v.Rule, v.Citation, v.Reason)
		}
	}
}

// inferSecondaries fills in the secondary a location implies but does not
// name: the catalog pair of a geo-replicated account whose secondary ARM
// did not report, or of a key vault that replicates to its pair. The
// verdict then says "inferred".
func (g *Guard) inferSecondaries(loc Location) Location {
	if loc.Secondary == "" && (loc.GeoReplicated || loc.ReplicatesToPair) {
		if r, ok := g.catalog.Region(loc.Primary); ok && r.Pair != "" {
			loc.Secondary, loc.SecondarySource, loc.GeoReplicated = r.Pair, SecondaryPair, true
		}
	}
	if len(loc.ReplicatesTo) > 0 {
		dests := make([]Location, len(loc.ReplicatesTo))
		for i, dst := range loc.ReplicatesTo {
			dests[i] = g.inferSecondaries(dst)
		}
		loc.ReplicatesTo = dests
	}
	return loc
}

// judgeRegions judges a location's primary and, when it is geo-replicated,
// its secondary. holder is "" for the account written to.
func (g *Guard) judgeRegions(loc Location, holder string) (Verdict, *Verdict) {
	p := g.policy
	prefix := ""
	if holder != "" {
		prefix = holder + ": "
	}
	pr, pKnown := g.catalog.Region(loc.Primary)
	pv := p.judge("primary", loc.Primary, pr, pKnown, g.catalog.AsOf())
	pv.Holder, pv.Reason = holder, prefix+pv.Reason
	if !loc.GeoReplicated {
		return pv, nil
	}
	var sv Verdict
	switch {
	case loc.Secondary != "":
		sr, sKnown := g.catalog.Region(loc.Secondary)
		sv = p.judge("secondary", loc.Secondary, sr, sKnown, g.catalog.AsOf())
		if loc.SecondarySource == SecondaryPair {
			sv.Inferred = true
			why := "no secondary was reported, so the catalog pair of " + pr.Name + " was assumed"
			if loc.ReplicatesToPair {
				why = "Key Vault replicates a vault to its region's pair, and the catalog pairs " + pr.Name + " with " + sr.Name
			}
			sv.Reason += " (inferred: " + why + ")"
			if sv.Allowed && !p.unrestricted && !pr.PairConfirmed {
				sv.Allowed, sv.Rule, sv.Citation, sv.Effective = false, RuleInferredSecondary, p.Citation, ""
				sv.Reason = fmt.Sprintf("secondary region %s was inferred (no secondary was reported; it is the catalog pair of %s), "+
					"and Microsoft's region-pairs documentation does not confirm that pair: geoseal does not guess where a copy lives. "+
					"Declare the secondary (region.Static(primary, secondary), CLI --secondary), or, if the pair is right, mark it "+
					"\"pair_confirmed\": true with its source in an override file", sr.Name, pr.Name)
			}
		}
		if sv.Allowed && pKnown && sKnown && sr.Cloud != pr.Cloud {
			sv.Allowed, sv.Rule, sv.Citation, sv.Effective = false, RuleCrossCloud, p.Citation, ""
			sv.Reason = fmt.Sprintf("secondary region %s is in %s but the primary %s is in %s: geo-replication never crosses clouds, "+
				"so this topology cannot exist and the declared or reported location is wrong", sr.Name, sr.Cloud, pr.Name, pr.Cloud)
		}
	case p.unrestricted:
		sv = Verdict{Role: "secondary", Allowed: true, Rule: RuleUnrestricted, Citation: p.Citation,
			Reason: fmt.Sprintf("policy %s places no restriction on storage", p.Name)}
	default:
		sku := loc.SKU
		if sku == "" {
			sku = "declared geo-replicated"
		}
		sv = Verdict{Role: "secondary", Rule: RuleUnknownSecondary, Citation: p.Citation,
			Reason: fmt.Sprintf("the account is geo-replicated (%s) but its secondary region is unknown: "+
				"ARM reported none and the catalog has no pair for %q. Declare the secondary with region.Static(primary, secondary) "+
				"(CLI: --secondary), add a pair for %q in an override file, or use a single-region SKU (LRS or ZRS)",
				sku, loc.Primary, loc.Primary)}
	}
	sv.Holder, sv.Reason = holder, prefix+sv.Reason
	return pv, &sv
}

// judgeAccount refuses what a looked-up account's own state says about
// where its data may go next: a failover, a conversion to an SKU no one
// named, cross-tenant replication, anything the resolver could not find
// out. A Static location is declared, so none of this applies to it.
func (g *Guard) judgeAccount(d *Decision, loc Location, holder string) {
	p := g.policy
	if !lookedUp(loc) || p.unrestricted {
		return
	}
	who := "the account"
	if holder != "" {
		who = holder
	}
	if loc.Account != "" && holder == "" {
		who = "the account " + quoteOr(loc.Account, "")
	}
	for _, u := range loc.Unknown {
		d.refuse(RuleUnresolved, p.Citation, who+": "+u)
	}
	if loc.Primary == "" {
		return
	}
	if loc.FailoverInProgress {
		d.refuse(RuleFailover, p.Citation, fmt.Sprintf("%s is failing over (ARM reports FailoverInProgress): its primary is about to move "+
			"and a planned failover swaps its regions, an unplanned one leaves it LRS in the old secondary; geoseal refuses until "+
			"the failover has finished and the new location can be judged", who))
	}
	if s := loc.GeoReplicationStatus; s != "" && !strings.EqualFold(s, "Live") && !strings.EqualFold(s, "Bootstrap") {
		d.refuse(RuleFailover, p.Citation, fmt.Sprintf("%s reports geo-replication status %s (not Live): its secondary is unavailable, "+
			"as while a failover is under way, so where the data will be next cannot be judged", who, untrusted.Quote(s)))
	}
	if loc.MigrationInProgress && loc.TargetSKU == "" {
		d.refuse(RuleConversion, p.Citation, fmt.Sprintf("%s is being migrated to another redundancy (ARM reports AccountMigrationInProgress) "+
			"but names no target SKU: the account may become geo-replicated to a region geoseal cannot judge", who))
	}
	if loc.AllowCrossTenantReplication == nil || *loc.AllowCrossTenantReplication {
		state := "not set"
		if loc.AllowCrossTenantReplication != nil {
			state = "true"
		}
		name, group := accountName(loc.Account)
		d.refuse(RuleCrossTenant, p.Citation, fmt.Sprintf("%s does not forbid cross-tenant object replication (AllowCrossTenantReplication is %s): "+
			"a replication policy can then copy its blobs to an account in another Microsoft Entra tenant, which geoseal cannot locate. "+
			"Turn it off: az storage account update --name %s --resource-group %s --allow-cross-tenant-replication false "+
			"(allowCrossTenantReplication: false in ARM or Bicep)", who, state, name, group))
	}
}

// lookedUp reports whether a resolver looked the location up (ARM, or a
// resolver of the caller's own) rather than having it declared (Static, or
// a Location built by hand for Decide). Only a looked-up location has
// failover state, settings and endpoints to check, and must report them.
func lookedUp(loc Location) bool {
	return loc.Source != "" && loc.Source != SourceStatic
}

// accountName returns the account and resource group of a storage account
// resource id (parsed as the resolver parses it, with arm.ParseResourceID),
// or placeholders for what the id does not name.
func accountName(id string) (name, group string) {
	name, group = "ACCOUNT", "RESOURCE-GROUP"
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return name, group
	}
	if rid.ResourceGroupName != "" {
		group = rid.ResourceGroupName
	}
	for ; rid != nil; rid = rid.Parent {
		if strings.EqualFold(rid.ResourceType.String(), storageAccountType) && rid.Name != "" {
			name = rid.Name
			break
		}
	}
	return safeArg(name), safeArg(group)
}

// safeArg keeps a name from ARM fit to paste into a shell command.
func safeArg(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' || r == '(' || r == ')')
	}) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// quoteOr quotes an untrusted name (a resource id ARM reported) for error
// text as internal/untrusted does for all such strings, or returns def
// for "".
func quoteOr(s, def string) string {
	if s == "" {
		return def
	}
	return untrusted.Quote(s)
}

func (d *Decision) refuse(rule Rule, citation, reason string) {
	if len(d.Refusals) == 0 {
		d.Rule, d.Citation, d.Reason = rule, citation, reason
	}
	d.Allowed = false
	d.Refusals = append(d.Refusals, Refusal{Rule: rule, Citation: citation, Reason: reason})
}

func (g *Guard) finish(ctx context.Context, d *Decision) (*Decision, error) {
	if g.logger != nil {
		attrs := []slog.Attr{
			slog.Bool("allowed", d.Allowed), slog.String("policy", d.Policy),
			slog.String("primary", d.Primary.Region), slog.String("rule", string(d.Rule)), slog.String("citation", d.Citation),
		}
		if d.Secondary != nil {
			attrs = append(attrs, slog.String("secondary", d.Secondary.Region))
		}
		if d.Endpoint != "" {
			attrs = append(attrs, slog.String("endpoint", d.Endpoint))
		}
		if len(d.Copies) > 0 {
			copies := make([]string, len(d.Copies))
			for i, c := range d.Copies {
				copies[i] = c.Region
			}
			attrs = append(attrs, slog.Any("copies", copies))
		}
		level := slog.LevelInfo
		if !d.Allowed {
			level = slog.LevelWarn
		}
		g.logger.LogAttrs(ctx, level, "geoseal region decision", attrs...)
	}
	if !d.Allowed {
		return d, &Violation{Decision: d}
	}
	return d, nil
}

// Endpoint clouds reported in Decision.EndpointCloud besides Cloud values.
const EndpointLoopback = "loopback"

func (g *Guard) checkEndpoint(d *Decision, u *url.URL) {
	d.Endpoint = u.Scheme + "://" + u.Host
	host := u.Hostname()
	cloud, loopback := endpointCloud(host)
	looked := lookedUp(d.Location)
	switch {
	case loopback:
		d.EndpointCloud = EndpointLoopback
		if looked {
			d.refuse(RuleEmulator, d.PolicyCitation, fmt.Sprintf("endpoint %q is a local emulator endpoint; it is accepted only with a Static resolver "+
				"(declared regions), never with a resolver that looks up a real account", d.Endpoint))
		}
		return
	case cloud == "":
		d.refuse(RuleCloudMismatch, d.PolicyCitation, fmt.Sprintf("endpoint host %q is not an Azure Storage endpoint of a known cloud "+
			"(core.windows.net, core.usgovcloudapi.net, core.chinacloudapi.cn); geoseal cannot tell where it stores data", host))
		return
	}
	d.EndpointCloud = string(cloud)
	for _, v := range []*Verdict{&d.Primary, d.Secondary} {
		if v != nil && v.Known && v.Cloud != string(cloud) {
			d.refuse(RuleCloudMismatch, d.PolicyCitation, fmt.Sprintf("endpoint %q belongs to %s but the %s region %s belongs to %s: "+
				"the declared or resolved location contradicts the endpoint", d.Endpoint, cloud, v.Role, v.Region, Cloud(v.Cloud)))
		}
	}
	if !looked {
		return
	}
	h := normHost(host)
	if !slices.Contains(d.Location.Endpoints, h) {
		own := "ARM reported no blob endpoint for it"
		if len(d.Location.Endpoints) > 0 {
			own = "its blob endpoints are " + strings.Join(d.Location.Endpoints, ", ")
		}
		d.refuse(RuleForeignEndpoint, d.PolicyCitation, fmt.Sprintf("endpoint host %q is not one of the account %s's own (%s): "+
			"the location was resolved for that account and says nothing about where another account keeps data", h, quoteOr(d.Location.Account, "resolved"), own))
	}
}

// endpointCloud maps a storage endpoint host to its cloud, or reports a
// loopback host. Unknown hosts return "", false.
func endpointCloud(host string) (Cloud, bool) {
	h := normHost(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "", true
	}
	if ip := net.ParseIP(h); ip != nil {
		return "", ip.IsLoopback()
	}
	for _, s := range []struct {
		suffix string
		cloud  Cloud
	}{
		{".core.windows.net", CloudPublic},
		{".storage.azure.net", CloudPublic}, // DNS-zone endpoints: account.z01.blob.storage.azure.net
		{".core.usgovcloudapi.net", CloudGovernment},
		{".core.chinacloudapi.cn", CloudChina},
		{".core.cloudapi.de", CloudGermany},
	} {
		if strings.HasSuffix(h, s.suffix) {
			return s.cloud, false
		}
	}
	return "", false
}

// normHost is the form hosts are compared in: lower case, without the
// root's trailing dot. Location.Endpoints hold hosts in this form, so that
// checkEndpoint finds the endpoint's host among them.
func normHost(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
