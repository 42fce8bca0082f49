package region

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	kvfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
)

const fakeSub = "00000000-0000-0000-0000-000000000000"

// fakeARM is what armstorage's and armkeyvault's fake servers answer: real
// SDK clients, pipelines and JSON, no network. Accounts are keyed by
// "rg/name" (the fake servers do not see the subscription).
type fakeARM struct {
	mu       sync.Mutex
	accounts map[string]*armstorage.Account
	policies map[string][]*armstorage.ObjectReplicationPolicy
	vaults   []*armkeyvault.Vault
	hsms     []*armkeyvault.ManagedHsm
	fail     bool // GetProperties answers 403
	failKV   bool // listing vaults and HSMs answers 403

	getProps, orsLists, vaultLists atomic.Int32
}

func newFakeARM() *fakeARM {
	return &fakeARM{accounts: map[string]*armstorage.Account{}, policies: map[string][]*armstorage.ObjectReplicationPolicy{}}
}

func accountID(rg, name string) string {
	return "/subscriptions/" + fakeSub + "/resourceGroups/" + rg + "/providers/Microsoft.Storage/storageAccounts/" + name
}

// addAccount adds a healthy account in resource group "rg": cross-tenant
// replication off, its own blob endpoints, no replication policies.
func (f *fakeARM) addAccount(name, primary, secondary string, sku armstorage.SKUName) *armstorage.Account {
	a := &armstorage.Account{
		ID:       to.Ptr(accountID("rg", name)),
		Name:     to.Ptr(name),
		Location: to.Ptr(primary),
		SKU:      &armstorage.SKU{Name: to.Ptr(sku)},
		Properties: &armstorage.AccountProperties{
			PrimaryLocation:             to.Ptr(primary),
			AllowCrossTenantReplication: to.Ptr(false),
			PrimaryEndpoints:            &armstorage.Endpoints{Blob: to.Ptr("https://" + name + ".blob.core.windows.net/")},
		},
	}
	if secondary != "" {
		a.Properties.SecondaryLocation = to.Ptr(secondary)
		a.Properties.SecondaryEndpoints = &armstorage.Endpoints{Blob: to.Ptr("https://" + name + "-secondary.blob.core.windows.net/")}
	}
	f.mu.Lock()
	f.accounts["rg/"+name] = a
	f.mu.Unlock()
	return a
}

// replicate adds an object replication policy from src to the account dst
// (a resource id, or a bare name for a cross-tenant destination).
func (f *fakeARM) replicate(src, dst string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policies["rg/"+src] = append(f.policies["rg/"+src], &armstorage.ObjectReplicationPolicy{
		Name: to.Ptr("default"),
		Properties: &armstorage.ObjectReplicationPolicyProperties{
			SourceAccount:      to.Ptr(accountID("rg", src)),
			DestinationAccount: to.Ptr(dst),
		},
	})
}

func (f *fakeARM) edit(name string, change func(*armstorage.Account)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.accounts["rg/"+name])
}

