package region

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
)

const acctURL = "https://acct.blob.core.windows.net/"

// TestARMRules is one table over every rule the ARM resolver feeds: what
// ARM (armstorage's and armkeyvault's fake servers behind the real
// clients) reports -> allowed or refused, with the rule and its citation.
func TestARMRules(t *testing.T) {
	const (
		itarCite = "22 CFR 120.54(a)(5)(iv)"
		earCite  = "15 CFR 734.18(a)(5)(iv)"
		usCite   = "geoseal built-in policy us-only (an organisational choice, not a regulation)"
		d1Cite   = "22 CFR 126.1(d)(1)"
	)
	gov := func(f *fakeARM, name string) {
		f.edit(name, func(a *armstorage.Account) {
			a.Properties.PrimaryEndpoints.Blob = to.Ptr("https://" + name + ".blob.core.usgovcloudapi.net/")
		})
	}
	chain := func(f *fakeARM, n int, last string) {
		prev := "acct"
		for i := range n {
			name := "hop" + string(rune('a'+i))
			region := "westus2"
			if i == n-1 {
				region = last
			}
			f.addAccount(name, region, "", armstorage.SKUNameStandardLRS)
			f.replicate(prev, accountID("rg", name))
			prev = name
		}
	}
	for _, tc := range []struct {
		name     string
		policy   string
		setup    func(f *fakeARM) // adds account "acct" and whatever else
		endpoint string           // default acctURL
		keys     []string         // key URLs whose vaults are checked
		allowed  bool
		rule     Rule   // the refusal expected (or d.Rule when allowed)
		citation string // of that refusal
		text     string // in the decision's text
	}{
		{name: "RA-GRS eastus to westus", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardRAGRS) },
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: "secondary region westus is in United States"},
		{name: "ARM display-name casing", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "East US", "West US", armstorage.SKUNameStandardGRS) },
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: "westus"},
		{name: "RA-GZRS southeastasia replicates to Hong Kong", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "southeastasia", "eastasia", armstorage.SKUNameStandardRAGZRS) },
			allowed: false, rule: RuleDeniedCountry, citation: d1Cite, text: "eastasia is in Hong Kong SAR (China)"},

		// 1. The endpoint belongs to the account.
		{name: "endpoint of another account", policy: "itar", endpoint: "https://someoneelse.blob.core.windows.net/c",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardGRS) },
			allowed: false, rule: RuleForeignEndpoint, citation: itarCite, text: `endpoint host "someoneelse.blob.core.windows.net" is not one of the account`},
		{name: "the account's secondary endpoint", policy: "itar", endpoint: "https://acct-secondary.blob.core.windows.net/",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardRAGRS) },
			allowed: true, rule: RuleAllowedCountry, citation: itarCite},
		{name: "routing-preference endpoint", policy: "itar", endpoint: "https://acct-internetrouting.blob.core.windows.net/",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) {
					a.Properties.PrimaryEndpoints.InternetEndpoints = &armstorage.AccountInternetEndpoints{Blob: to.Ptr("https://acct-internetrouting.blob.core.windows.net/")}
				})
			},
			allowed: true, rule: RuleAllowedCountry, citation: itarCite},
		{name: "ARM reports no endpoints", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.PrimaryEndpoints = nil })
			},
			allowed: false, rule: RuleForeignEndpoint, citation: itarCite, text: "ARM reported no blob endpoint"},
		{name: "loopback endpoint with ARM", policy: "itar", endpoint: "http://127.0.0.1:10000/devstoreaccount1",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS) },
			allowed: false, rule: RuleEmulator, citation: itarCite},

		// 2. Failover.
		{name: "failover in progress", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardGRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.FailoverInProgress = to.Ptr(true) })
			},
			allowed: false, rule: RuleFailover, citation: itarCite, text: "FailoverInProgress"},
		{name: "geo-replication stats: secondary unavailable", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardRAGRS)
				f.edit("acct", func(a *armstorage.Account) {
					a.Properties.GeoReplicationStats = &armstorage.GeoReplicationStats{Status: to.Ptr(armstorage.GeoReplicationStatusUnavailable)}
				})
			},
			allowed: false, rule: RuleFailover, citation: earCite, text: `geo-replication status "Unavailable"`},
		{name: "geo-replication stats: live", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardRAGRS)
				f.edit("acct", func(a *armstorage.Account) {
					a.Properties.GeoReplicationStats = &armstorage.GeoReplicationStats{Status: to.Ptr(armstorage.GeoReplicationStatusLive)}
				})
			},
			allowed: true, rule: RuleAllowedCountry, citation: earCite},

		// 3. SKU conversion: the target counts.
		{name: "LRS Singapore converting to GRS replicates to Hong Kong", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "southeastasia", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) {
					a.Properties.StorageAccountSKUConversionStatus = &armstorage.AccountSKUConversionStatus{
						SKUConversionStatus: to.Ptr(armstorage.SKUConversionStatusInProgress), TargetSKUName: to.Ptr(armstorage.SKUNameStandardGRS)}
				})
			},
			allowed: false, rule: RuleDeniedCountry, citation: d1Cite, text: "inferred"},
		{name: "finished conversion is history", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "southeastasia", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) {
					a.Properties.StorageAccountSKUConversionStatus = &armstorage.AccountSKUConversionStatus{
						SKUConversionStatus: to.Ptr(armstorage.SKUConversionStatusFailed), TargetSKUName: to.Ptr(armstorage.SKUNameStandardGRS)}
				})
			},
			allowed: true, rule: RuleAllowedCountry, citation: itarCite},
		{name: "migration with no target", policy: "us-only",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.AccountMigrationInProgress = to.Ptr(true) })
			},
			allowed: false, rule: RuleConversion, citation: usCite, text: "AccountMigrationInProgress"},

		// 4. Object replication.
		{name: "replication to an account in the US", policy: "us-only",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addAccount("dst", "westus2", "westcentralus", armstorage.SKUNameStandardGRS)
				f.replicate("acct", accountID("rg", "dst"))
			},
			allowed: true, rule: RuleAllowListed, citation: "geoseal built-in policy us-only", text: `object replication destination "` + accountID("rg", "dst") + `": secondary region westcentralus`},
		{name: "replication to an account that geo-replicates to Hong Kong", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addAccount("dst", "southeastasia", "eastasia", armstorage.SKUNameStandardRAGRS)
				f.replicate("acct", accountID("rg", "dst"))
			},
			allowed: false, rule: RuleDeniedCountry, citation: d1Cite, text: `object replication destination "` + accountID("rg", "dst") + `": secondary region eastasia`},
		{name: "replication chain ends in Hong Kong", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				chain(f, 3, "eastasia")
			},
			allowed: false, rule: RuleDeniedCountry, citation: "15 CFR 740 Supp. No. 1 (Country Group D:5)", text: "primary region eastasia"},
		{name: "replication chain longer than the bound", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				chain(f, 6, "westus")
			},
			allowed: false, rule: RuleUnresolved, citation: earCite, text: "beyond 4 accounts"},
		{name: "replication cycle", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addAccount("dst", "westus", "", armstorage.SKUNameStandardLRS)
				f.replicate("acct", accountID("rg", "dst"))
				f.replicate("dst", accountID("rg", "acct"))
			},
			allowed: true, rule: RuleAllowedCountry, citation: earCite},
		{name: "inbound replication only", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.mu.Lock()
				f.policies["rg/acct"] = []*armstorage.ObjectReplicationPolicy{{Properties: &armstorage.ObjectReplicationPolicyProperties{
					SourceAccount: to.Ptr(accountID("rg", "elsewhere")), DestinationAccount: to.Ptr(accountID("rg", "acct"))}}}
				f.mu.Unlock()
			},
			allowed: true, rule: RuleAllowedCountry, citation: earCite},
		{name: "destination that ARM cannot find", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.replicate("acct", accountID("rg", "ghost"))
			},
			allowed: false, rule: RuleUnresolved, citation: itarCite, text: "could not be read from ARM (ResourceNotFound 404)"},
		{name: "destination named only by account name", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.replicate("acct", "othertenantacct")
			},
			allowed: false, rule: RuleUnresolved, citation: itarCite, text: `not named by a storage account resource id ("othertenantacct")`},
		{name: "destination with cross-tenant replication on", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addAccount("dst", "westus", "", armstorage.SKUNameStandardLRS)
				f.edit("dst", func(a *armstorage.Account) { a.Properties.AllowCrossTenantReplication = nil })
				f.replicate("acct", accountID("rg", "dst"))
			},
			allowed: false, rule: RuleCrossTenant, citation: itarCite, text: "--name dst --resource-group rg --allow-cross-tenant-replication false"},

		// 5. Cross-tenant replication, under every built-in policy.
		{name: "cross-tenant not set, ear", policy: "ear",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.AllowCrossTenantReplication = nil })
			},
			allowed: false, rule: RuleCrossTenant, citation: earCite, text: "az storage account update --name acct --resource-group rg --allow-cross-tenant-replication false"},
		{name: "cross-tenant true, itar", policy: "itar",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.AllowCrossTenantReplication = to.Ptr(true) })
			},
			allowed: false, rule: RuleCrossTenant, citation: itarCite, text: "AllowCrossTenantReplication is true"},
		{name: "cross-tenant not set, us-only", policy: "us-only",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.AllowCrossTenantReplication = nil })
			},
			allowed: false, rule: RuleCrossTenant, citation: usCite, text: "AllowCrossTenantReplication is not set"},
		{name: "cross-tenant under unrestricted", policy: "unrestricted",
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.edit("acct", func(a *armstorage.Account) { a.Properties.AllowCrossTenantReplication = to.Ptr(true) })
			},
			allowed: true, rule: RuleUnrestricted},

		// 7. Secondaries ARM does not report, and topologies that cannot exist.
		{name: "GRS without secondary: confirmed pair inferred", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardGRS) },
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: "secondary region westus is in United States (US), which policy itar does not proscribe (inferred"},
		{name: "GRS without secondary: one-way pair out of Brazil", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "brazilsouth", "", armstorage.SKUNameStandardGRS) },
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: "southcentralus"},
		{name: "GRS without secondary: unconfirmed pair refused", policy: "us-only", endpoint: "https://acct.blob.core.usgovcloudapi.net/",
			setup:   func(f *fakeARM) { f.addAccount("acct", "usdodeast", "", armstorage.SKUNameStandardGRS); gov(f, "acct") },
			allowed: false, rule: RuleInferredSecondary, citation: usCite, text: "does not confirm that pair"},
		{name: "GZRS without secondary and no pair", policy: "itar",
			setup:   func(f *fakeARM) { f.addAccount("acct", "mexicocentral", "", armstorage.SKUNameStandardGZRS) },
			allowed: false, rule: RuleUnknownSecondary, citation: itarCite, text: "Static(primary, secondary)"},
		{name: "ARM reports a secondary in another cloud", policy: "us-only",
			setup:   func(f *fakeARM) { f.addAccount("acct", "eastus", "usgovvirginia", armstorage.SKUNameStandardGRS) },
			allowed: false, rule: RuleCrossCloud, citation: usCite, text: "geo-replication never crosses clouds"},

		// 6. Where the keys live.
		{name: "key in a vault in eastus", policy: "itar", keys: []string{"https://kv1.vault.azure.net/keys/kek"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addVault("kv0", "westus")
				f.addVault("kv1", "eastus")
			},
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: `key vault "` + "/subscriptions/" + fakeSub + `/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1": secondary region westus`},
		{name: "key in a vault in Southeast Asia: its pair is Hong Kong", policy: "itar", keys: []string{"https://kv1.vault.azure.net/keys/kek/0123"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addVault("kv0", "eastus")
				f.addVault("kv1", "southeastasia")
			},
			allowed: false, rule: RuleDeniedCountry, citation: d1Cite, text: "kv1\": secondary region eastasia is in Hong Kong SAR (China)"},
		{name: "key in a Brazil South vault stays there", policy: "ear", keys: []string{"https://kv1.vault.azure.net/keys/kek"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addVault("kv1", "brazilsouth")
			},
			allowed: true, rule: RuleAllowedCountry, citation: earCite, text: "primary region brazilsouth is in Brazil"},
		{name: "key in a vault ARM does not list", policy: "itar", keys: []string{"https://nowhere.vault.azure.net/keys/kek"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addVault("kv1", "eastus")
			},
			allowed: false, rule: RuleUnresolved, citation: itarCite, text: "--keyvault-region"},
		{name: "Managed HSM extended to Hong Kong", policy: "itar", keys: []string{"https://hsm1.managedhsm.azure.net/keys/kek"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addHSM("hsm1", "southeastasia", "eastasia")
			},
			allowed: false, rule: RuleDeniedCountry, citation: d1Cite, text: "secondary region eastasia"},
		{name: "Managed HSM in Singapore, not extended", policy: "itar", keys: []string{"https://hsm1.managedhsm.azure.net/keys/kek"},
			setup: func(f *fakeARM) {
				f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
				f.addHSM("hsm1", "southeastasia")
			},
			allowed: true, rule: RuleAllowedCountry, citation: itarCite, text: "primary region southeastasia is in Singapore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeARM()
			tc.setup(f)
			var p *Policy
			if tc.policy == "unrestricted" {
				p = Unrestricted()
			} else {
				var err error
				if p, err = LoadPolicy(tc.policy); err != nil {
					t.Fatal(err)
				}
			}
			opts := &GuardOptions{}
			for _, k := range tc.keys {
				opts.KeyVaults = append(opts.KeyVaults, f.keyVault(k))
			}
			g, err := NewGuard(p, f.resolver(t, "acct", 0), opts)
			if err != nil {
				t.Fatal(err)
			}
			endpoint := tc.endpoint
			if endpoint == "" {
				endpoint = acctURL
			}
			d, err := g.CheckURL(t.Context(), endpoint)
			if d == nil {
				t.Fatalf("no decision: %v", err)
			}
			checkDecision(t, tc.name, d, err, tc.allowed)
			text := d.Reason
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tc.text) {
				t.Errorf("decision text lacks %q:\n%s", tc.text, text)
			}
			if tc.allowed {
				if d.Rule != tc.rule || (tc.citation != "" && d.Citation != tc.citation) {
					t.Errorf("allowed with rule %s (%s); want %s (%s)", d.Rule, d.Citation, tc.rule, tc.citation)
				}
				return
			}
			if !strings.HasPrefix(err.Error(), "region: refused: ") {
				t.Errorf("Violation text does not start with \"region: refused: \": %s", err)
			}
			for _, r := range d.Refusals {
				if r.Rule == tc.rule && r.Citation == tc.citation {
					return
				}
			}
			t.Errorf("no refusal with rule %s and citation %q: %+v", tc.rule, tc.citation, d.Refusals)
		})
	}
}

