package region

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy says which countries and regions may hold data.
//
// A policy is a deny-list (DenyCountries, DenyRegions: everything else is
// allowed), an allow-list (AllowCountries, AllowRegions: nothing else is
// allowed), or both. Denials always win over allowances. TreatAs maps a
// territory to the country it counts as (Hong Kong SAR counts as China under
// the EAR and the ITAR); it only ever adds denials: a region is denied if
// its own country or the country it counts as is denied, and an allow-list
// matches only the region's own country. Every entry carries the date it took effect and the
// citation that puts it there, so a refusal can say why.
//
// Build policies with LoadPolicy, Catalog.Policy, an override file, or in
// code; NewGuard validates whatever it is given (Validate) and refuses a
// policy with no rules at all, so a zero Policy never means "allow all" —
// that is Unrestricted, and it says so in its name.
type Policy struct {
	Name        string // "ear", "itar", "us-only", or the user's own
	Authority   string // who sets the rules: "EAR", "ITAR", "geoseal", a company name
	Title       string
	Description string
	// Citation is the rule the policy implements as a whole, e.g.
	// "22 CFR 120.54(a)(5)(iv)".
	Citation string
	AsOf     string // YYYY-MM-DD the lists were last reviewed
	Sources  []Source

	AllowCountries []CountryRule
	DenyCountries  []CountryRule
	AllowRegions   []RegionRule
	DenyRegions    []RegionRule
	TreatAs        []CountryAlias
	// Removed keeps entries that no longer apply (Cambodia left D:5 in
	// 2026), for the record. They have no effect.
	Removed []CountryRule

	unrestricted bool
}

// CountryRule is one country on an allow- or deny-list.
type CountryRule struct {
	Country string `json:"country"` // ISO 3166-1 alpha-2
	Name    string `json:"name"`    // for people
	// Effective is the date (YYYY-MM-DD) from which the entry is verified
	// in force. It is a record, not a switch: entries apply whatever the
	// date, so a future-dated denial errs toward refusal.
	Effective string `json:"effective"`
	Citation  string `json:"citation"` // e.g. "22 CFR 126.1(d)(1)"
	Note      string `json:"note,omitempty"`
}

// RegionRule allows or denies one region regardless of its country's rule
// (a denial still wins over an allowance).
type RegionRule struct {
	Region   string `json:"region"`
	Reason   string `json:"reason"`
	Citation string `json:"citation"`
}

// CountryAlias makes Country count as As: HK as CN.
type CountryAlias struct {
	Country   string `json:"country"`
	As        string `json:"as"`
	Effective string `json:"effective"`
	Citation  string `json:"citation"`
	Note      string `json:"note,omitempty"`
}

// unrestrictedName is the name of the Unrestricted policy.
const unrestrictedName = "unrestricted (NOT for export-controlled data)"

// Unrestricted returns the explicit allow-all policy, for data that is NOT
// under export control. It allows every region, known or not; the guard
// still checks that an endpoint's cloud matches its region. Using it for
// EAR or ITAR data defeats the purpose of the guard.
func Unrestricted() *Policy {
	return &Policy{
		Name:         unrestrictedName,
		Authority:    "geoseal",
		Title:        "No storage restriction: only for data that is not export-controlled",
		Citation:     "none: data not subject to the EAR or the ITAR",
		unrestricted: true,
	}
}

// LoadPolicy returns a built-in policy from the embedded catalog: "ear",
// "itar" or "us-only". Use Catalog.Policy for policies from an override.
func LoadPolicy(name string) (*Policy, error) {
	return DefaultCatalog().Policy(name)
}

// IsUnrestricted reports whether p is the Unrestricted allow-all policy.
func (p *Policy) IsUnrestricted() bool { return p.unrestricted }

// ErrInvalidPolicy is wrapped by every Validate error.
var ErrInvalidPolicy = errors.New("region: invalid policy")

