package region

import (
	"slices"
	"testing"
	"time"
)

// TestCatalogConsistency checks the embedded data against itself and
// against ISO 3166: every pair points at a known region in the same cloud,
// every region has a valid country, every policy entry has a valid country,
// a parseable date and a citation.
func TestCatalogConsistency(t *testing.T) {
	c := DefaultCatalog()
	if _, err := time.Parse(time.DateOnly, c.AsOf()); err != nil {
		t.Errorf("catalog as_of: %v", err)
	}
	if len(c.Sources()) == 0 {
		t.Error("catalog has no sources")
	}
	regions := c.Regions()
	if len(regions) < 80 {
		t.Errorf("catalog has %d regions; expected every Azure region (80+)", len(regions))
	}
	for _, r := range regions {
		if _, ok := CountryName(r.Country); !ok {
			t.Errorf("%s: country %q is not ISO 3166-1 alpha-2", r.Name, r.Country)
		}
		if NormalizeName(r.Name) != r.Name {
			t.Errorf("%s: name is not normalized", r.Name)
		}
		if r.Pair == "" {
			continue
		}
		p, ok := c.Region(r.Pair)
		if !ok {
			t.Errorf("%s: pair %q is not in the catalog", r.Name, r.Pair)
			continue
		}
		if p.Cloud != r.Cloud {
			t.Errorf("%s (%s) pairs with %s (%s): pairs never cross clouds", r.Name, r.Cloud, p.Name, p.Cloud)
		}
	}
	for _, name := range c.PolicyNames() {
		p, err := c.Policy(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("policy %s: %v", name, err)
		}
		if _, err := time.Parse(time.DateOnly, p.AsOf); err != nil {
			t.Errorf("policy %s as_of: %v", name, err)
		}
		if len(p.Sources) == 0 {
			t.Errorf("policy %s has no sources", name)
		}
		for _, e := range slices.Concat(p.AllowCountries, p.DenyCountries, p.Removed) {
			if _, ok := CountryName(e.Country); !ok {
				t.Errorf("policy %s: %q is not ISO 3166-1 alpha-2", name, e.Country)
			}
			if _, err := time.Parse(time.DateOnly, e.Effective); err != nil {
				t.Errorf("policy %s: %s effective: %v", name, e.Country, err)
			}
			if e.Citation == "" {
				t.Errorf("policy %s: %s has no citation", name, e.Country)
			}
		}
	}
}

// TestCatalogCoverage spot-checks regions the catalog must know, written
// here by hand rather than read from the data.
func TestCatalogCoverage(t *testing.T) {
	c := DefaultCatalog()
	want := []struct {
		name, country string
		cloud         Cloud
		pair          string
		restricted    bool
		retired       bool
	}{
		{"eastus", "US", CloudPublic, "westus", false, false},
		{"westus3", "US", CloudPublic, "eastus", false, false},
		{"brazilsouth", "BR", CloudPublic, "southcentralus", false, false},
		{"southcentralus", "US", CloudPublic, "northcentralus", false, false},
		{"westindia", "IN", CloudPublic, "southindia", false, false},
		{"southindia", "IN", CloudPublic, "centralindia", false, false},
		{"southeastasia", "SG", CloudPublic, "eastasia", false, false},
		{"eastasia", "HK", CloudPublic, "southeastasia", false, false},
		{"norwaywest", "NO", CloudPublic, "norwayeast", true, false},
		{"switzerlandwest", "CH", CloudPublic, "switzerlandnorth", true, false},
		{"germanynorth", "DE", CloudPublic, "germanywestcentral", true, false},
		{"southafricawest", "ZA", CloudPublic, "southafricanorth", true, false},
		{"uaecentral", "AE", CloudPublic, "uaenorth", true, false},
		{"australiacentral2", "AU", CloudPublic, "australiacentral", true, false},
		{"brazilsoutheast", "BR", CloudPublic, "brazilsouth", true, false},
		{"jioindiacentral", "IN", CloudPublic, "jioindiawest", true, false},
		{"italynorth", "IT", CloudPublic, "", false, false},
		{"polandcentral", "PL", CloudPublic, "", false, false},
		{"israelcentral", "IL", CloudPublic, "", false, false},
		{"qatarcentral", "QA", CloudPublic, "", false, false},
		{"mexicocentral", "MX", CloudPublic, "", false, false},
		{"spaincentral", "ES", CloudPublic, "", false, false},
		{"newzealandnorth", "NZ", CloudPublic, "", false, false},
		{"indonesiacentral", "ID", CloudPublic, "", false, false},
		{"malaysiawest", "MY", CloudPublic, "", false, false},
		{"chilecentral", "CL", CloudPublic, "", false, false},
		{"taiwannorth", "TW", CloudPublic, "", false, false},
		{"usgovvirginia", "US", CloudGovernment, "usgovtexas", false, false},
		{"usgovtexas", "US", CloudGovernment, "usgovvirginia", false, false},
		{"indiasouthcentral", "IN", CloudPublic, "centralindia", false, false},
		{"eastusstg", "US", CloudPublic, "southcentralusstg", true, false},
		{"southcentralusstg", "US", CloudPublic, "eastusstg", true, false},
		{"denmarkeast", "DK", CloudPublic, "", false, false},
		{"usgovarizona", "US", CloudGovernment, "usgovtexas", false, false},
		{"usdodcentral", "US", CloudGovernment, "usdodeast", false, false},
		{"usdodeast", "US", CloudGovernment, "usdodcentral", false, false},
		{"usgoviowa", "US", CloudGovernment, "usgovvirginia", false, true},
		{"chinaeast", "CN", CloudChina, "chinanorth", false, false},
		{"chinaeast2", "CN", CloudChina, "chinanorth2", false, false},
		{"chinaeast3", "CN", CloudChina, "chinanorth3", true, false},
		{"chinanorth", "CN", CloudChina, "chinaeast", false, false},
		{"chinanorth2", "CN", CloudChina, "chinaeast2", false, false},
		{"chinanorth3", "CN", CloudChina, "chinaeast3", false, false},
		{"germanycentral", "DE", CloudGermany, "germanynortheast", false, true},
	}
	for _, w := range want {
		r, ok := c.Region(w.name)
		if !ok {
			t.Errorf("%s: missing from the catalog", w.name)
			continue
		}
		if r.Country != w.country || r.Cloud != w.cloud || r.Pair != w.pair || r.Restricted != w.restricted || r.Retired != w.retired {
			t.Errorf("%s = %+v; want country %s cloud %s pair %q restricted %v retired %v",
				w.name, r, w.country, w.cloud, w.pair, w.restricted, w.retired)
		}
	}
}