// options returns client options whose transport is the fake servers.
func (f *fakeARM) options() *arm.ClientOptions {
	storage := fake.NewServerFactoryTransport(&fake.ServerFactory{
		AccountsServer: fake.AccountsServer{
			GetProperties: func(ctx context.Context, rg, name string, opts *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
				f.getProps.Add(1)
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.fail {
					errResp.SetResponseError(http.StatusForbidden, "AuthorizationFailed")
					return
				}
				a, ok := f.accounts[rg+"/"+name]
				if !ok {
					errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
					return
				}
				c := *a
				if a.Properties != nil {
					p := *a.Properties
					if opts == nil || opts.Expand == nil {
						p.GeoReplicationStats = nil // ARM sends it only when asked
					}
					c.Properties = &p
				}
				resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: c}, nil)
				return
			},
		},
		ObjectReplicationPoliciesServer: fake.ObjectReplicationPoliciesServer{
			NewListPager: func(rg, name string, _ *armstorage.ObjectReplicationPoliciesClientListOptions) (resp azfake.PagerResponder[armstorage.ObjectReplicationPoliciesClientListResponse]) {
				f.orsLists.Add(1)
				f.mu.Lock()
				defer f.mu.Unlock()
				resp.AddPage(http.StatusOK, armstorage.ObjectReplicationPoliciesClientListResponse{
					ObjectReplicationPolicies: armstorage.ObjectReplicationPolicies{Value: f.policies[rg+"/"+name]}}, nil)
				return
			},
		},
	})
	keyvault := kvfake.NewServerFactoryTransport(&kvfake.ServerFactory{
		VaultsServer: kvfake.VaultsServer{
			NewListBySubscriptionPager: func(*armkeyvault.VaultsClientListBySubscriptionOptions) (resp azfake.PagerResponder[armkeyvault.VaultsClientListBySubscriptionResponse]) {
				f.vaultLists.Add(1)
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.failKV {
					resp.AddResponseError(http.StatusForbidden, "AuthorizationFailed")
					return
				}
				// Two pages, so the resolver must follow NextLink.
				half := len(f.vaults) / 2
				resp.AddPage(http.StatusOK, armkeyvault.VaultsClientListBySubscriptionResponse{VaultListResult: armkeyvault.VaultListResult{Value: f.vaults[:half]}}, nil)
				resp.AddPage(http.StatusOK, armkeyvault.VaultsClientListBySubscriptionResponse{VaultListResult: armkeyvault.VaultListResult{Value: f.vaults[half:]}}, nil)
				return
			},
		},
		ManagedHsmsServer: kvfake.ManagedHsmsServer{
			NewListBySubscriptionPager: func(*armkeyvault.ManagedHsmsClientListBySubscriptionOptions) (resp azfake.PagerResponder[armkeyvault.ManagedHsmsClientListBySubscriptionResponse]) {
				f.vaultLists.Add(1)
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.failKV {
					resp.AddResponseError(http.StatusForbidden, "AuthorizationFailed")
					return
				}
				resp.AddPage(http.StatusOK, armkeyvault.ManagedHsmsClientListBySubscriptionResponse{ManagedHsmListResult: armkeyvault.ManagedHsmListResult{Value: f.hsms}}, nil)
				return
			},
		},
	})
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: armMux{storage: storage, keyvault: keyvault},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

// armMux sends Microsoft.KeyVault requests to armkeyvault's fake and the
// rest to armstorage's.
type armMux struct{ storage, keyvault policy.Transporter }

func (m armMux) Do(req *http.Request) (*http.Response, error) {
	if strings.Contains(strings.ToLower(req.URL.Path), "/providers/microsoft.keyvault/") {
		return m.keyvault.Do(req)
	}
	return m.storage.Do(req)
}

// resolver returns the ARM resolver for account rg/name, with a credential
// so it can list object replication policies.
func (f *fakeARM) resolver(t *testing.T, name string, ttl time.Duration) Resolver {
	t.Helper()
	co := f.options()
	client, err := armstorage.NewAccountsClient(fakeSub, &azfake.TokenCredential{}, co)
	if err != nil {
		t.Fatal(err)
	}
	return ARM(client, "rg", name, &ARMOptions{TTL: ttl, Credential: &azfake.TokenCredential{}, ClientOptions: co})
}

// keyVault returns a KeyVaultARM resolver over the fake.
func (f *fakeARM) keyVault(keyURL string) Resolver {
	return KeyVaultARM(&azfake.TokenCredential{}, fakeSub, keyURL, &ARMOptions{ClientOptions: f.options()})
}

func (f *fakeARM) addVault(name, location string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vaults = append(f.vaults, &armkeyvault.Vault{
		ID:         to.Ptr("/subscriptions/" + fakeSub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/" + name),
		Name:       to.Ptr(name),
		Location:   to.Ptr(location),
		Properties: &armkeyvault.VaultProperties{VaultURI: to.Ptr("https://" + name + ".vault.azure.net/")},
	})
}

func (f *fakeARM) addHSM(name, location string, extended ...string) {
	h := &armkeyvault.ManagedHsm{
		ID:         to.Ptr("/subscriptions/" + fakeSub + "/resourceGroups/rg/providers/Microsoft.KeyVault/managedHSMs/" + name),
		Name:       to.Ptr(name),
		Location:   to.Ptr(location),
		Properties: &armkeyvault.ManagedHsmProperties{HsmURI: to.Ptr("https://" + name + ".managedhsm.azure.net/")},
	}
	h.Properties.Regions = append(h.Properties.Regions, &armkeyvault.MHSMGeoReplicatedRegion{Name: to.Ptr(location), IsPrimary: to.Ptr(true)})
	for _, e := range extended {
		h.Properties.Regions = append(h.Properties.Regions, &armkeyvault.MHSMGeoReplicatedRegion{Name: to.Ptr(e), IsPrimary: to.Ptr(false)})
	}
	f.mu.Lock()
	f.hsms = append(f.hsms, h)
	f.mu.Unlock()
}