// Validate checks that every entry is well formed: ISO 3166 codes, dates,
// citations, and at least one rule. A malformed entry is an error rather
// than something to skip, because skipping it would weaken the policy.
func (p *Policy) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil policy", ErrInvalidPolicy)
	}
	if p.unrestricted {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPolicy, p.Name, fmt.Sprintf(format, args...))
	}
	if !validPolicyName(p.Name) {
		return fmt.Errorf("%w: name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", ErrInvalidPolicy, p.Name)
	}
	if strings.TrimSpace(p.Citation) == "" {
		return bad("citation is empty")
	}
	if len(p.AllowCountries)+len(p.DenyCountries)+len(p.AllowRegions)+len(p.DenyRegions) == 0 {
		return bad("no allow or deny rules (use Unrestricted for allow-all)")
	}
	for _, list := range []struct {
		field string
		rules []CountryRule
	}{{"allow_countries", p.AllowCountries}, {"deny_countries", p.DenyCountries}, {"removed", p.Removed}} {
		seen := map[string]bool{}
		for i, r := range list.rules {
			if err := r.validate(); err != nil {
				return bad("%s[%d]: %v", list.field, i, err)
			}
			if seen[r.Country] {
				return bad("%s[%d]: duplicate country %s", list.field, i, r.Country)
			}
			seen[r.Country] = true
		}
	}
	for _, list := range []struct {
		field string
		rules []RegionRule
	}{{"allow_regions", p.AllowRegions}, {"deny_regions", p.DenyRegions}} {
		seen := map[string]bool{}
		for i, r := range list.rules {
			if !validRegionName(r.Region) {
				return bad("%s[%d]: region %q: want lower-case letters and digits", list.field, i, r.Region)
			}
			if strings.TrimSpace(r.Reason) == "" || strings.TrimSpace(r.Citation) == "" {
				return bad("%s[%d]: region %s needs a reason and a citation", list.field, i, r.Region)
			}
			if seen[r.Region] {
				return bad("%s[%d]: duplicate region %s", list.field, i, r.Region)
			}
			seen[r.Region] = true
		}
	}
	aliased := map[string]bool{}
	for _, a := range p.TreatAs {
		aliased[a.Country] = true
	}
	for i, a := range p.TreatAs {
		for _, c := range []string{a.Country, a.As} {
			if _, ok := iso3166[c]; !ok {
				return bad("treat_as[%d]: %q is not an ISO 3166-1 alpha-2 code", i, c)
			}
		}
		if a.Country == a.As {
			return bad("treat_as[%d]: %s treated as itself", i, a.Country)
		}
		if aliased[a.As] {
			return bad("treat_as[%d]: %s -> %s -> ...: chains are not allowed", i, a.Country, a.As)
		}
		if err := checkDate(a.Effective); err != nil {
			return bad("treat_as[%d]: %v", i, err)
		}
		if strings.TrimSpace(a.Citation) == "" {
			return bad("treat_as[%d]: citation is empty", i)
		}
		if slices.IndexFunc(p.TreatAs[:i], func(b CountryAlias) bool { return b.Country == a.Country }) >= 0 {
			return bad("treat_as[%d]: duplicate country %s", i, a.Country)
		}
	}
	return nil
}

func (r CountryRule) validate() error {
	if _, ok := iso3166[r.Country]; !ok {
		return fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code", r.Country)
	}
	if err := checkDate(r.Effective); err != nil {
		return fmt.Errorf("country %s: effective %v", r.Country, err)
	}
	if strings.TrimSpace(r.Citation) == "" {
		return fmt.Errorf("country %s: citation is empty", r.Country)
	}
	return nil
}

func validPolicyName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (p *Policy) clone() *Policy {
	q := *p
	q.Sources = slices.Clone(p.Sources)
	q.AllowCountries = slices.Clone(p.AllowCountries)
	q.DenyCountries = slices.Clone(p.DenyCountries)
	q.AllowRegions = slices.Clone(p.AllowRegions)
	q.DenyRegions = slices.Clone(p.DenyRegions)
	q.TreatAs = slices.Clone(p.TreatAs)
	q.Removed = slices.Clone(p.Removed)
	return &q
}

// A Rule names why the guard allowed or refused: a region's verdict, or a
// property of the account (a failover, cross-tenant replication, an
// endpoint that is not the account's). Rules appear in Verdict, Refusal and
// Decision, in JSON output and in logs; their text is stable.
type Rule string

// Rules about one region.
const (
	RuleAllowedCountry   Rule = "allowed-country"   // country not denied (deny-list policy)
	RuleAllowListed      Rule = "allow-listed"      // country or region on the allow-list
	RuleUnrestricted     Rule = "unrestricted"      // Unrestricted policy
	RuleDeniedCountry    Rule = "denied-country"    // country on the deny-list
	RuleDeniedRegion     Rule = "denied-region"     // region on the deny-list
	RuleNotAllowListed   Rule = "not-allow-listed"  // allow-list policy, not on it
	RuleUnknownRegion    Rule = "unknown-region"    // not in the catalog
	RuleUnknownSecondary Rule = "unknown-secondary" // geo-replicated, secondary unknown
	// RuleInferredSecondary: ARM did not say where the copy is, the
	// catalog pair was assumed, and Microsoft does not confirm that pair.
	RuleInferredSecondary Rule = "inferred-secondary"
	// RuleCrossCloud: a secondary in another cloud than its primary, which
	// geo-replication never does: the declared or reported topology is wrong.
	RuleCrossCloud Rule = "cross-cloud-replica"
)

// Rules about the account, the endpoint and the keys.
const (
	RuleCloudMismatch   Rule = "cloud-mismatch"       // endpoint cloud != region cloud
	RuleEmulator        Rule = "emulator-endpoint"    // loopback endpoint
	RuleForeignEndpoint Rule = "foreign-endpoint"     // endpoint is not one of the account's own
	RuleFailover        Rule = "failover-in-progress" // the primary is about to move
	RuleConversion      Rule = "conversion-unknown"   // SKU conversion or migration to an SKU ARM does not name
	RuleCrossTenant     Rule = "cross-tenant-replication"
	RuleUnresolved      Rule = "unresolved" // something the resolver could not find out (a replication destination, a key's vault)
)

