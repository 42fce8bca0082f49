package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// RegionVerdict is the decision about one region of an account.
type RegionVerdict struct {
	Role        string `json:"role"` // "primary" or "secondary"
	Region      string `json:"region"`
	DisplayName string `json:"display_name,omitempty"`
	Known       bool   `json:"known"` // in the catalog
	Country     string `json:"country,omitempty"`
	CountryName string `json:"country_name,omitempty"`
	// TreatedAs is the country the policy counts Country as ("CN" for HK).
	TreatedAs         string `json:"treated_as,omitempty"`
	TreatedAsCitation string `json:"treated_as_citation,omitempty"`
	Cloud             string `json:"cloud,omitempty"`
	Allowed           bool   `json:"allowed"`
	Rule              string `json:"rule"`
	Citation          string `json:"citation,omitempty"`
	Effective         string `json:"effective,omitempty"` // of the deciding entry
	Reason            string `json:"reason"`
}

// Decision is the guard's answer for one account.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Policy  string `json:"policy"`
	// PolicyCitation is the rule the policy implements as a whole.
	PolicyCitation string         `json:"policy_citation"`
	Location       Location       `json:"location"`
	Primary        RegionVerdict  `json:"primary"`
	Secondary      *RegionVerdict `json:"secondary,omitempty"` // nil when not geo-replicated
	// Endpoint and EndpointCloud are set by CheckURL.
	Endpoint      string `json:"endpoint,omitempty"`
	EndpointCloud string `json:"endpoint_cloud,omitempty"`
	// Rule, Citation and Reason are the deciding ones: the first refusal,
	// or a summary when allowed.
	Rule        string `json:"rule"`
	Citation    string `json:"citation"`
	Reason      string `json:"reason"`
	CatalogAsOf string `json:"catalog_as_of"`
	PolicyAsOf  string `json:"policy_as_of,omitempty"`
	// refusals holds every refusal reason, in order.
	refusals []string
}

// Violation is the error the guard returns when a policy refuses storage.
// Its message is written for a compliance officer: the region, its country,
// the rule and its citation, and what to do about it.
type Violation struct {
	Decision *Decision
}

func (v *Violation) Error() string {
	if v == nil || v.Decision == nil {
		return "refused"
	}
	return "refused: " + strings.Join(v.Decision.refusals, "; ") +
		fmt.Sprintf("; policy %s (%s)", v.Decision.Policy, v.Decision.PolicyCitation)
}

// GuardOptions configures a Guard. A nil *GuardOptions is valid.
type GuardOptions struct {
	// Catalog places regions in countries. Nil means DefaultCatalog(); pass
	// DefaultCatalog().Apply(override) to use an override file.
	Catalog *Catalog
	// Logger, when set, receives one record per decision (never any data).
	Logger *slog.Logger
}

// Guard decides, before any byte is sent, whether an account may hold data
// under a policy. It is safe for concurrent use.
type Guard struct {
	policy   *Policy
	resolver Resolver
	catalog  *Catalog
	logger   *slog.Logger
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
	}
	return g, nil
}

// Policy returns a copy of the guard's policy.
func (g *Guard) Policy() *Policy { return g.policy.clone() }

// Check resolves the account's location and decides. It checks the primary
// region and, when the account is geo-replicated, the secondary; an unknown
// region or an unknown secondary is refused (deny by default).
//
// When the policy refuses, Check returns the decision AND a *Violation
// (use errors.As). Any other error (the resolver failed, ctx ended) comes
// with a nil decision; callers must treat every error as "do not write".
func (g *Guard) Check(ctx context.Context) (*Decision, error) {
	loc, err := g.resolver.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("region: resolving the account's location: %w", err)
	}
	d := g.decide(loc)
	return g.finish(ctx, d)
}

// Decide judges a location without resolving it: what Check would answer
// for an account at loc. The CLI and `region list` use it.
func (g *Guard) Decide(loc Location) (*Decision, error) {
	return g.finish(context.Background(), g.decide(loc))
}

