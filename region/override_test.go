package region

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestOverrideApplies(t *testing.T) {
	f, err := os.Open("testdata/override-example.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := LoadOverride(f)
	if err != nil {
		t.Fatal(err)
	}
	base := DefaultCatalog()
	cat, err := base.Apply(o)
	if err != nil {
		t.Fatal(err)
	}
	// The base catalog is untouched.
	if r, _ := base.Region("mexicocentral"); r.Pair != "" {
		t.Fatal("Apply modified the base catalog")
	}
	if _, ok := base.Region("chilenorth"); ok {
		t.Fatal("Apply modified the base catalog")
	}
	if !slices.Contains(cat.PolicyNames(), "acme-eu") || slices.Contains(base.PolicyNames(), "acme-eu") {
		t.Fatal("policy not added (or added to the base)")
	}

	itar, _ := cat.Policy("itar")
	for _, tc := range []struct {
		loc     Location
		allowed bool
		rule    Rule
	}{
		// A region added by the override, geo-replicated to its declared pair.
		{Location{Primary: "chilenorth", GeoReplicated: true, Secondary: "chilecentral"}, true, RuleAllowedCountry},
		// mexicocentral now has a pair, so an ARM-less GRS account resolves.
		{Location{Primary: "mexicocentral", GeoReplicated: true, Secondary: "southcentralus"}, true, RuleAllowedCountry},
		// The extended itar policy denies westeurope and keeps its lists.
		{Location{Primary: "westeurope"}, false, RuleDeniedRegion},
		{Location{Primary: "northeurope", GeoReplicated: true, Secondary: "westeurope"}, false, RuleDeniedRegion},
		{Location{Primary: "southeastasia", GeoReplicated: true, Secondary: "eastasia"}, false, RuleDeniedCountry},
	} {
		g, _ := NewGuard(itar, Static("eastus", ""), &GuardOptions{Catalog: cat})
		d, err := g.Decide(tc.loc)
		checkDecision(t, tc.loc.Primary, d, err, tc.allowed)
		if d.Rule != tc.rule {
			t.Errorf("%+v: rule %s; want %s", tc.loc, d.Rule, tc.rule)
		}
	}
	// The guard infers an unreported secondary from the override's pair,
	// and refuses it: the override does not confirm the pair.
	g, _ := NewGuard(itar, Static("eastus", ""), &GuardOptions{Catalog: cat})
	d, err := g.Decide(Location{Primary: "mexicocentral", GeoReplicated: true, Source: SourceARM, AllowCrossTenantReplication: new(bool)})
	if d == nil || d.Secondary == nil || d.Secondary.Region != "southcentralus" || !d.Secondary.Inferred || d.Rule != RuleInferredSecondary {
		t.Fatalf("inferred from the override's pair: %+v, %v", d, err)
	}
	// The built-in itar is unchanged.
	orig, _ := LoadPolicy("itar")
	if len(orig.DenyRegions) != 0 {
		t.Fatal("override leaked into the built-in policy")
	}
}

func TestOverrideRemoveCountryIsExplicit(t *testing.T) {
	o, err := LoadOverride(strings.NewReader(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"memo",
	  "policies":[{"name":"itar","extends":"itar","remove_countries":[{"country":"CY","name":"Cyprus","effective":"2026-10-01","citation":"State rule FY2027 Cyprus"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := DefaultCatalog().Apply(o)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Policy("itar")
	if slices.ContainsFunc(p.DenyCountries, func(r CountryRule) bool { return r.Country == "CY" }) {
		t.Fatal("CY still denied")
	}
	if !slices.ContainsFunc(p.Removed, func(r CountryRule) bool { return r.Country == "CY" && r.Citation == "State rule FY2027 Cyprus" }) {
		t.Fatalf("removal not recorded: %+v", p.Removed)
	}
	// Removing a country that is not listed is an error, not a no-op.
	o, err = LoadOverride(strings.NewReader(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"memo",
	  "policies":[{"name":"itar","extends":"itar","remove_countries":[{"country":"FR","name":"France","effective":"2026-10-01","citation":"x"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DefaultCatalog().Apply(o); err == nil || !strings.Contains(err.Error(), "not on the deny-list") {
		t.Fatalf("removing an unlisted country: %v", err)
	}
}

// TestMalformedOverride: every malformed file is a clear *DataError naming
// the problem; none of them loads as a weaker policy.
func TestMalformedOverride(t *testing.T) {
	const head = `"format":"geoseal-override/1","as_of":"2026-12-01","source":"memo"`
	region := func(fields string) string { return `{` + head + `,"regions":[{` + fields + `}]}` }
	policy := func(fields string) string { return `{` + head + `,"policies":[{` + fields + `}]}` }
	okRegion := `"name":"newregion","display_name":"New","country":"DE","cloud":"AzureCloud","pair":""`
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "EOF"},
		{"not JSON", `deny everything`, "invalid character"},
		{"array", `[]`, "cannot unmarshal array"},
		{"wrong format", `{"format":"geoseal-override/2","as_of":"2026-12-01","source":"x","regions":[]}`, "format"},
		{"missing format", `{"as_of":"2026-12-01","source":"x"}`, "format"},
		{"bad as_of", `{"format":"geoseal-override/1","as_of":"12/01/2026","source":"x"}`, "YYYY-MM-DD"},
		{"no source", `{"format":"geoseal-override/1","as_of":"2026-12-01","regions":[{` + okRegion + `}]}`, "source"},
		{"nothing", `{` + head + `}`, "nothing to override"},
		{"unknown top-level field", `{` + head + `,"regoins":[]}`, `unknown field "regoins"`},
		{"misspelt list", policy(`"name":"itar","extends":"itar","deny_countires":[]`), `unknown field "deny_countires"`},
		{"duplicate key", `{` + head + `,"source":"other","regions":[{` + okRegion + `}]}`, "duplicate key"},
		{"case-folded duplicate", region(okRegion + `,"Country":"CN"`), "duplicate key"},
		{"trailing data", `{` + head + `,"regions":[{` + okRegion + `}]} {}`, "trailing data"},
		{"invalid UTF-8", "{" + head + ",\"regions\":[{" + okRegion + ",\"note\":\"\xff\"}]}", "UTF-8"},
		{"too deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), "nested deeper"},
		{"country not ISO", region(`"name":"newregion","display_name":"New","country":"XK","cloud":"AzureCloud","pair":""`), "ISO 3166"},
		{"country lower case", region(`"name":"newregion","display_name":"New","country":"de","cloud":"AzureCloud","pair":""`), "ISO 3166"},
		{"country as number", region(`"name":"newregion","display_name":"New","country":49,"cloud":"AzureCloud","pair":""`), "cannot unmarshal number"},
		{"unknown cloud", region(`"name":"newregion","display_name":"New","country":"DE","cloud":"Azure","pair":""`), "unknown cloud"},
		{"bad region name", region(`"name":"New Region","display_name":"New","country":"DE","cloud":"AzureCloud","pair":""`), "lower-case"},
		{"no display name", region(`"name":"newregion","country":"DE","cloud":"AzureCloud","pair":""`), "display_name"},
		{"self pair", region(`"name":"newregion","display_name":"New","country":"DE","cloud":"AzureCloud","pair":"newregion"`), "itself"},
		{"duplicate region", `{` + head + `,"regions":[{` + okRegion + `},{` + okRegion + `}]}`, "duplicate region"},
		{"bad policy name", policy(`"name":"ITAR!","citation":"c","deny_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}]`), "name"},
		{"redefine built-in", policy(`"name":"itar","citation":"c","deny_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}]`), "already exists"},
		{"policy without rules", policy(`"name":"mine","citation":"c"`), "no allow or deny rules"},
		{"policy without citation", policy(`"name":"mine","deny_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}]`), "citation is empty"},
		{"entry without citation", policy(`"name":"itar","extends":"itar","deny_countries":[{"country":"FR","effective":"2020-01-01"}]`), "citation is empty"},
		{"entry bad date", policy(`"name":"itar","extends":"itar","deny_countries":[{"country":"FR","effective":"2020-02-30","citation":"c"}]`), "YYYY-MM-DD"},
		{"entry bad country", policy(`"name":"itar","extends":"itar","deny_countries":[{"country":"FRA","effective":"2020-01-01","citation":"c"}]`), "ISO 3166"},
		{"entry null country", policy(`"name":"itar","extends":"itar","deny_countries":[{"country":null,"effective":"2020-01-01","citation":"c"}]`), "ISO 3166"},
		{"duplicate entry", policy(`"name":"itar","extends":"itar","deny_countries":[{"country":"CN","effective":"2020-01-01","citation":"c"}]`), "duplicate country"},
		{"remove without extends", policy(`"name":"mine","citation":"c","deny_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}],"remove_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}]`), "needs extends"},
		{"remove without citation", policy(`"name":"itar","extends":"itar","remove_countries":[{"country":"CN","effective":"2020-01-01"}]`), "citation is empty"},
		{"removed is read-only", policy(`"name":"itar","extends":"itar","removed":[{"country":"CN","effective":"2020-01-01","citation":"c"}]`), "remove_countries"},
		{"extends unknown", policy(`"name":"mine","extends":"itr","deny_countries":[{"country":"RU","effective":"2020-01-01","citation":"c"}]`), "extends unknown policy"},
		{"rule names unknown region", policy(`"name":"itar","extends":"itar","deny_regions":[{"region":"westeuropa","reason":"r","citation":"c"}]`), "unknown region"},
		{"pair to unknown region", region(`"name":"newregion","display_name":"New","country":"DE","cloud":"AzureCloud","pair":"nowhere"`), "not a known region"},
		{"pair across clouds", region(`"name":"newregion","display_name":"New","country":"US","cloud":"AzureCloud","pair":"usgovtexas"`), "Azure US Government"},
		{"alias to itself", policy(`"name":"itar","extends":"itar","treat_as":[{"country":"MO","as":"MO","effective":"2020-01-01","citation":"c"}]`), "itself"},
		{"too large", `{` + head + `,"source2":"` + strings.Repeat("x", maxOverrideSize) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := LoadOverride(strings.NewReader(tc.in))
			if err == nil {
				_, err = DefaultCatalog().Apply(o)
			}
			if err == nil {
				t.Fatalf("accepted malformed override")
			}
			var de *DataError
			if !errors.As(err, &de) {
				t.Fatalf("err %T %v; want *DataError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %q; want it to mention %q", err, tc.want)
			}
		})
	}
}

// FuzzLoadOverride: no input panics, and any override that loads and
// applies never weakens the built-in policies silently: every country the
// built-in ear and itar deny stays denied, or is recorded as removed with a
// citation (remove_countries).
func FuzzLoadOverride(f *testing.F) {
	seed, err := os.ReadFile("testdata/override-example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"m","regions":[{"name":"x1","display_name":"X","country":"DE","cloud":"AzureCloud","pair":""}]}`))
	f.Add([]byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"m","policies":[{"name":"itar","extends":"itar","remove_countries":[{"country":"CY","effective":"2026-10-01","citation":"c"}]}]}`))
	f.Add([]byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"m","policies":[{"name":"p","citation":"c","treat_as":[{"country":"MO","as":"CN","effective":"2020-01-01","citation":"c"}],"deny_countries":[{"country":"CN","effective":"2020-01-01","citation":"c"}]}]}`))
	f.Add([]byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"m","source":"n"}`))
	f.Add([]byte(`[[[[{"a":{"b":[1,2,{"c":null}]}}]]]]`))
	f.Add([]byte(``))
	base := DefaultCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := LoadOverride(bytes.NewReader(data))
		if err != nil {
			var de *DataError
			if !errors.As(err, &de) {
				t.Fatalf("error is %T, not *DataError: %v", err, err)
			}
			return
		}
		cat, err := base.Apply(o)
		if err != nil {
			return
		}
		for _, name := range []string{"ear", "itar"} {
			orig, _ := base.Policy(name)
			got, err := cat.Policy(name)
			if err != nil {
				t.Fatalf("override lost policy %s", name)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("applied policy %s is invalid: %v", name, err)
			}
			for _, d := range orig.DenyCountries {
				if slices.ContainsFunc(got.DenyCountries, func(e CountryRule) bool { return e.Country == d.Country }) {
					continue
				}
				// Dropped: only allowed as an explicit, recorded removal.
				if !slices.ContainsFunc(got.Removed, func(e CountryRule) bool { return e.Country == d.Country && e.Citation != "" }) {
					t.Fatalf("override silently dropped %s from %s", d.Country, name)
				}
			}
		}
		for _, r := range cat.Regions() {
			if _, ok := CountryName(r.Country); !ok {
				t.Fatalf("region %s has invalid country %q", r.Name, r.Country)
			}
			if r.Pair != "" {
				if _, ok := cat.Region(r.Pair); !ok {
					t.Fatalf("region %s pairs with unknown %s", r.Name, r.Pair)
				}
			}
		}
	})
}
