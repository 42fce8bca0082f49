package region

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
)

func TestCheckURL(t *testing.T) {
	itar, _ := LoadPolicy("itar")
	usOnly, _ := LoadPolicy("us-only")
	armLRS := func(t *testing.T, region, blobURL string) Resolver {
		f := newFakeARM()
		f.addAccount("acct", region, "", armstorage.SKUNameStandardLRS)
		f.edit("acct", func(a *armstorage.Account) { a.Properties.PrimaryEndpoints.Blob = &blobURL })
		return f.resolver(t, "acct", 0)
	}
	for _, tc := range []struct {
		name      string
		policy    *Policy
		resolver  func(t *testing.T) Resolver
		endpoint  string
		allowed   bool
		rule      Rule
		wantCloud string
	}{
		{"public endpoint, public region", itar, func(*testing.T) Resolver { return Static("eastus", "westus") },
			"https://acct.blob.core.windows.net/", true, RuleAllowedCountry, "AzureCloud"},
		{"gov endpoint, gov region", usOnly, func(*testing.T) Resolver { return Static("usgovvirginia", "usgovtexas") },
			"https://acct.blob.core.usgovcloudapi.net", true, RuleAllowListed, "AzureUSGovernment"},
		{"gov endpoint via ARM", itar, func(t *testing.T) Resolver {
			return armLRS(t, "usgovarizona", "https://acct.blob.core.usgovcloudapi.net/")
		},
			"https://acct.blob.core.usgovcloudapi.net/c/b", true, RuleAllowedCountry, "AzureUSGovernment"},
		{"public endpoint, gov region: contradiction", itar, func(*testing.T) Resolver { return Static("usgovvirginia", "") },
			"https://acct.blob.core.windows.net", false, RuleCloudMismatch, "AzureCloud"},
		{"gov endpoint, secondary in public cloud", itar, func(*testing.T) Resolver { return Static("usgovvirginia", "eastus") },
			"https://acct.blob.core.usgovcloudapi.net", false, RuleCrossCloud, "AzureUSGovernment"},
		{"china endpoint, china region: country refusal first", itar, func(*testing.T) Resolver { return Static("chinaeast2", "") },
			"https://acct.blob.core.chinacloudapi.cn", false, RuleDeniedCountry, "AzureChinaCloud"},
		{"china endpoint, declared public region", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"https://acct.blob.core.chinacloudapi.cn", false, RuleCloudMismatch, "AzureChinaCloud"},
		{"azurite 127.0.0.1 with Static", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"http://127.0.0.1:10000/devstoreaccount1", true, RuleAllowedCountry, EndpointLoopback},
		{"azurite localhost with Static", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"http://localhost:10000/devstoreaccount1", true, RuleAllowedCountry, EndpointLoopback},
		{"azurite [::1] with Static", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"http://[::1]:10000/devstoreaccount1", true, RuleAllowedCountry, EndpointLoopback},
		{"azurite with Static still checks the declared regions", itar, func(*testing.T) Resolver { return Static("southeastasia", "eastasia") },
			"http://127.0.0.1:10000/devstoreaccount1", false, RuleDeniedCountry, EndpointLoopback},
		{"loopback with ARM", itar, func(t *testing.T) Resolver { return armLRS(t, "eastus", acctURL) },
			"http://127.0.0.1:10000/devstoreaccount1", false, RuleEmulator, EndpointLoopback},
		{"unknown host", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"https://storage.example.com/", false, RuleCloudMismatch, ""},
		{"lookalike host", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"https://acct.blob.core.windows.net.example.com/", false, RuleCloudMismatch, ""},
		{"non-loopback IP", itar, func(*testing.T) Resolver { return Static("eastus", "") },
			"http://10.0.0.5:10000/devstoreaccount1", false, RuleCloudMismatch, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGuard(tc.policy, tc.resolver(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := g.CheckURL(t.Context(), tc.endpoint)
			checkDecision(t, tc.name, d, err, tc.allowed)
			if d.Rule != tc.rule || d.EndpointCloud != tc.wantCloud {
				t.Errorf("rule %s cloud %q; want %s %q (%v)", d.Rule, d.EndpointCloud, tc.rule, tc.wantCloud, err)
			}
		})
	}
	g, _ := NewGuard(itar, Static("eastus", ""), nil)
	if _, err := g.CheckURL(t.Context(), "not a url"); err == nil || errors.As(err, new(*Violation)) {
		t.Errorf("bad URL: err = %v; want a plain error", err)
	}
}

func TestNewGuardRefusesWeakPolicies(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Policy
	}{
		{"nil", nil},
		{"zero policy", &Policy{}},
		{"no rules", &Policy{Name: "x", Citation: "c"}},
		{"bad country", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "RUS", Effective: "2020-01-01", Citation: "c"}}}},
		{"lower-case country", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "ru", Effective: "2020-01-01", Citation: "c"}}}},
		{"bad date", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "RU", Effective: "2020-13-01", Citation: "c"}}}},
		{"no citation", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "RU", Effective: "2020-01-01"}}}},
		{"duplicate", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "RU", Effective: "2020-01-01", Citation: "c"}, {Country: "RU", Effective: "2020-01-01", Citation: "c"}}}},
		{"alias chain", &Policy{Name: "x", Citation: "c", DenyCountries: []CountryRule{{Country: "RU", Effective: "2020-01-01", Citation: "c"}},
			TreatAs: []CountryAlias{{Country: "HK", As: "MO", Effective: "2020-01-01", Citation: "c"}, {Country: "MO", As: "CN", Effective: "2020-01-01", Citation: "c"}}}},
		{"region rule without reason", &Policy{Name: "x", Citation: "c", DenyRegions: []RegionRule{{Region: "eastasia", Citation: "c"}}}},
	} {
		if _, err := NewGuard(tc.p, Static("eastus", ""), nil); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%s: NewGuard err = %v; want ErrInvalidPolicy", tc.name, err)
		}
	}
	p, _ := LoadPolicy("itar")
	if _, err := NewGuard(p, nil, nil); err == nil {
		t.Error("nil resolver accepted")
	}
}