func (g *Guard) decide(loc Location) *Decision {
	p := g.policy
	d := &Decision{
		Policy:         p.Name,
		PolicyCitation: p.Citation,
		Location:       loc,
		CatalogAsOf:    g.catalog.AsOf(),
		PolicyAsOf:     p.AsOf,
	}
	r, known := g.catalog.Region(loc.Primary)
	d.Primary = p.judge("primary", loc.Primary, r, known, g.catalog.AsOf())
	if loc.GeoReplicated {
		var sv RegionVerdict
		switch {
		case loc.Secondary != "":
			r, known := g.catalog.Region(loc.Secondary)
			sv = p.judge("secondary", loc.Secondary, r, known, g.catalog.AsOf())
		case p.unrestricted:
			sv = RegionVerdict{Role: "secondary", Allowed: true, Rule: RuleUnrestricted, Citation: p.Citation,
				Reason: fmt.Sprintf("policy %s places no restriction on storage", p.Name)}
		default:
			sku := loc.SKU
			if sku == "" {
				sku = "declared geo-replicated"
			}
			sv = RegionVerdict{Role: "secondary", Rule: RuleUnknownSecondary, Citation: p.Citation,
				Reason: fmt.Sprintf("the account is geo-replicated (%s) but its secondary region is unknown: "+
					"ARM reported none and the catalog has no pair for %s. Declare the secondary with region.Static(primary, secondary) "+
					"(CLI: --secondary), add a pair for %s in an override file, or use a single-region SKU (LRS or ZRS)",
					sku, loc.Primary, loc.Primary)}
		}
		d.Secondary = &sv
	}
	for _, v := range []*RegionVerdict{&d.Primary, d.Secondary} {
		if v != nil && !v.Allowed {
			d.refuse(v.Rule, v.Citation, v.Reason)
		}
	}
	if len(d.refusals) == 0 {
		d.Allowed = true
		d.Rule, d.Citation = d.Primary.Rule, d.Primary.Citation
		d.Reason = d.Primary.Reason
		if d.Secondary != nil {
			d.Reason += "; " + d.Secondary.Reason
		}
	}
	return d
}

func (d *Decision) refuse(rule, citation, reason string) {
	if len(d.refusals) == 0 {
		d.Rule, d.Citation, d.Reason = rule, citation, reason
	}
	d.Allowed = false
	d.refusals = append(d.refusals, reason)
}

func (g *Guard) finish(ctx context.Context, d *Decision) (*Decision, error) {
	if g.logger != nil {
		attrs := []slog.Attr{
			slog.Bool("allowed", d.Allowed), slog.String("policy", d.Policy),
			slog.String("primary", d.Primary.Region), slog.String("rule", d.Rule), slog.String("citation", d.Citation),
		}
		if d.Secondary != nil {
			attrs = append(attrs, slog.String("secondary", d.Secondary.Region))
		}
		if d.Endpoint != "" {
			attrs = append(attrs, slog.String("endpoint", d.Endpoint))
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

// CheckURL is Check plus a check of the endpoint the data will be sent to:
// the endpoint's cloud (…core.windows.net is the public cloud,
// …core.usgovcloudapi.net Azure Government, …core.chinacloudapi.cn Azure
// China) must be the cloud of every resolved region, and a contradiction is
// refused. A loopback endpoint (Azurite on 127.0.0.1 or localhost) is
// allowed only with a Static resolver, whose declared regions are still
// checked; an endpoint on any other host is refused because its cloud
// cannot be known.
func (g *Guard) CheckURL(ctx context.Context, endpoint string) (*Decision, error) {
	loc, err := g.resolver.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("region: resolving the account's location: %w", err)
	}
	d := g.decide(loc)
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("region: endpoint %q is not an absolute URL", endpoint)
	}
	d.Endpoint = u.Scheme + "://" + u.Host
	cloud, loopback := endpointCloud(u.Hostname())
	switch {
	case loopback:
		d.EndpointCloud = EndpointLoopback
		if _, ok := g.resolver.(staticResolver); !ok {
			d.refuse(RuleEmulator, d.PolicyCitation, fmt.Sprintf("endpoint %s is a local emulator endpoint; it is accepted only with a Static resolver "+
				"(declared regions), never with a resolver that looks up a real account", d.Endpoint))
		}
	case cloud == "":
		d.refuse(RuleCloudMismatch, d.PolicyCitation, fmt.Sprintf("endpoint host %s is not an Azure Storage endpoint of a known cloud "+
			"(core.windows.net, core.usgovcloudapi.net, core.chinacloudapi.cn); geoseal cannot tell where it stores data", u.Hostname()))
	default:
		d.EndpointCloud = string(cloud)
		for _, v := range []*RegionVerdict{&d.Primary, d.Secondary} {
			if v != nil && v.Known && v.Cloud != string(cloud) {
				d.refuse(RuleCloudMismatch, d.PolicyCitation, fmt.Sprintf("endpoint %s belongs to %s but the %s region %s belongs to %s: "+
					"the declared or resolved location contradicts the endpoint", d.Endpoint, cloud, v.Role, v.Region, Cloud(v.Cloud)))
			}
		}
	}
	return g.finish(ctx, d)
}

// endpointCloud maps a storage endpoint host to its cloud, or reports a
// loopback host. Unknown hosts return "", false.
func endpointCloud(host string) (Cloud, bool) {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
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
