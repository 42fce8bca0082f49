package region

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
)

// FuzzARMStrings feeds the strings geoseal takes from ARM or users and
// parses itself: blob endpoint URLs, key URLs and resource ids. None may
// panic, and what comes out must be what the guard relies on.
func FuzzARMStrings(f *testing.F) {
	for _, s := range []string{
		"https://acct.blob.core.windows.net/", "https://acct-secondary.blob.core.usgovcloudapi.net:443/x", "acct.blob.core.windows.net",
		"https://[::1]:10000/", "https://kv.vault.azure.net/keys/k/0123", "https://h.managedhsm.azure.net/keys/k",
		accountID("rg", "acct"), "/subscriptions//resourceGroups/x", "", "://", "https://", "HTTPS://A.B/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, h := range blobEndpoints(&armstorage.Endpoints{Blob: &s}) {
			if h == "" || h != strings.ToLower(h) || strings.Contains(h, "/") {
				t.Fatalf("blobEndpoints(%q) gave host %q", s, h)
			}
		}
		if host, _, err := keyVaultHost(s); err == nil && (host == "" || !strings.HasPrefix(strings.ToLower(s), "https://")) {
			t.Fatalf("keyVaultHost(%q) = %q without error", s, host)
		}
		name, group := accountName(s)
		if name == "" || group == "" {
			t.Fatalf("accountName(%q) = %q, %q", s, name, group)
		}
		_ = sameAccount(s, accountID("rg", "acct"), "acct")
		_ = normID(s)
	})
}