// judge decides one region under p. r is the catalog entry; known is false
// when the name is not in the catalog (r then has only Name set).
func (p *Policy) judge(role, name string, r Region, known bool, catalogAsOf string) Verdict {
	v := Verdict{Role: role, Region: name}
	if known {
		v.Region = r.Name
		v.DisplayName = r.DisplayName
		v.Country = r.Country
		v.CountryName, _ = CountryName(r.Country)
		v.Cloud = string(r.Cloud)
		v.Known = true
	}
	if p.unrestricted {
		v.Allowed, v.Rule, v.Citation = true, RuleUnrestricted, p.Citation
		v.Reason = fmt.Sprintf("policy %s places no restriction on storage", p.Name)
		return v
	}
	if !known {
		// The carve-out needs the data to be provably outside proscribed
		// countries; a region that cannot be placed cannot be shown to be.
		v.Rule, v.Citation = RuleUnknownRegion, p.Citation
		v.Reason = fmt.Sprintf("%s region %q is not in the region catalog (as of %s); geoseal refuses a region it cannot place in a country. "+
			"If the region is real, declare it (name, display_name, country, cloud, pair) in an override file and load it with LoadOverride / --override",
			role, name, catalogAsOf)
		return v
	}

	country := r.Country
	for _, a := range p.TreatAs {
		if a.Country == r.Country {
			country = a.As
			v.TreatedAs = a.As
			v.TreatedAsCitation = a.Citation
		}
	}
	place := fmt.Sprintf("%s (%s)", v.CountryName, r.Country)
	if v.TreatedAs != "" {
		asName, _ := CountryName(v.TreatedAs)
		place = fmt.Sprintf("%s (%s)", v.CountryName, asName)
	}
	authority := p.Authority
	if authority == "" {
		authority = "policy " + p.Name
	}

	if i := slices.IndexFunc(p.DenyRegions, func(d RegionRule) bool { return d.Region == r.Name }); i >= 0 {
		d := p.DenyRegions[i]
		v.Rule, v.Citation = RuleDeniedRegion, d.Citation
		v.Reason = fmt.Sprintf("%s region %s is denied by policy %s: %s (%s)", role, r.Name, p.Name, d.Reason, d.Citation)
		return v
	}
	for _, c := range []string{r.Country, country} {
		if i := slices.IndexFunc(p.DenyCountries, func(d CountryRule) bool { return d.Country == c }); i >= 0 {
			d := p.DenyCountries[i]
			v.Rule, v.Citation, v.Effective = RuleDeniedCountry, d.Citation, d.Effective
			v.Reason = fmt.Sprintf("%s region %s is in %s, which %s %s proscribes", role, r.Name, place, authority, d.Citation)
			if v.TreatedAs != "" && c == country {
				v.Reason += fmt.Sprintf(" (%s counts as %s: %s)", r.Country, country, v.TreatedAsCitation)
			}
			return v
		}
	}
	if len(p.AllowCountries) == 0 && len(p.AllowRegions) == 0 {
		v.Allowed, v.Rule, v.Citation = true, RuleAllowedCountry, p.Citation
		v.Reason = fmt.Sprintf("%s region %s is in %s, which policy %s does not proscribe", role, r.Name, place, p.Name)
		return v
	}
	if i := slices.IndexFunc(p.AllowRegions, func(a RegionRule) bool { return a.Region == r.Name }); i >= 0 {
		a := p.AllowRegions[i]
		v.Allowed, v.Rule, v.Citation = true, RuleAllowListed, a.Citation
		v.Reason = fmt.Sprintf("%s region %s is allowed by policy %s: %s", role, r.Name, p.Name, a.Reason)
		return v
	}
	// An allow-list matches the region's own country, never an alias:
	// TreatAs exists to add denials (HK counts as CN), not allowances.
	if i := slices.IndexFunc(p.AllowCountries, func(a CountryRule) bool { return a.Country == r.Country }); i >= 0 {
		a := p.AllowCountries[i]
		v.Allowed, v.Rule, v.Citation, v.Effective = true, RuleAllowListed, a.Citation, a.Effective
		v.Reason = fmt.Sprintf("%s region %s is in %s, which policy %s allows", role, r.Name, place, p.Name)
		return v
	}
	allowed := make([]string, 0, len(p.AllowCountries))
	for _, a := range p.AllowCountries {
		allowed = append(allowed, a.Country)
	}
	v.Rule, v.Citation = RuleNotAllowListed, p.Citation
	v.Reason = fmt.Sprintf("%s region %s is in %s, which policy %s does not allow (allowed countries: %s)",
		role, r.Name, place, p.Name, strings.Join(allowed, ", "))
	return v
}
