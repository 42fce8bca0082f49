package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/geoseal/geoseal/region"
)

const regionHelp = `Usage:

	geoseal region check --policy NAME --primary REGION [--secondary REGION]
	        [--keyvault-region REGION] [--json] [--override FILE]
	geoseal region list [--policy NAME] [--json] [--override FILE]

check decides whether an Azure storage account whose data lives in REGION
(and, if it is geo-replicated: GRS, RA-GRS, GZRS, RA-GZRS, in --secondary)
may hold data under policy NAME. It checks the secondary as strictly as the
primary: southeastasia replicates to eastasia, which is in Hong Kong SAR and
counts as China under the EAR and the ITAR. A region missing from the
catalog is refused; declare it in an override file. With --keyvault-region
it also judges where the key-encryption key lives: a Key Vault vault in
REGION and, as Key Vault replicates a vault to its region's pair, that pair
(a vault in southeastasia puts the key in eastasia too).

list prints every region in the catalog: programmatic name, display name,
ISO 3166 country, cloud, geo-replication pair, and flags (restricted-access,
retired; unconfirmed: not in Microsoft's own region lists; pair-unconfirmed:
the pair is not in Microsoft's region-pairs documentation, so a secondary
inferred from it is refused). With --policy it adds the verdict for the region alone and for the
region geo-replicated to its pair ("no pair": a geo-replicated account there
is refused unless its secondary is declared).

Flags:

	--policy NAME       ear (Country Group D:5 and Russia, 15 CFR 734.18(a)(5)(iv)),
	                    itar (22 CFR 126.1 countries and Russia, 22 CFR 120.54(a)(5)(iv)),
	                    us-only (United States regions, public and Government),
	                    or a policy defined in the override file
	--primary REGION    the account's primary region, e.g. eastus (case and spaces ignored)
	--secondary REGION  the secondary region of a geo-replicated account; omit for LRS/ZRS
	--keyvault-region REGION
	                    the region of the Key Vault vault holding the key-encryption key
	--override FILE     an override file (format geoseal-override/1) adding regions or
	                    changing policies; see the region package documentation
	--json              print JSON instead of text

Exit status (check): 0 allowed, 3 refused by the policy (unknown regions
included), 1 usage or data error (unknown policy, bad override file).
Exit status (list): 0, or 1 on usage or data error.

The lists are dated research with citations, not legal advice.
`