func TestGuardCopiesPolicy(t *testing.T) {
	p, _ := LoadPolicy("itar")
	g, _ := NewGuard(p, Static("eastasia", ""), nil)
	p.DenyCountries = nil
	p.TreatAs = nil
	if d, err := g.Check(t.Context()); err == nil || d.Allowed {
		t.Fatal("changing the policy after NewGuard weakened the guard")
	}
}

func TestCustomPolicyInCode(t *testing.T) {
	p := &Policy{
		Name: "acme-eu", Authority: "Acme", Citation: "Acme data policy 7",
		AllowCountries: []CountryRule{{Country: "DE", Name: "Germany", Effective: "2026-01-01", Citation: "Acme 7.1"}, {Country: "FR", Name: "France", Effective: "2026-01-01", Citation: "Acme 7.1"}},
		AllowRegions:   []RegionRule{{Region: "northeurope", Reason: "legacy archive", Citation: "Acme 7.3"}},
		DenyRegions:    []RegionRule{{Region: "francesouth", Reason: "no DR site in Marseille", Citation: "Acme 7.4"}},
	}
	for _, tc := range []struct {
		primary, secondary string
		allowed            bool
		rule               Rule
	}{
		{"germanywestcentral", "germanynorth", true, RuleAllowListed},
		{"northeurope", "", true, RuleAllowListed},
		{"northeurope", "westeurope", false, RuleNotAllowListed},
		{"francecentral", "francesouth", false, RuleDeniedRegion},
		{"eastus", "", false, RuleNotAllowListed},
	} {
		g, err := NewGuard(p, Static(tc.primary, tc.secondary), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := g.Check(t.Context())
		checkDecision(t, tc.primary+"+"+tc.secondary, d, err, tc.allowed)
		if d.Rule != tc.rule {
			t.Errorf("%s+%s: rule %s; want %s", tc.primary, tc.secondary, d.Rule, tc.rule)
		}
	}
}

func TestUnrestricted(t *testing.T) {
	p := Unrestricted()
	if !strings.Contains(p.Name, "NOT for export-controlled data") || !p.IsUnrestricted() {
		t.Fatalf("Unrestricted name %q does not warn", p.Name)
	}
	for _, loc := range []Location{{Primary: "chinanorth3"}, {Primary: "atlantis"}, {Primary: "mexicocentral", GeoReplicated: true}} {
		g, _ := NewGuard(p, Static("eastus", ""), nil)
		d, err := g.Decide(loc)
		if err != nil || !d.Allowed || d.Rule != RuleUnrestricted {
			t.Errorf("Unrestricted %+v: %+v, %v", loc, d, err)
		}
	}
	g, _ := NewGuard(p, Static("usgovvirginia", ""), nil)
	if _, err := g.CheckURL(t.Context(), "https://a.blob.core.windows.net"); !errors.As(err, new(*Violation)) {
		t.Errorf("Unrestricted skipped the cloud check: %v", err)
	}
}

func TestDecisionLogAndJSON(t *testing.T) {
	var buf bytes.Buffer
	p, _ := LoadPolicy("ear")
	g, _ := NewGuard(p, Static("southeastasia", "eastasia"), &GuardOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	d, _ := g.Check(t.Context())
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log record: %v: %s", err, buf.Bytes())
	}
	if rec["level"] != "WARN" || rec["allowed"] != false || rec["secondary"] != "eastasia" || rec["rule"] != string(RuleDeniedCountry) {
		t.Errorf("log record %v", rec)
	}
	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	_ = json.Unmarshal(js, &back)
	for _, k := range []string{"allowed", "policy", "policy_citation", "location", "primary", "secondary", "rule", "citation", "reason", "catalog_as_of"} {
		if _, ok := back[k]; !ok {
			t.Errorf("decision JSON lacks %q: %s", k, js)
		}
	}
}

// TestDeclaredLocations covers what Decide and a Static guard say about
// declared locations: impossible topologies, inferred secondaries, the
// not-geo-replicated note and declared key vaults.
func TestDeclaredLocations(t *testing.T) {
	itar, _ := LoadPolicy("itar")
	usOnly, _ := LoadPolicy("us-only")
	for _, tc := range []struct {
		name    string
		policy  *Policy
		loc     Location
		keys    []Resolver
		allowed bool
		rule    Rule
		text    string
	}{
		{"secondary in another cloud", usOnly, Location{Primary: "usgovvirginia", Secondary: "eastus", GeoReplicated: true, Source: SourceStatic},
			nil, false, RuleCrossCloud, "geo-replication never crosses clouds"},
		{"secondary in China for a public primary", itar, Location{Primary: "eastus", Secondary: "chinanorth", GeoReplicated: true, Source: SourceStatic},
			nil, false, RuleDeniedCountry, "chinanorth"},
		{"not geo-replicated: the decision says so", itar, Location{Primary: "eastus", Source: SourceStatic},
			nil, true, RuleAllowedCountry, "declared as not geo-replicated (region.Static(primary, \"\")); if it is GRS, RA-GRS, GZRS or RA-GZRS, declare its secondary"},
		{"not geo-replicated and refused: still said", itar, Location{Primary: "chinaeast", Source: SourceStatic},
			nil, false, RuleDeniedCountry, "--arm-account"},
		{"inferred secondary, confirmed pair", usOnly, Location{Primary: "usgovtexas", GeoReplicated: true, Source: SourceStatic},
			nil, true, RuleAllowListed, "(inferred: no secondary was reported, so the catalog pair of usgovtexas was assumed)"},
		{"inferred secondary, unconfirmed pair", itar, Location{Primary: "jioindiacentral", GeoReplicated: true, Source: SourceStatic},
			nil, false, RuleInferredSecondary, "\"pair_confirmed\": true"},
		{"inferred secondary, unconfirmed pair, unrestricted", Unrestricted(), Location{Primary: "jioindiacentral", GeoReplicated: true, Source: SourceStatic},
			nil, true, RuleUnrestricted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGuard(tc.policy, Static("eastus", ""), &GuardOptions{KeyVaults: tc.keys})
			if err != nil {
				t.Fatal(err)
			}
			d, err := g.Decide(tc.loc)
			checkDecision(t, tc.name, d, err, tc.allowed)
			text := d.Reason
			if err != nil {
				text = err.Error()
			}
			if d.Rule != tc.rule || !strings.Contains(text, tc.text) {
				t.Errorf("rule %s, text %q; want %s and %q", d.Rule, text, tc.rule, tc.text)
			}
		})
	}

	// A declared key vault: its pair counts (Key Vault replicates there).
	for _, tc := range []struct {
		vault   string
		allowed bool
		rule    Rule
	}{
		{"eastus", true, RuleAllowedCountry},
		{"southeastasia", false, RuleDeniedCountry}, // replicated to eastasia (Hong Kong)
		{"westus3", true, RuleAllowedCountry},       // not replicated across regions
		{"atlantis", false, RuleUnknownRegion},
	} {
		g, _ := NewGuard(itar, Static("eastus", ""), &GuardOptions{KeyVaults: []Resolver{StaticKeyVault(tc.vault)}})
		d, err := g.Check(t.Context())
		checkDecision(t, "key vault "+tc.vault, d, err, tc.allowed)
		if !tc.allowed && d.Rule != tc.rule {
			t.Errorf("key vault %s: rule %s; want %s", tc.vault, d.Rule, tc.rule)
		}
		if tc.vault == "southeastasia" && !strings.Contains(err.Error(), "(inferred: Key Vault replicates a vault to its region's pair, and the catalog pairs southeastasia with eastasia)") {
			t.Errorf("key vault %s: the refusal does not say why eastasia counts: %v", tc.vault, err)
		}
		if len(d.KeyLocations) != 1 || len(d.Copies) == 0 || d.Copies[0].Holder != "key vault (declared)" {
			t.Errorf("key vault %s: key locations %+v copies %+v", tc.vault, d.KeyLocations, d.Copies)
		}
	}
	if _, err := NewGuard(itar, Static("eastus", ""), &GuardOptions{KeyVaults: []Resolver{nil}}); err == nil {
		t.Error("nil key vault resolver accepted")
	}
}

