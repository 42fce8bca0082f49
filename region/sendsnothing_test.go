package region_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// countingTransport counts the requests that reach the storage endpoint
// and answers each with a 503, so nothing is stored anywhere.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) Do(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// TestRefusalSendsNothing: with an ARM-resolved account the guard refuses
// (or allows) before the blob client sends its first request to the
// storage endpoint. The allowed case shows the counter would see a request.
func TestRefusalSendsNothing(t *testing.T) {
	for _, tc := range []struct {
		name               string
		primary, secondary string
		sku                armstorage.SKUName
		crossTenant        *bool
		wantRefused        bool
	}{
		{"GRS Singapore to Hong Kong", "southeastasia", "eastasia", armstorage.SKUNameStandardGRS, to.Ptr(false), true},
		{"cross-tenant replication allowed", "eastus", "", armstorage.SKUNameStandardLRS, nil, true},
		{"allowed: requests reach storage", "eastus", "", armstorage.SKUNameStandardLRS, to.Ptr(false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var armCalls atomic.Int32
			srv := fake.ServerFactory{
				AccountsServer: fake.AccountsServer{GetProperties: func(ctx context.Context, rg, name string, _ *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
					armCalls.Add(1)
					p := &armstorage.AccountProperties{PrimaryLocation: to.Ptr(tc.primary), AllowCrossTenantReplication: tc.crossTenant,
						PrimaryEndpoints: &armstorage.Endpoints{Blob: to.Ptr("https://acct.blob.core.windows.net/")}}
					if tc.secondary != "" {
						p.SecondaryLocation = to.Ptr(tc.secondary)
					}
					resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: armstorage.Account{
						ID:  to.Ptr("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"),
						SKU: &armstorage.SKU{Name: to.Ptr(tc.sku)}, Location: to.Ptr(tc.primary), Properties: p}}, nil)
					return
				}},
				ObjectReplicationPoliciesServer: fake.ObjectReplicationPoliciesServer{NewListPager: func(string, string, *armstorage.ObjectReplicationPoliciesClientListOptions) (resp azfake.PagerResponder[armstorage.ObjectReplicationPoliciesClientListResponse]) {
					resp.AddPage(http.StatusOK, armstorage.ObjectReplicationPoliciesClientListResponse{}, nil)
					return
				}},
			}
			co := &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerFactoryTransport(&srv), Retry: policy.RetryOptions{MaxRetries: -1}}}
			accounts, err := armstorage.NewAccountsClient("s", &azfake.TokenCredential{}, co)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := region.LoadPolicy("itar")
			g, err := region.NewGuard(p, region.ARM(accounts, "rg", "acct", &region.ARMOptions{Credential: &azfake.TokenCredential{}, ClientOptions: co}), nil)
			if err != nil {
				t.Fatal(err)
			}
			storage := &countingTransport{}
			cc, err := container.NewClientWithNoCredential("https://acct.blob.core.windows.net/c",
				&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: storage, Retry: policy.RetryOptions{MaxRetries: -1}}})
			if err != nil {
				t.Fatal(err)
			}
			kr, err := keyring.NewAES(make([]byte, 32), nil)
			if err != nil {
				t.Fatal(err)
			}
			client, err := blobstore.NewClient(cc, kr, g, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.Upload(t.Context(), "b", strings.NewReader("export-controlled"), nil)
			var v *region.Violation
			if armCalls.Load() == 0 {
				t.Fatal("the guard never asked ARM")
			}
			if tc.wantRefused {
				if !errors.As(err, &v) {
					t.Fatalf("Upload: %v; want a *region.Violation", err)
				}
				if n := storage.n.Load(); n != 0 {
					t.Fatalf("%d requests reached the storage endpoint before the refusal; want 0", n)
				}
				return
			}
			if errors.As(err, &v) || storage.n.Load() == 0 {
				t.Fatalf("allowed case: err %v, %d storage requests; want requests (and the 503 error)", err, storage.n.Load())
			}
		})
	}
}