// TestARMNoCredential: without a credential the resolver cannot list the
// account's object replication policies, and the guard refuses rather than
// assume there are none.
func TestARMNoCredential(t *testing.T) {
	f := newFakeARM()
	f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
	client, err := armstorage.NewAccountsClient(fakeSub, &azfake.TokenCredential{}, f.options())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := LoadPolicy("itar")
	g, _ := NewGuard(p, ARM(client, "rg", "acct", nil), nil)
	d, err := g.CheckURL(t.Context(), acctURL)
	var v *Violation
	if !errors.As(err, &v) || d.Rule != RuleUnresolved || !strings.Contains(err.Error(), "ARMOptions.Credential") {
		t.Fatalf("got %v; want a refusal asking for ARMOptions.Credential", err)
	}
	if n := f.orsLists.Load(); n != 0 {
		t.Fatalf("%d policy lists without a credential", n)
	}
}

// TestARMFailoverIsNeverCached: every Resolve reads the account's
// properties, so a failover is seen on the next check; the object
// replication part is reused only while nothing about the account changed.
// Before this fix a cached answer (eastus, GRS to westus) was served for
// the whole TTL after the account had failed over.
func TestARMFailoverIsNeverCached(t *testing.T) {
	f := newFakeARM()
	f.addAccount("acct", "eastus", "westus", armstorage.SKUNameStandardRAGRS)
	f.addAccount("dst", "centralus", "", armstorage.SKUNameStandardLRS)
	f.replicate("acct", accountID("rg", "dst"))
	p, _ := LoadPolicy("us-only")
	g, _ := NewGuard(p, f.resolver(t, "acct", time.Hour), nil)
	check := func(step string, wantAllowed bool, wantPrimary string, wantLists int32) *Decision {
		t.Helper()
		d, err := g.CheckURL(t.Context(), acctURL)
		if d == nil {
			t.Fatalf("%s: %v", step, err)
		}
		if d.Allowed != wantAllowed || d.Location.Primary != wantPrimary {
			t.Fatalf("%s: allowed %v primary %s (%v); want %v %s", step, d.Allowed, d.Location.Primary, err, wantAllowed, wantPrimary)
		}
		// Each resolution lists the policies of acct and of dst.
		if n := f.orsLists.Load(); n != wantLists {
			t.Fatalf("%s: %d object replication listings; want %d", step, n, wantLists)
		}
		return d
	}
	check("first", true, "eastus", 2)
	check("unchanged: replication reused", true, "eastus", 2)

	f.edit("acct", func(a *armstorage.Account) { a.Properties.FailoverInProgress = to.Ptr(true) })
	if d := check("failing over", false, "eastus", 4); d.Rule != RuleFailover {
		t.Fatalf("failing over: rule %s; want %s", d.Rule, RuleFailover)
	}

	// Unplanned failover done: LRS in the old secondary.
	failedOver := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	f.edit("acct", func(a *armstorage.Account) {
		a.Location, a.Properties.PrimaryLocation, a.Properties.SecondaryLocation = to.Ptr("westus"), to.Ptr("westus"), nil
		a.SKU.Name = to.Ptr(armstorage.SKUNameStandardLRS)
		a.Properties.FailoverInProgress = to.Ptr(false)
		a.Properties.LastGeoFailoverTime = &failedOver
	})
	d := check("after the failover", true, "westus", 6)
	if d.Secondary != nil || d.Location.LastGeoFailoverTime != "2026-12-01T08:00:00Z" {
		t.Fatalf("after the failover: secondary %+v, last failover %q", d.Secondary, d.Location.LastGeoFailoverTime)
	}
	check("unchanged again", true, "westus", 6)

	// Another failover with the same regions: only LastGeoFailoverTime moves.
	f.edit("acct", func(a *armstorage.Account) { a.Properties.LastGeoFailoverTime = to.Ptr(failedOver.Add(time.Hour)) })
	check("LastGeoFailoverTime changed", true, "westus", 8)

	// An account ARM refuses to describe is an error, and is not cached.
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	var re *azcore.ResponseError
	if _, err := g.Check(t.Context()); !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("failing ARM: %v; want the *azcore.ResponseError (403)", err)
	}
}

