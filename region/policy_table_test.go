package region

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// The expectations below are written by hand from the regulations, NOT read
// from data/policies.json: if someone edits the data file, these tests
// disagree until a person reviews the change and updates both.

// proscribedITAR: 22 CFR 126.1(d)(1) and (d)(2) as researched for this
// release, plus the Russian Federation (120.54(a)(5)(iv)). Cambodia was
// removed in November 2025.
var proscribedITAR = set("BY", "MM", "CN", "CU", "IR", "KP", "RU", "SY", "VE", // (d)(1) and Russia
	"AF", "CF", "CD", "CY", "ER", "ET", "HT", "IQ", "LB", "LY", "NI", "SO", "SS", "SD", "ZW") // (d)(2)

// proscribedEAR: Country Group D:5 (which follows 126.1) plus Russia
// (734.18(a)(5)(iv)). Cambodia left D:5 on 2026-02-03.
var proscribedEAR = set("AF", "BY", "MM", "CF", "CN", "CD", "CU", "CY", "ER", "ET", "HT", "IR", "IQ",
	"KP", "LB", "LY", "NI", "RU", "SO", "SS", "SD", "SY", "VE", "ZW")

// countsAs: territories the EAR and ITAR treat as another country since 2020.
var countsAs = map[string]string{"HK": "CN"}

func set(cs ...string) map[string]bool {
	m := map[string]bool{}
	for _, c := range cs {
		m[c] = true
	}
	return m
}

// expectAllowed is the independent oracle: region country -> allowed.
func expectAllowed(policy, country string) bool {
	if as, ok := countsAs[country]; ok && policy != "us-only" {
		country = as
	}
	switch policy {
	case "itar":
		return !proscribedITAR[country]
	case "ear":
		return !proscribedEAR[country]
	case "us-only":
		return country == "US"
	}
	panic("no oracle for policy " + policy)
}

func TestBuiltInListsMatchHandWrittenLists(t *testing.T) {
	for name, want := range map[string]map[string]bool{"itar": proscribedITAR, "ear": proscribedEAR} {
		p, err := LoadPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, d := range p.DenyCountries {
			got[d.Country] = true
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s deny-list = %v; hand-written list = %v", name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		if len(p.TreatAs) != 1 || p.TreatAs[0].Country != "HK" || p.TreatAs[0].As != "CN" {
			t.Errorf("%s treat_as = %+v; want HK as CN", name, p.TreatAs)
		}
		if !slices.ContainsFunc(p.Removed, func(r CountryRule) bool { return r.Country == "KH" }) {
			t.Errorf("%s: Cambodia's removal is not recorded", name)
		}
	}
	p, _ := LoadPolicy("us-only")
	if len(p.AllowCountries) != 1 || p.AllowCountries[0].Country != "US" || len(p.DenyCountries) != 0 {
		t.Errorf("us-only = %+v; want allow-list [US]", p)
	}
}

