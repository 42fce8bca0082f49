package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegionCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	override := filepath.Join(dir, "override.json")
	if err := os.WriteFile(override, []byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"test memo",
		"regions":[{"name":"mexicocentral","display_name":"Mexico Central","country":"MX","cloud":"AzureCloud","pair":"southcentralus"}],
		"policies":[{"name":"itar","extends":"itar","deny_regions":[{"region":"westeurope","reason":"TCP","citation":"TCP 4.2"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"x","regions":[{"name":"x","display_name":"X","country":"ZZ","cloud":"AzureCloud","pair":""}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"trap itar", []string{"region", "check", "--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia"}, 3,
			"refused: secondary region eastasia is in Hong Kong SAR (China), which ITAR 22 CFR 126.1(d)(1) proscribes", ""},
		{"trap ear", []string{"region", "check", "--policy", "ear", "--primary", "southeastasia", "--secondary", "eastasia"}, 3,
			"REFUSED under policy ear", ""},
		{"singapore LRS", []string{"region", "check", "--policy", "itar", "--primary", "southeastasia"}, 0, "ALLOWED", ""},
		{"brazil one-way pair", []string{"region", "check", "--policy", "ear", "--primary", "brazilsouth", "--secondary", "southcentralus"}, 0, "southcentralus (South Central US) in United States", ""},
		{"us-only gov", []string{"region", "check", "--policy", "us-only", "--primary", "usgovvirginia", "--secondary", "usgovtexas"}, 0, "ALLOWED", ""},
		{"us-only europe", []string{"region", "check", "--policy", "us-only", "--primary", "westeurope"}, 3, "not-allow-listed", ""},
		{"unknown region", []string{"region", "check", "--policy", "itar", "--primary", "atlantis"}, 3, "override file", ""},
		{"unknown secondary", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "--secondary", "atlantis"}, 3, "unknown-region", ""},
		{"override adds deny", []string{"region", "check", "--policy", "itar", "--primary", "westeurope", "--override", override}, 3, "TCP 4.2", ""},
		{"override keeps others", []string{"region", "check", "--policy", "itar", "--primary", "mexicocentral", "--secondary", "southcentralus", "--override", override}, 0, "ALLOWED", ""},
		{"malformed override", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "--override", bad}, 1, "", "ISO 3166"},
		{"missing override", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "--override", filepath.Join(dir, "nope.json")}, 1, "", "no such file"},
		{"unknown policy", []string{"region", "check", "--policy", "itr", "--primary", "eastus"}, 1, "", "unknown policy"},
		{"no policy", []string{"region", "check", "--primary", "eastus"}, 1, "", "--policy and --primary are required"},
		{"no primary", []string{"region", "check", "--policy", "itar"}, 1, "", "--policy and --primary are required"},
		{"bad flag", []string{"region", "check", "--polcy", "itar"}, 1, "", "unknown flag --polcy; did you mean --policy?\nrun 'geoseal region check --help'"},
		{"stray argument", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "westus"}, 1, "", "unexpected argument"},
		{"no subcommand", []string{"region"}, 1, "", "missing subcommand"},
		{"bad subcommand", []string{"region", "chek"}, 1, "", "unknown subcommand"},
		{"keyvault in eastus", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "--keyvault-region", "eastus"}, 0,
			"key vault (declared): secondary region westus", ""},
		{"keyvault in southeastasia: its pair is Hong Kong", []string{"region", "check", "--policy", "itar", "--primary", "eastus", "--keyvault-region", "southeastasia"}, 3,
			"key vault (declared): secondary region eastasia is in Hong Kong SAR (China), which ITAR 22 CFR 126.1(d)(1) proscribes", ""},
		{"keyvault in brazilsouth stays there", []string{"region", "check", "--policy", "ear", "--primary", "eastus", "--keyvault-region", "brazilsouth"}, 0,
			"key vault (declared): primary region brazilsouth", ""},
		{"keyvault region unknown", []string{"region", "check", "--policy", "us-only", "--primary", "eastus", "--keyvault-region", "atlantis"}, 3,
			`"atlantis" (not in the catalog)`, ""},
		{"keyvault outside us-only", []string{"region", "check", "--policy", "us-only", "--primary", "eastus", "--keyvault-region", "westeurope"}, 3,
			"not-allow-listed", ""},
		{"declared secondary in another cloud", []string{"region", "check", "--policy", "us-only", "--primary", "usgovvirginia", "--secondary", "eastus"}, 3,
			"cross-cloud-replica", ""},
		{"declared not geo-replicated: said", []string{"region", "check", "--policy", "itar", "--primary", "eastus"}, 0,
			"declared as not geo-replicated", ""},
		{"unknown region: the nearest known", []string{"region", "check", "--policy", "itar", "--primary", "eastsu", "--secondary", "wset us"}, 3,
			"eastsu is not in the catalog; did you mean eastus?\nwsetus is not in the catalog; did you mean westus?\n", ""},
		{"unknown region, nothing near", []string{"region", "check", "--policy", "itar", "--primary", "atlantis"}, 3, "", ""},
		{"unknown policy: the nearest known", []string{"region", "check", "--policy", "itr", "--primary", "eastus"}, 1, "", "did you mean itar?"},
		{"list", []string{"region", "list"}, 0, "southeastasia", ""},
		{"list marks unconfirmed", []string{"region", "list"}, 0, "restricted,unconfirmed", ""},
		{"list policy", []string{"region", "list", "--policy", "ear"}, 0, "EAR ALONE", ""},
		{"list unknown policy", []string{"region", "list", "--policy", "nope"}, 1, "", "unknown policy"},
		{"list malformed override", []string{"region", "list", "--override", bad}, 1, "", "ISO 3166"},
		{"help", []string{"help"}, 0, "region", ""},
		{"help region", []string{"help", "region"}, 0, "geoseal region check --policy NAME --primary REGION", ""},
		{"region help", []string{"region", "help"}, 0, "Exit status (check): 0 allowed, 3 refused", ""},
		{"no command", nil, 1, "", "Usage"},
		{"unknown command", []string{"frobnicate"}, 1, "", "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d; want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

// TestPutUnknownRegion: a mistyped region in put is refused before any
// request, with the region meant.
func TestPutUnknownRegion(t *testing.T) {
	k := filepath.Join(t.TempDir(), "k")
	if code, _, stderr := runCLI(t, "keygen", "--out", k); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := runCLI(t, "put", k, "http://127.0.0.1:1/devstoreaccount1/c/b?sig=x", "--key-file", k, "--policy", "itar", "--primary", "eastsu")
	if code != 3 || stderr != "geoseal put: nothing was sent: policy itar refuses primary region eastsu: not in the region catalog; did you mean eastus?\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestRegionCheckJSON pins the JSON shape scripts rely on.
func TestRegionCheckJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "region", "check", "--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia", "--json")
	if code != 3 {
		t.Fatalf("exit %d; stderr %s", code, stderr)
	}
	var got struct {
		Allowed        bool   `json:"allowed"`
		Policy         string `json:"policy"`
		PolicyCitation string `json:"policy_citation"`
		Location       struct {
			Primary, Secondary string
			GeoReplicated      bool `json:"geo_replicated"`
			Source             string
		} `json:"location"`
		Primary, Secondary struct {
			Role, Region, Country, Rule, Citation, Reason string
			TreatedAs                                     string `json:"treated_as"`
			CountryName                                   string `json:"country_name"`
			Known, Allowed                                bool
		}
		Rule, Citation, Reason, Message string
		CatalogAsOf                     string `json:"catalog_as_of"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"allowed", "policy", "policy_citation", "location", "primary", "secondary", "rule", "citation", "reason", "message", "catalog_as_of", "policy_as_of"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.Allowed || got.Policy != "itar" || got.PolicyCitation != "22 CFR 120.54(a)(5)(iv)" ||
		got.Location.Primary != "southeastasia" || got.Location.Secondary != "eastasia" || !got.Location.GeoReplicated || got.Location.Source != "static" ||
		got.Primary.Role != "primary" || got.Primary.Country != "SG" || !got.Primary.Allowed ||
		got.Secondary.Role != "secondary" || got.Secondary.Country != "HK" || got.Secondary.TreatedAs != "CN" || got.Secondary.Allowed ||
		got.Secondary.Rule != "denied-country" || got.Secondary.Citation != "22 CFR 126.1(d)(1)" ||
		got.Rule != "denied-country" || got.Citation != "22 CFR 126.1(d)(1)" || !strings.HasPrefix(got.Message, "region: refused: secondary region eastasia") {
		t.Errorf("unexpected JSON: %s", stdout)
	}

	// Allowed and not geo-replicated: no "secondary" key.
	code, stdout, _ = runCLI(t, "region", "check", "--policy", "us-only", "--primary", "eastus", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	raw = nil
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["secondary"]; ok {
		t.Errorf("secondary present for an LRS location: %s", stdout)
	}
	if string(raw["allowed"]) != "true" {
		t.Errorf("allowed = %s", raw["allowed"])
	}
}

func TestRegionListJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "region", "list", "--policy", "itar", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		AsOf    string `json:"as_of"`
		Policy  string `json:"policy"`
		Regions []struct {
			Name, Country, Cloud, Pair string
			Verdict                    *struct {
				Allowed bool
				Rule    string
			} `json:"verdict"`
			WithPair *struct {
				Allowed bool
				Rule    string
			} `json:"verdict_with_pair"`
		} `json:"regions"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Policy != "itar" || out.AsOf == "" || len(out.Regions) < 80 {
		t.Fatalf("list JSON: policy %q as_of %q %d regions", out.Policy, out.AsOf, len(out.Regions))
	}
	found := 0
	for _, r := range out.Regions {
		switch r.Name {
		case "southeastasia":
			found++
			if !r.Verdict.Allowed || r.WithPair.Allowed || r.Pair != "eastasia" {
				t.Errorf("southeastasia: %+v %+v %+v", r, r.Verdict, r.WithPair)
			}
		case "chinanorth3":
			found++
			if r.Verdict.Allowed || r.Cloud != "AzureChinaCloud" {
				t.Errorf("chinanorth3: %+v", r)
			}
		case "mexicocentral":
			found++
			if !r.Verdict.Allowed || r.WithPair.Allowed || r.WithPair.Rule != "unknown-secondary" {
				t.Errorf("mexicocentral: %+v", r.WithPair)
			}
		}
	}
	if found != 3 {
		t.Errorf("found %d of 3 spot-check regions", found)
	}
	// Unconfirmed entries are marked in JSON too.
	_, stdout, _ = runCLI(t, "region", "list", "--json")
	var marks struct {
		Regions []struct {
			Name          string
			Unconfirmed   bool `json:"unconfirmed"`
			PairConfirmed bool `json:"pair_confirmed"`
		} `json:"regions"`
	}
	if err := json.Unmarshal([]byte(stdout), &marks); err != nil {
		t.Fatal(err)
	}
	for _, r := range marks.Regions {
		switch r.Name {
		case "taiwannorth", "israelnorthwest", "eastusstg":
			if !r.Unconfirmed {
				t.Errorf("%s not marked unconfirmed", r.Name)
			}
		case "eastus", "indiasouthcentral":
			if r.Unconfirmed || !r.PairConfirmed {
				t.Errorf("%s: %+v", r.Name, r)
			}
		}
	}
	// Without --policy there are no verdicts.
	_, stdout, _ = runCLI(t, "region", "list", "--json")
	if strings.Contains(stdout, `"verdict"`) {
		t.Error("verdicts printed without --policy")
	}
}