func TestARMNoCache(t *testing.T) {
	f := newFakeARM()
	f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
	r := f.resolver(t, "acct", -1)
	for range 3 {
		if _, err := r.Resolve(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := f.getProps.Load(), f.orsLists.Load(); n != 3 || m != 3 {
		t.Fatalf("%d property reads and %d listings with caching disabled; want 3 and 3", n, m)
	}
}

// TestARMLocation pins the Location the resolver reports.
func TestARMLocation(t *testing.T) {
	f := newFakeARM()
	f.addAccount("acct", "brazilsouth", "southcentralus", armstorage.SKUNameStandardRAGRS)
	got, err := f.resolver(t, "acct", 0).Resolve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := Location{Primary: "brazilsouth", Secondary: "southcentralus", GeoReplicated: true, SKU: "Standard_RAGRS", Source: SourceARM,
		SecondarySource: SecondaryARM, Account: accountID("rg", "acct"),
		Endpoints:                   []string{"acct.blob.core.windows.net", "acct-secondary.blob.core.windows.net"},
		AllowCrossTenantReplication: to.Ptr(false)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Resolve = %+v\n     want %+v", got, want)
	}
	// The cost ARM's documentation states: one GetProperties, and one more
	// with geoReplicationStats for a geo-replicated account.
	if n := f.getProps.Load(); n != 2 {
		t.Fatalf("%d GetProperties for one Resolve of an RA-GRS account; want 2", n)
	}
}

// TestKeyVaultListingFails: when ARM will not list the vaults, the key's
// location is an error, never an empty location the guard could pass.
func TestKeyVaultListingFails(t *testing.T) {
	for _, keyURL := range []string{"https://kv1.vault.azure.net/keys/k", "https://hsm1.managedhsm.azure.net/keys/k"} {
		f := newFakeARM()
		f.addAccount("acct", "eastus", "", armstorage.SKUNameStandardLRS)
		f.addVault("kv1", "eastus")
		f.addHSM("hsm1", "eastus")
		f.failKV = true
		p, _ := LoadPolicy("itar")
		g, _ := NewGuard(p, f.resolver(t, "acct", 0), &GuardOptions{KeyVaults: []Resolver{f.keyVault(keyURL)}})
		d, err := g.CheckURL(t.Context(), acctURL)
		var re *azcore.ResponseError
		if d != nil || !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Errorf("%s: decision %v, err %v; want no decision and the 403", keyURL, d, err)
		}
	}
}

// TestKeyVaultARMCache: a vault's location is reused for the TTL (a vault
// cannot move), and listed anew on every Resolve with caching disabled.
func TestKeyVaultARMCache(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ttl       time.Duration
		wantLists int32
	}{
		{"default TTL", 0, 1},
		{"caching disabled", -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeARM()
			f.addVault("kv1", "eastus")
			r := KeyVaultARM(&azfake.TokenCredential{}, fakeSub, "https://kv1.vault.azure.net/keys/k", &ARMOptions{TTL: tc.ttl, ClientOptions: f.options()})
			for range 3 {
				if loc, err := r.Resolve(t.Context()); err != nil || loc.Primary != "eastus" {
					t.Fatalf("Resolve = %+v, %v", loc, err)
				}
			}
			if n := f.vaultLists.Load(); n != tc.wantLists {
				t.Fatalf("%d vault listings for 3 Resolves; want %d", n, tc.wantLists)
			}
		})
	}
}