// TestEveryRegionUnderEveryPolicy runs every catalog region under every
// built-in policy, alone and geo-replicated to its pair (or, without a pair,
// geo-replicated to an unknown secondary), against the oracle.
func TestEveryRegionUnderEveryPolicy(t *testing.T) {
	c := DefaultCatalog()
	for _, policy := range []string{"ear", "itar", "us-only"} {
		p, err := c.Policy(policy)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range c.Regions() {
			g, err := NewGuard(p, Static(r.Name, ""), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Alone (LRS/ZRS).
			want := expectAllowed(policy, r.Country)
			d, err := g.Decide(Location{Primary: r.Name})
			checkDecision(t, policy+"/"+r.Name, d, err, want)

			// Geo-replicated to its pair, or to an unknown secondary.
			loc := Location{Primary: r.Name, GeoReplicated: true, SKU: "Standard_GRS", Secondary: r.Pair}
			d, err = g.Decide(loc)
			if r.Pair == "" {
				checkDecision(t, policy+"/"+r.Name+"+?", d, err, false)
				if d.Secondary == nil || d.Secondary.Rule != RuleUnknownSecondary {
					t.Errorf("%s/%s GRS without pair: secondary verdict %+v; want %s", policy, r.Name, d.Secondary, RuleUnknownSecondary)
				}
				continue
			}
			pair, _ := c.Region(r.Pair)
			want = expectAllowed(policy, r.Country) && expectAllowed(policy, pair.Country)
			checkDecision(t, policy+"/"+r.Name+"+"+r.Pair, d, err, want)
			if d.Secondary == nil || d.Secondary.Region != r.Pair || d.Secondary.Country != pair.Country {
				t.Errorf("%s/%s: secondary verdict %+v; want %s in %s", policy, r.Name, d.Secondary, r.Pair, pair.Country)
			}
		}
	}
}

func checkDecision(t *testing.T, name string, d *Decision, err error, want bool) {
	t.Helper()
	if d == nil {
		t.Fatalf("%s: nil decision (err %v)", name, err)
	}
	var v *Violation
	switch {
	case want && (err != nil || !d.Allowed):
		t.Errorf("%s: refused (%v); want allowed", name, err)
	case !want && (d.Allowed || !errors.As(err, &v)):
		t.Errorf("%s: allowed=%v err=%v; want refused with *Violation", name, d.Allowed, err)
	case !want && v.Decision != d:
		t.Errorf("%s: Violation carries another decision", name)
	}
	if d.Citation == "" || d.Rule == "" || d.Reason == "" {
		t.Errorf("%s: decision without rule/citation/reason: %+v", name, d)
	}
}

// TestSpotChecks are explicit, hand-picked cases.
func TestSpotChecks(t *testing.T) {
	for _, tc := range []struct {
		policy, primary, secondary string
		allowed                    bool
		rule                       Rule
	}{
		{"itar", "southeastasia", "eastasia", false, RuleDeniedCountry}, // the GRS trap
		{"ear", "southeastasia", "eastasia", false, RuleDeniedCountry},
		{"itar", "southeastasia", "", true, RuleAllowedCountry},
		{"ear", "eastasia", "", false, RuleDeniedCountry},
		{"itar", "chinanorth3", "", false, RuleDeniedCountry},
		{"ear", "chinaeast2", "chinanorth2", false, RuleDeniedCountry},
		{"itar", "taiwannorth", "", true, RuleAllowedCountry}, // Taiwan is not China for these lists
		{"ear", "brazilsouth", "southcentralus", true, RuleAllowedCountry},
		{"itar", "westeurope", "northeurope", true, RuleAllowedCountry},
		{"itar", "uaenorth", "uaecentral", true, RuleAllowedCountry},
		{"us-only", "eastus", "westus", true, RuleAllowListed},
		{"us-only", "usgovvirginia", "usgovtexas", true, RuleAllowListed},
		{"us-only", "usdodeast", "", true, RuleAllowListed},
		{"us-only", "brazilsouth", "southcentralus", false, RuleNotAllowListed},
		{"us-only", "eastus", "canadacentral", false, RuleNotAllowListed},
		{"us-only", "eastasia", "", false, RuleNotAllowListed},
		{"itar", "atlantis", "", false, RuleUnknownRegion},
		{"itar", "eastus", "atlantis", false, RuleUnknownRegion},
	} {
		p, err := LoadPolicy(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewGuard(p, Static(tc.primary, tc.secondary), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := g.Check(t.Context())
		name := tc.policy + "/" + tc.primary + "+" + tc.secondary
		checkDecision(t, name, d, err, tc.allowed)
		if d.Rule != tc.rule {
			t.Errorf("%s: rule %s; want %s", name, d.Rule, tc.rule)
		}
	}
}

// TestTrapMessage is the message a compliance officer reads when a
// Singapore account replicates to Hong Kong.
func TestTrapMessage(t *testing.T) {
	for _, tc := range []struct{ policy, want string }{
		{"itar", "region: refused: secondary region eastasia is in Hong Kong SAR (China), which ITAR 22 CFR 126.1(d)(1) proscribes"},
		{"ear", "region: refused: secondary region eastasia is in Hong Kong SAR (China), which EAR 15 CFR 740 Supp. No. 1 (Country Group D:5) proscribes"},
	} {
		p, _ := LoadPolicy(tc.policy)
		g, _ := NewGuard(p, Static("southeastasia", "eastasia"), nil)
		d, err := g.Check(t.Context())
		var v *Violation
		if !errors.As(err, &v) {
			t.Fatalf("%s: err = %v; want *Violation", tc.policy, err)
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s:\n got %s\nwant prefix %s", tc.policy, err, tc.want)
		}
		for _, s := range []string{"HK counts as CN", "Executive Order 13936", "policy " + tc.policy} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: message lacks %q: %s", tc.policy, s, err)
			}
		}
		if !d.Primary.Allowed || d.Primary.Country != "SG" || d.Secondary.Country != "HK" || d.Secondary.TreatedAs != "CN" {
			t.Errorf("%s: verdicts %+v / %+v", tc.policy, d.Primary, d.Secondary)
		}
	}
}

// TestRemovedCountryIsAllowed checks Cambodia (removed from both lists) and
// Russia through a declared test region, since no Azure region is in either.
func TestRemovedCountryIsAllowed(t *testing.T) {
	o, err := LoadOverride(strings.NewReader(`{"format":"geoseal-override/1","as_of":"2026-11-27","source":"test",
		"regions":[{"name":"phnompenh","display_name":"Phnom Penh","country":"KH","cloud":"AzureCloud","pair":""},
		           {"name":"moscow","display_name":"Moscow","country":"RU","cloud":"AzureCloud","pair":""}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := DefaultCatalog().Apply(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"ear", "itar"} {
		p, _ := cat.Policy(policy)
		g, _ := NewGuard(p, Static("phnompenh", ""), &GuardOptions{Catalog: cat})
		d, err := g.Check(t.Context())
		checkDecision(t, policy+"/KH", d, err, expectAllowed(policy, "KH"))
		g, _ = NewGuard(p, Static("moscow", ""), &GuardOptions{Catalog: cat})
		d, err = g.Check(t.Context())
		checkDecision(t, policy+"/RU", d, err, expectAllowed(policy, "RU"))
	}
}