// emptyResolver answers with an empty location and no error: a broken
// resolver of the caller's own.
type emptyResolver struct{}

func (emptyResolver) Resolve(context.Context) (Location, error) { return Location{}, nil }

func TestEmptyKeyLocationIsRefused(t *testing.T) {
	itar, _ := LoadPolicy("itar")
	g, _ := NewGuard(itar, Static("eastus", ""), &GuardOptions{KeyVaults: []Resolver{emptyResolver{}}})
	d, err := g.Check(t.Context())
	checkDecision(t, "empty key location", d, err, false)
	if d.Rule != RuleUnresolved || !strings.Contains(err.Error(), "the resolver reported no region") {
		t.Fatalf("rule %s: %v", d.Rule, err)
	}
}

// TestAccountName pins the names the cross-tenant advice pastes into an
// az command: those of the storage account a resource id names, quoted
// when a shell would split them, and placeholders for what it does not
// name.
func TestAccountName(t *testing.T) {
	for _, tc := range []struct{ id, name, group string }{
		{accountID("rg", "acct"), "acct", "rg"},
		{accountID("my-rg", "dst") + "/blobServices/default", "dst", "my-rg"},
		{"/subscriptions/s/resourceGroups/r g/providers/Microsoft.Storage/storageAccounts/a;b", `"a;b"`, `"r g"`},
		{"/subscriptions/s/resourceGroups/rg", "ACCOUNT", "rg"},
		{"acct", "ACCOUNT", "RESOURCE-GROUP"},
		{"", "ACCOUNT", "RESOURCE-GROUP"},
	} {
		if name, group := accountName(tc.id); name != tc.name || group != tc.group {
			t.Errorf("accountName(%q) = %s, %s; want %s, %s", tc.id, name, group, tc.name, tc.group)
		}
	}
}
