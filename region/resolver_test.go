package region

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
)

// fakeAccount is what the fake ARM server answers; calls counts requests.
type fakeAccount struct {
	primary, secondary string
	sku                armstorage.SKUName
	fail               bool
	calls              atomic.Int32
}

// newFakeClient returns a real armstorage.AccountsClient whose transport is
// armstorage's fake server: the request and the response go through the
// SDK's pipeline and JSON (de)serialization, without a network.
func newFakeClient(t *testing.T, acct *fakeAccount) *armstorage.AccountsClient {
	t.Helper()
	srv := fake.AccountsServer{
		GetProperties: func(ctx context.Context, rg, name string, _ *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
			acct.calls.Add(1)
			if rg != "rg" || name != "acct" {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if acct.fail {
				errResp.SetResponseError(http.StatusForbidden, "AuthorizationFailed")
				return
			}
			a := armstorage.Account{
				Location:   to.Ptr(acct.primary),
				SKU:        &armstorage.SKU{Name: to.Ptr(acct.sku)},
				Properties: &armstorage.AccountProperties{PrimaryLocation: to.Ptr(acct.primary)},
			}
			if acct.secondary != "" {
				a.Properties.SecondaryLocation = to.Ptr(acct.secondary)
			}
			resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: a}, nil)
			return
		},
	}
	client, err := armstorage.NewAccountsClient("00000000-0000-0000-0000-000000000000", &azfake.TokenCredential{}, &arm.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: fake.NewAccountsServerTransport(&srv),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestARMResolver(t *testing.T) {
	tests := []struct {
		name              string
		acct              fakeAccount
		want              Location
		wantErr           bool
		itarAllowed       bool
		itarSecondaryRule string
	}{
		{
			name:        "brazilsouth RA-GRS, secondary from ARM",
			acct:        fakeAccount{primary: "brazilsouth", secondary: "southcentralus", sku: armstorage.SKUNameStandardRAGRS},
			want:        Location{Primary: "brazilsouth", Secondary: "southcentralus", GeoReplicated: true, SKU: "Standard_RAGRS", Source: SourceARM, SecondarySource: SecondaryARM},
			itarAllowed: true, itarSecondaryRule: RuleAllowedCountry,
		},
		{
			name:        "brazilsouth GRS, ARM omits secondary: one-way pair from the catalog",
			acct:        fakeAccount{primary: "brazilsouth", sku: armstorage.SKUNameStandardGRS},
			want:        Location{Primary: "brazilsouth", Secondary: "southcentralus", GeoReplicated: true, SKU: "Standard_GRS", Source: SourceARM, SecondarySource: SecondaryPair},
			itarAllowed: true, itarSecondaryRule: RuleAllowedCountry,
		},
		{
			name:        "southeastasia RA-GZRS replicates to Hong Kong",
			acct:        fakeAccount{primary: "southeastasia", secondary: "eastasia", sku: armstorage.SKUNameStandardRAGZRS},
			want:        Location{Primary: "southeastasia", Secondary: "eastasia", GeoReplicated: true, SKU: "Standard_RAGZRS", Source: SourceARM, SecondarySource: SecondaryARM},
			itarAllowed: false, itarSecondaryRule: RuleDeniedCountry,
		},
		{
			name:        "southeastasia StandardV2_GZRS without secondary: pair eastasia",
			acct:        fakeAccount{primary: "southeastasia", sku: armstorage.SKUNameStandardV2GZRS},
			want:        Location{Primary: "southeastasia", Secondary: "eastasia", GeoReplicated: true, SKU: "StandardV2_GZRS", Source: SourceARM, SecondarySource: SecondaryPair},
			itarAllowed: false, itarSecondaryRule: RuleDeniedCountry,
		},
		{
			name:        "mexicocentral GRS, no pair anywhere: secondary unknown",
			acct:        fakeAccount{primary: "mexicocentral", sku: armstorage.SKUNameStandardGRS},
			want:        Location{Primary: "mexicocentral", GeoReplicated: true, SKU: "Standard_GRS", Source: SourceARM},
			itarAllowed: false, itarSecondaryRule: RuleUnknownSecondary,
		},
		{
			name:        "southeastasia LRS stays in Singapore",
			acct:        fakeAccount{primary: "southeastasia", sku: armstorage.SKUNameStandardLRS},
			want:        Location{Primary: "southeastasia", SKU: "Standard_LRS", Source: SourceARM},
			itarAllowed: true,
		},
		{
			name:        "ARM display-name casing is normalized",
			acct:        fakeAccount{primary: "East US", secondary: "West US", sku: armstorage.SKUNameStandardGRS},
			want:        Location{Primary: "eastus", Secondary: "westus", GeoReplicated: true, SKU: "Standard_GRS", Source: SourceARM, SecondarySource: SecondaryARM},
			itarAllowed: true, itarSecondaryRule: RuleAllowedCountry,
		},
		{
			name:    "ARM error",
			acct:    fakeAccount{fail: true},
			wantErr: true,
		},
	}
	for i := range tests {
		tc := &tests[i]
		t.Run(tc.name, func(t *testing.T) {
			r := ARM(newFakeClient(t, &tc.acct), "rg", "acct", nil)
			got, err := r.Resolve(t.Context())
			if tc.wantErr {
				var re *azcore.ResponseError
				if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
					t.Fatalf("err = %v; want the ARM *azcore.ResponseError (403)", err)
				}
				p, _ := LoadPolicy("itar")
				g, _ := NewGuard(p, r, nil)
				if d, err := g.Check(t.Context()); d != nil || err == nil {
					t.Fatalf("Check with failing resolver = %v, %v; want nil decision and an error", d, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Resolve = %+v\n           want %+v", got, tc.want)
			}
			p, _ := LoadPolicy("itar")
			g, _ := NewGuard(p, r, nil)
			d, err := g.Check(t.Context())
			checkDecision(t, tc.name, d, err, tc.itarAllowed)
			if tc.itarSecondaryRule == "" {
				if d.Secondary != nil {
					t.Errorf("secondary verdict for a single-region SKU: %+v", d.Secondary)
				}
			} else if d.Secondary == nil || d.Secondary.Rule != tc.itarSecondaryRule {
				t.Errorf("secondary verdict %+v; want rule %s", d.Secondary, tc.itarSecondaryRule)
			}
			if tc.itarSecondaryRule == RuleUnknownSecondary && !strings.Contains(err.Error(), "Static(primary, secondary)") {
				t.Errorf("unknown-secondary refusal lacks advice: %v", err)
			}
		})
	}
}

// TestARMCacheTTL: answers are reused within the TTL and refreshed after it,
// so a failover (primary moves, account becomes LRS) is seen; errors are not
// cached. synctest's fake clock makes the TTL exact without sleeping.
func TestARMCacheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		acct := &fakeAccount{primary: "eastus", secondary: "westus", sku: armstorage.SKUNameStandardRAGRS}
		r := ARM(newFakeClient(t, acct), "rg", "acct", &ARMOptions{TTL: time.Minute})
		ctx := context.Background()
		for range 3 {
			if loc, err := r.Resolve(ctx); err != nil || loc.Primary != "eastus" {
				t.Fatalf("Resolve = %+v, %v", loc, err)
			}
		}
		if n := acct.calls.Load(); n != 1 {
			t.Fatalf("%d ARM calls within the TTL; want 1", n)
		}
		// Customer-initiated failover: westus becomes the LRS primary.
		acct.primary, acct.secondary, acct.sku = "westus", "", armstorage.SKUNameStandardLRS
		time.Sleep(59 * time.Second)
		if loc, _ := r.Resolve(ctx); loc.Primary != "eastus" {
			t.Fatalf("answer changed before the TTL: %+v", loc)
		}
		time.Sleep(2 * time.Second)
		loc, err := r.Resolve(ctx)
		if err != nil || loc.Primary != "westus" || loc.GeoReplicated {
			t.Fatalf("after TTL: %+v, %v; want westus LRS", loc, err)
		}
		if n := acct.calls.Load(); n != 2 {
			t.Fatalf("%d ARM calls; want 2", n)
		}
		// Errors are not cached.
		acct.fail = true
		time.Sleep(2 * time.Minute)
		if _, err := r.Resolve(ctx); err == nil {
			t.Fatal("want error")
		}
		acct.fail = false
		if _, err := r.Resolve(ctx); err != nil {
			t.Fatalf("error was cached: %v", err)
		}
		if n := acct.calls.Load(); n != 4 {
			t.Fatalf("%d ARM calls; want 4", n)
		}
	})
}

func TestARMNoCache(t *testing.T) {
	acct := &fakeAccount{primary: "eastus", sku: armstorage.SKUNameStandardLRS}
	r := ARM(newFakeClient(t, acct), "rg", "acct", &ARMOptions{TTL: -1})
	for range 3 {
		if _, err := r.Resolve(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := acct.calls.Load(); n != 3 {
		t.Fatalf("%d calls with caching disabled; want 3", n)
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
	if err != nil || loc != (Location{Primary: "southeastasia", Source: SourceStatic}) {
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