// TestCatalogConfirmation pins which entries Microsoft's own lists confirm
// (checked 2026-12-01; see the sources in data/regions.json): pairs the
// guard may infer a secondary from, and regions kept but marked
// unconfirmed.
func TestCatalogConfirmation(t *testing.T) {
	c := DefaultCatalog()
	for _, tc := range []struct {
		name                       string
		pairConfirmed, unconfirmed bool
	}{
		{"eastus", true, false},
		{"southeastasia", true, false},
		{"brazilsouth", true, false},
		{"westus3", true, false},
		{"indiasouthcentral", true, false},
		{"usgovtexas", true, false},
		{"usgovvirginia", true, false},
		{"usgovarizona", true, false},
		{"chinanorth3", true, false},
		{"swedencentral", true, false},
		{"swedensouth", false, false}, // named as a pair, its own pair back is not listed
		{"usdodeast", false, false},
		{"eastusstg", false, true},
		{"southcentralusstg", false, true},
		{"centraluseuap", false, true},
		{"jioindiawest", false, true},
		{"taiwannorth", false, true},
		{"taiwannorthwest", false, true},
		{"israelnorthwest", false, true},
		{"malaysiasouth", false, true},
		{"denmarkeast", false, false},
	} {
		r, ok := c.Region(tc.name)
		if !ok {
			t.Errorf("%s: missing", tc.name)
			continue
		}
		if r.PairConfirmed != tc.pairConfirmed || r.Unconfirmed != tc.unconfirmed {
			t.Errorf("%s: pair_confirmed %v unconfirmed %v; want %v %v", tc.name, r.PairConfirmed, r.Unconfirmed, tc.pairConfirmed, tc.unconfirmed)
		}
		if r.Unconfirmed && r.Note == "" {
			t.Errorf("%s: unconfirmed without a note saying why", tc.name)
		}
	}
	if _, err := parseCatalog([]byte(`{"format":"geoseal-regions/1","as_of":"2026-01-01","regions":[{"name":"a","display_name":"A","country":"US","cloud":"AzureCloud","pair":"","pair_confirmed":true}]}`), policiesJSON); err == nil {
		t.Error("pair_confirmed without a pair accepted")
	}
}

func TestRegionLookupNormalizes(t *testing.T) {
	c := DefaultCatalog()
	for _, in := range []string{"eastus2", "EastUS2", "East US 2", " east us 2 "} {
		if r, ok := c.Region(in); !ok || r.Name != "eastus2" {
			t.Errorf("Region(%q) = %v, %v; want eastus2", in, r.Name, ok)
		}
	}
	if _, ok := c.Region("atlantis"); ok {
		t.Error("Region(atlantis) found")
	}
}

func TestCorruptEmbeddedDataIsAnError(t *testing.T) {
	for _, tc := range []struct{ name, regions string }{
		{"bad pair", `{"format":"geoseal-regions/1","as_of":"2026-01-01","regions":[{"name":"a","display_name":"A","country":"US","cloud":"AzureCloud","pair":"b"}]}`},
		{"bad country", `{"format":"geoseal-regions/1","as_of":"2026-01-01","regions":[{"name":"a","display_name":"A","country":"XX","cloud":"AzureCloud","pair":""}]}`},
		{"duplicate", `{"format":"geoseal-regions/1","as_of":"2026-01-01","regions":[{"name":"a","display_name":"A","country":"US","cloud":"AzureCloud","pair":""},{"name":"a","display_name":"A","country":"US","cloud":"AzureCloud","pair":""}]}`},
		{"cross-cloud pair", `{"format":"geoseal-regions/1","as_of":"2026-01-01","regions":[{"name":"a","display_name":"A","country":"US","cloud":"AzureCloud","pair":"b"},{"name":"b","display_name":"B","country":"US","cloud":"AzureUSGovernment","pair":""}]}`},
		{"bad format", `{"format":"geoseal-regions/2","as_of":"2026-01-01","regions":[]}`},
	} {
		if _, err := parseCatalog([]byte(tc.regions), policiesJSON); err == nil {
			t.Errorf("%s: parseCatalog accepted corrupt data", tc.name)
		}
	}
}