// loadCatalog returns the embedded catalog, with the override file applied
// when one is given.
func loadCatalog(path string) (*region.Catalog, error) {
	cat := region.DefaultCatalog()
	if path == "" {
		return cat, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	o, err := region.LoadOverride(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cat.Apply(o)
}

// checkOutput is the JSON `region check --json` prints: the decision plus
// the refusal message a person would read.
type checkOutput struct {
	*region.Decision
	Message string `json:"message"`
}

type regionCheckCmd struct {
	policy, primary, secondary string
	keyVaultRegion, override   string
	json                       bool
}

func (c *regionCheckCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.policy, "policy", "", "policy name (required)")
	fs.StringVar(&c.primary, "primary", "", "primary region (required)")
	fs.StringVar(&c.secondary, "secondary", "", "secondary region of a geo-replicated account")
	fs.StringVar(&c.keyVaultRegion, "keyvault-region", "", "region of the key vault holding the key-encryption key")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	fs.StringVar(&c.override, "override", "", "override file")
}

func (c *regionCheckCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	c.policy, c.primary, c.secondary = regionDefaults(env, c.policy, c.primary, c.secondary, "")
	if c.policy == "" || strings.TrimSpace(c.primary) == "" {
		return usageErrorf("--policy and --primary are required (or $%s and $%s)", envPolicy, envPrimary)
	}
	cat, err := loadCatalog(c.override)
	if err != nil {
		return err
	}
	p, err := policyOf(cat, c.policy)
	if err != nil {
		return err
	}
	opts := &region.GuardOptions{Catalog: cat}
	if c.keyVaultRegion != "" {
		opts.KeyVaults = []region.Resolver{region.StaticKeyVault(c.keyVaultRegion)}
	}
	g, err := region.NewGuard(p, region.Static(c.primary, c.secondary), opts)
	if err != nil {
		return err
	}
	d, err := g.Check(ctx)
	var v *region.Violation
	if err != nil && !errors.As(err, &v) {
		return err
	}
	message := d.Reason
	if v != nil {
		message = v.Error()
	}
	if c.json {
		if err := printJSON(env.stdout, checkOutput{Decision: d, Message: message}); err != nil {
			return err
		}
	} else {
		printDecision(env.stdout, cat, d, message)
	}
	if v != nil {
		return shown{v} // the decision printed is the explanation
	}
	return nil
}

func printDecision(w io.Writer, cat *region.Catalog, d *region.Decision, message string) {
	verdict := "ALLOWED"
	if !d.Allowed {
		verdict = "REFUSED"
	}
	fmt.Fprintf(w, "%s under policy %s (%s)\n", verdict, d.Policy, d.PolicyCitation)
	for _, v := range []*region.Verdict{&d.Primary, d.Secondary} {
		if v == nil {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", v.Role+":", describeVerdict(v))
	}
	if d.Secondary == nil {
		fmt.Fprintf(w, "  %-10s none declared (not geo-replicated)\n", "secondary:")
	}
	for i := range d.Copies {
		v := &d.Copies[i]
		fmt.Fprintf(w, "  %-10s %s: %s\n", v.Role+":", v.Holder, describeVerdict(v))
	}
	fmt.Fprintf(w, "%s\n", message)
	verdicts := []region.Verdict{d.Primary}
	if d.Secondary != nil {
		verdicts = append(verdicts, *d.Secondary)
	}
	for _, v := range append(verdicts, d.Copies...) {
		if hint := regionHint(cat, v); hint != "" {
			fmt.Fprintf(w, "%s is not in the catalog%s\n", quoteUntrusted(v.Region), hint)
		}
	}
	fmt.Fprintf(w, "data: region catalog as of %s, policy as of %s. Not legal advice.\n", d.CatalogAsOf, d.PolicyAsOf)
}

// regionHint is, for a region the catalog does not know, the nearest one
// it does: "; did you mean eastus?" (a typo refused is a typo to fix).
func regionHint(cat *region.Catalog, v region.Verdict) string {
	if v.Known || v.Region == "" {
		return ""
	}
	var names []string
	for _, r := range cat.Regions() {
		names = append(names, r.Name)
	}
	return didYouMean(region.NormalizeName(v.Region), names)
}

// policyOf returns the policy name of cat, or an error that suggests the
// nearest policy name.
func policyOf(cat *region.Catalog, name string) (*region.Policy, error) {
	p, err := cat.Policy(name)
	if err != nil {
		if hint := didYouMean(name, cat.PolicyNames()); hint != "" {
			err = fmt.Errorf("%w%s", err, hint)
		}
	}
	return p, err
}

func describeVerdict(v *region.Verdict) string {
	var b strings.Builder
	if !v.Known {
		// Not a catalog name: the user's or ARM's text, quoted.
		fmt.Fprintf(&b, "%q (not in the catalog)", v.Region)
	} else {
		b.WriteString(v.Region)
		fmt.Fprintf(&b, " (%s) in %s [%s]", v.DisplayName, v.CountryName, v.Country)
		if v.TreatedAs != "" {
			fmt.Fprintf(&b, " counted as %s", v.TreatedAs)
		}
		if v.Inferred {
			b.WriteString(" (inferred)")
		}
		fmt.Fprintf(&b, ", %s", v.Cloud)
	}
	state := "allowed"
	if !v.Allowed {
		state = "refused"
	}
	fmt.Fprintf(&b, ": %s (%s", state, v.Rule)
	if v.Citation != "" {
		fmt.Fprintf(&b, "; %s", v.Citation)
	}
	if v.Effective != "" {
		fmt.Fprintf(&b, "; effective %s", v.Effective)
	}
	b.WriteString(")")
	return b.String()
}

// listEntry is one row of `region list --json`.
type listEntry struct {
	region.Region
	Alone    *verdictSummary `json:"verdict,omitempty"`
	WithPair *verdictSummary `json:"verdict_with_pair,omitempty"`
}

type verdictSummary struct {
	Allowed  bool        `json:"allowed"`
	Rule     region.Rule `json:"rule"`
	Citation string      `json:"citation,omitempty"`
	Reason   string      `json:"reason"`
}

type listOutput struct {
	AsOf    string      `json:"as_of"`
	Policy  string      `json:"policy,omitempty"`
	Regions []listEntry `json:"regions"`
}

type regionListCmd struct {
	policy, override string
	json             bool
}

func (c *regionListCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.policy, "policy", "", "policy name: add each region's verdict")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	fs.StringVar(&c.override, "override", "", "override file")
}

func (c *regionListCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	stdout := env.stdout
	policyName := &c.policy
	cat, err := loadCatalog(c.override)
	if err != nil {
		return err
	}
	var g *region.Guard
	if *policyName != "" {
		p, err := policyOf(cat, *policyName)
		if err == nil {
			// The resolver is unused: Decide judges given locations.
			g, err = region.NewGuard(p, region.Static("eastus", ""), &region.GuardOptions{Catalog: cat})
		}
		if err != nil {
			return err
		}
	}
	out := listOutput{AsOf: cat.AsOf(), Policy: *policyName}
	for _, r := range cat.Regions() {
		e := listEntry{Region: r}
		if g != nil {
			d, _ := g.Decide(region.Location{Primary: r.Name})
			e.Alone = summarize(d)
			d, _ = g.Decide(region.Location{Primary: r.Name, GeoReplicated: true, Secondary: r.Pair})
			e.WithPair = summarize(d)
		}
		out.Regions = append(out.Regions, e)
	}
	if c.json {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tDISPLAY NAME\tCOUNTRY\tCLOUD\tPAIR\tFLAGS"
	if g != nil {
		header += "\t" + strings.ToUpper(*policyName) + " ALONE\tWITH PAIR"
	}
	fmt.Fprintln(tw, header)
	for _, e := range out.Regions {
		var flags []string
		if e.Restricted {
			flags = append(flags, "restricted")
		}
		if e.Retired {
			flags = append(flags, "retired")
		}
		if e.Unconfirmed {
			flags = append(flags, "unconfirmed")
		}
		if e.Pair != "" && !e.PairConfirmed {
			flags = append(flags, "pair-unconfirmed")
		}
		pair := e.Pair
		if pair == "" {
			pair = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", e.Name, e.DisplayName, e.Country, string(e.Cloud), pair, strings.Join(flags, ","))
		if g != nil {
			with := verdictWord(e.WithPair)
			if e.Pair == "" {
				with = "refused (no pair)"
			}
			line += "\t" + verdictWord(e.Alone) + "\t" + with
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d regions; catalog as of %s. Not legal advice.\n", len(out.Regions), out.AsOf)
	return nil
}

func summarize(d *region.Decision) *verdictSummary {
	return &verdictSummary{Allowed: d.Allowed, Rule: d.Rule, Citation: d.Citation, Reason: d.Reason}
}

func verdictWord(v *verdictSummary) string {
	if v.Allowed {
		return "allowed"
	}
	return "refused (" + string(v.Rule) + ")"
}