func TestKeyVaultURLs(t *testing.T) {
	for _, bad := range []string{"http://kv.vault.azure.net/keys/k", "https://kv.example.com/keys/k", "https://kv.vault.azure.net/secrets/s", "::"} {
		if _, err := KeyVaultARM(&azfake.TokenCredential{}, fakeSub, bad, nil).Resolve(t.Context()); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// What the Key Vault keyring refuses (kvurl.Parse) is refused here too,
	// before any request.
	for _, bad := range []string{"https://kv.vault.azure.net/keys/", "https://kv.vault.azure.net/keys/k?api-version=1", "https://kv.vault.azure.net/keys/a_b"} {
		if host, _, err := keyVaultHost(bad); err == nil {
			t.Errorf("keyVaultHost(%q) = %q; want an error", bad, host)
		}
	}
	for _, tc := range []struct {
		keyURL, host string
		hsm          bool
	}{
		{"https://KV1.vault.azure.net/keys/k/0123", "kv1.vault.azure.net", false},
		{"https://kv1.vault.usgovcloudapi.net:443/keys/k", "kv1.vault.usgovcloudapi.net", false},
		{"https://hsm1.managedhsm.azure.cn/keys/k", "hsm1.managedhsm.azure.cn", true},
	} {
		if host, hsm, err := keyVaultHost(tc.keyURL); err != nil || host != tc.host || hsm != tc.hsm {
			t.Errorf("keyVaultHost(%q) = %q, %v, %v; want %q, %v", tc.keyURL, host, hsm, err, tc.host, tc.hsm)
		}
	}
	loc, err := StaticKeyVault("South East Asia").Resolve(t.Context())
	if err != nil || loc.Primary != "southeastasia" || !loc.ReplicatesToPair || loc.Source != SourceStatic {
		t.Fatalf("StaticKeyVault = %+v, %v", loc, err)
	}
	if loc, _ := StaticKeyVault("westus3").Resolve(t.Context()); loc.ReplicatesToPair {
		t.Fatal("a West US 3 vault is not replicated across regions")
	}
}

func TestIsGeoReplicatedSKU(t *testing.T) {
	local := map[armstorage.SKUName]bool{
		armstorage.SKUNameStandardLRS: true, armstorage.SKUNameStandardZRS: true,
		armstorage.SKUNamePremiumLRS: true, armstorage.SKUNamePremiumZRS: true,
		armstorage.SKUNameStandardV2LRS: true, armstorage.SKUNameStandardV2ZRS: true,
		armstorage.SKUNamePremiumV2LRS: true, armstorage.SKUNamePremiumV2ZRS: true,
	}
	for _, sku := range armstorage.PossibleSKUNameValues() {
		if got := IsGeoReplicatedSKU(string(sku)); got == local[sku] {
			t.Errorf("IsGeoReplicatedSKU(%s) = %v", sku, got)
		}
	}
	for _, sku := range []string{"", "Standard", "Standard_XRS", "Standard_RAGZRS", "StandardV2_RAGZRS"} {
		if !IsGeoReplicatedSKU(sku) {
			t.Errorf("IsGeoReplicatedSKU(%q) = false; unknown SKUs must count as geo-replicated", sku)
		}
	}
}

func TestStaticResolver(t *testing.T) {
	loc, err := Static("South East Asia", "").Resolve(t.Context())
	if err != nil || !reflect.DeepEqual(loc, Location{Primary: "southeastasia", Source: SourceStatic}) {
		t.Fatalf("Static = %+v, %v", loc, err)
	}
	loc, _ = Static("southeastasia", "eastasia").Resolve(t.Context())
	if !loc.GeoReplicated || loc.Secondary != "eastasia" || loc.SecondarySource != SecondaryDeclared {
		t.Fatalf("Static with secondary = %+v", loc)
	}
	if _, err := Static("", "").Resolve(t.Context()); err == nil {
		t.Fatal("empty primary accepted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Static("eastus", "").Resolve(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}
