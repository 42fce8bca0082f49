package main

// In-process tests: help completeness, progress output, and the Key Vault
// flags against internal/kvtest (whose credential and TLS certificate a
// separate process could not use).

import (
	"bytes"
	"context"
	"crypto/fips140"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	armfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/fake"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// TestHelpDocumentsEveryFlag runs each command with -h, collects the flags
// it defines, and checks that its help names every one of them.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	for name, c := range commands {
		if name == "region" {
			continue // its flags belong to check and list: TestRegionHelpDocumentsEveryFlag
		}
		t.Run(name, func(t *testing.T) {
			var defined []string
			onParse = func(fs *flag.FlagSet) {
				fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
			}
			defer func() { onParse = nil }()
			code, stdout, stderr := runCLI(t, name, "-h")
			if code != 0 {
				t.Errorf("%s -h: exit %d", name, code)
			}
			if len(defined) == 0 {
				t.Fatal("no flags seen")
			}
			help := stdout + stderr
			var viaHelp bytes.Buffer
			c.help(&viaHelp)
			if !strings.Contains(help, strings.TrimSpace(viaHelp.String())[:40]) {
				t.Errorf("-h does not print the help")
			}
			for _, f := range defined {
				if !strings.Contains(viaHelp.String(), "--"+f+" ") && !strings.Contains(viaHelp.String(), "--"+f+"\n") &&
					!strings.Contains(viaHelp.String(), "--"+f+",") {
					t.Errorf("help of %s does not document --%s", name, f)
				}
			}
			for _, section := range []string{"Usage:", "Exit status"} {
				if !strings.Contains(viaHelp.String(), section) {
					t.Errorf("help of %s lacks %q", name, section)
				}
			}
			// `geoseal help NAME` prints the same.
			code, stdout, _ = runCLI(t, "help", name)
			if code != 0 || stdout != viaHelp.String() {
				t.Errorf("geoseal help %s differs from the command's help", name)
			}
		})
	}
	// The top-level help lists every command.
	_, stdout, _ := runCLI(t, "--help")
	for name := range commands {
		if !strings.Contains(stdout, "\t"+name+" ") {
			t.Errorf("geoseal --help does not list %s", name)
		}
	}
}

func TestProgress(t *testing.T) {
	defer func(d, p time.Duration) { progressDelay, plainInterval = d, p }(progressDelay, plainInterval)
	progressDelay, plainInterval = 0, 0

	var buf bytes.Buffer
	p := newProgress(&buf, "encrypting x", "B", 3<<20, false)
	p.add(1 << 20)
	p.add(2 << 20)
	p.done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "geoseal: encrypting x: 1.0 MiB / 3.0 MiB") ||
		!strings.HasPrefix(lines[2], "geoseal: encrypting x done: 3.0 MiB / 3.0 MiB") || strings.Contains(buf.String(), "\r") {
		t.Errorf("plain progress:\n%s", buf.String())
	}

	// --quiet, and operations shorter than the delay, print nothing.
	buf.Reset()
	p = newProgress(&buf, "x", "B", 10, true)
	p.add(5)
	p.done()
	progressDelay = time.Hour
	p = newProgress(&buf, "x", "B", 10, false)
	p.add(5)
	p.done()
	if buf.Len() != 0 {
		t.Errorf("quiet or quick progress printed %q", buf.String())
	}

	// The terminal form redraws one line.
	progressDelay = 0
	p = newProgress(&buf, "up", "blobs", -1, false)
	p.tty = true
	p.set(3, 0)
	p.done()
	if out := buf.String(); !strings.HasPrefix(out, "\rup 3 blobs") || !strings.HasSuffix(out, "\n") {
		t.Errorf("tty progress: %q", out)
	}
}

// useKeyVaultTestServer points the --keyvault flags at kv for the test.
func useKeyVaultTestServer(t *testing.T, kv *kvtest.Server) {
	oldCred, oldOpts := azureCredential, keyVaultClientOptions
	azureCredential = func() (azcore.TokenCredential, error) { return kv.Credential(), nil }
	keyVaultClientOptions = kv.ClientOptions()
	t.Cleanup(func() { azureCredential, keyVaultClientOptions = oldCred, oldOpts })
}

func TestKeyVaultFlags(t *testing.T) {
	kv := kvtest.NewServer(t)
	kv.CreateRSAKey("cli", 2048)
	useKeyVaultTestServer(t, kv)
	dir := t.TempDir()
	plain := bytes.Repeat([]byte("key vault "), 10_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	local := filepath.Join(dir, "k")
	if code, _, stderr := runCLI(t, "keygen", "--out", local); code != 0 {
		t.Fatal(stderr)
	}
	obj, out := filepath.Join(dir, "obj"), filepath.Join(dir, "out")

	// Wrapped for the vault key and a local key (repeatable flags, Multi).
	if code, _, stderr := runCLI(t, "encrypt", "--in", in, "--out", obj, "--keyvault", kv.KeyURL("cli"), "--key-file", local); code != 0 {
		t.Fatal(stderr)
	}
	_, stdout, _ := runCLI(t, "inspect", "--in", obj)
	if !strings.Contains(stdout, "azure-keyvault") || !strings.Contains(stdout, kv.URL+"/keys/cli/") || !strings.Contains(stdout, "local-aes") {
		t.Errorf("inspect:\n%s", stdout)
	}
	kv.ResetCounts()
	if code, _, stderr := runCLI(t, "decrypt", "--in", obj, "--out", out, "--keyvault", kv.KeyURL("cli")); code != 0 {
		t.Fatal(stderr)
	}
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("Key Vault round trip differs")
	}
	if c := kv.Counts(); c.UnwrapKey != 1 {
		t.Errorf("unwrapkey calls: %d, want 1", c.UnwrapKey)
	}
	// A key the vault does not have.
	if code, _, stderr := runCLI(t, "decrypt", "--in", obj, "--out", out+"2", "--keyvault", kv.KeyURL("nope")); code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing key: exit %d, stderr %q", code, stderr)
	}

	// CSE v2 with the vault key: the versioned key id goes in the metadata.
	if fips140.Enforced() {
		code, _, stderr := runCLI(t, "encrypt", "--format", "azure-cse-v2", "--in", in, "--out", obj+".cse", "--metadata-out", obj+".json", "--keyvault", kv.KeyURL("cli"))
		if code != 1 || !strings.Contains(stderr, "not approved") {
			t.Errorf("CSE v2 encrypt in FIPS 140-only mode: exit %d, %q", code, stderr)
		}
		return
	}
	if code, _, stderr := runCLI(t, "encrypt", "--format", "azure-cse-v2", "--in", in, "--out", obj+".cse", "--metadata-out", obj+".json", "--keyvault", kv.KeyURL("cli")); code != 0 {
		t.Fatal(stderr)
	}
	md := string(readFile(t, obj+".json"))
	if !strings.Contains(md, kv.URL+"/keys/cli/") || !strings.Contains(md, "RSA-OAEP-256") {
		t.Errorf("metadata: %s", md)
	}
	kv.RotateKey("cli") // old versions keep unwrapping
	os.Remove(out)
	if code, _, stderr := runCLI(t, "decrypt", "--format", "azure-cse-v2", "--in", obj+".cse", "--metadata", obj+".json", "--out", out, "--keyvault", kv.KeyURL("cli")); code != 0 {
		t.Fatal(stderr)
	}
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("CSE v2 Key Vault round trip differs")
	}
	// Another key's name is refused before any unwrap.
	kv.CreateRSAKey("other", 2048)
	kv.ResetCounts()
	code, _, stderr := runCLI(t, "decrypt", "--format", "azure-cse-v2", "--in", obj+".cse", "--metadata", obj+".json", "--out", out+"3", "--keyvault", kv.KeyURL("other"))
	if code != 1 || !strings.Contains(stderr, "not a version of "+kv.KeyURL("other")) || kv.Counts().UnwrapKey != 0 {
		t.Errorf("other key: exit %d, %q, counts %+v", code, stderr, kv.Counts())
	}
}

// TestARMAccountFlag resolves the account's regions with ARM (armstorage's
// and armkeyvault's fake servers behind the real clients): an RA-GRS account
// in southeastasia replicates to eastasia, and put is refused before
// anything is sent; an eastus account whose --keyvault key is in a vault in
// southeastasia is refused too (the vault's pair is Hong Kong).
func TestARMAccountFlag(t *testing.T) {
	var calls atomic.Int32
	var primary, secondary = "southeastasia", "eastasia"
	sku := armstorage.SKUNameStandardRAGRS
	storage := armfake.NewServerFactoryTransport(&armfake.ServerFactory{
		AccountsServer: armfake.AccountsServer{
			GetProperties: func(ctx context.Context, rg, name string, _ *armstorage.AccountsClientGetPropertiesOptions) (resp azfake.Responder[armstorage.AccountsClientGetPropertiesResponse], errResp azfake.ErrorResponder) {
				calls.Add(1)
				if rg != "rg1" || name != "acct1" {
					errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
					return
				}
				p := &armstorage.AccountProperties{
					PrimaryLocation:             to.Ptr(primary),
					AllowCrossTenantReplication: to.Ptr(false),
					PrimaryEndpoints:            &armstorage.Endpoints{Blob: to.Ptr("https://acct1.blob.core.windows.net/")},
				}
				if secondary != "" {
					p.SecondaryLocation = to.Ptr(secondary)
				}
				resp.SetResponse(http.StatusOK, armstorage.AccountsClientGetPropertiesResponse{Account: armstorage.Account{
					ID:         to.Ptr("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/acct1"),
					Location:   to.Ptr(primary),
					SKU:        &armstorage.SKU{Name: to.Ptr(sku)},
					Properties: p,
				}}, nil)
				return
			},
		},
		ObjectReplicationPoliciesServer: armfake.ObjectReplicationPoliciesServer{
			NewListPager: func(string, string, *armstorage.ObjectReplicationPoliciesClientListOptions) (resp azfake.PagerResponder[armstorage.ObjectReplicationPoliciesClientListResponse]) {
				resp.AddPage(http.StatusOK, armstorage.ObjectReplicationPoliciesClientListResponse{}, nil)
				return
			},
		},
	})
	keyvault := kvfake.NewServerFactoryTransport(&kvfake.ServerFactory{VaultsServer: kvfake.VaultsServer{
		NewListBySubscriptionPager: func(*armkeyvault.VaultsClientListBySubscriptionOptions) (resp azfake.PagerResponder[armkeyvault.VaultsClientListBySubscriptionResponse]) {
			resp.AddPage(http.StatusOK, armkeyvault.VaultsClientListBySubscriptionResponse{VaultListResult: armkeyvault.VaultListResult{Value: []*armkeyvault.Vault{{
				ID:         to.Ptr("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1"),
				Location:   to.Ptr("southeastasia"),
				Properties: &armkeyvault.VaultProperties{VaultURI: to.Ptr("https://kv1.vault.azure.net/")},
			}}}}, nil)
			return
		},
	}})
	oldCred, oldARM := azureCredential, armClientOptions
	azureCredential = func() (azcore.TokenCredential, error) { return &azfake.TokenCredential{}, nil }
	armClientOptions = &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: transportFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(strings.ToLower(req.URL.Path), "/providers/microsoft.keyvault/") {
				return keyvault.Do(req)
			}
			return storage.Do(req)
		}),
		Retry: policy.RetryOptions{MaxRetries: -1},
	}}
	t.Cleanup(func() { azureCredential, armClientOptions = oldCred, oldARM })

	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "plain"), []byte("x"))
	key := filepath.Join(dir, "k")
	if code, _, stderr := runCLI(t, "keygen", "--out", key); code != 0 {
		t.Fatal(stderr)
	}
	put := []string{"put", "--account-url", "https://acct1.blob.core.windows.net", "--container", "c", "--in", in, "--key-file", key, "--policy", "itar"}
	code, _, stderr := runCLI(t, append(put, "--arm-account", "00000000-0000-0000-0000-000000000000/rg1/acct1")...)
	// Two reads: the properties, then the geo-replication statistics.
	if code != exitRefused || !strings.Contains(stderr, "eastasia") || !strings.Contains(stderr, "nothing was sent") || calls.Load() != 2 {
		t.Errorf("exit %d, %d ARM calls, stderr %q", code, calls.Load(), stderr)
	}
	// The account is fine, the key's vault is not: refused before the
	// keyring is even built.
	primary, secondary, sku = "eastus", "", armstorage.SKUNameStandardLRS
	withKV := []string{"put", "--account-url", "https://acct1.blob.core.windows.net", "--container", "c", "--in", in, "--policy", "itar",
		"--arm-account", "00000000-0000-0000-0000-000000000000/rg1/acct1", "--keyvault", "https://kv1.vault.azure.net/keys/kek"}
	code, _, stderr = runCLI(t, withKV...)
	if code != exitRefused || !strings.Contains(stderr, `key vault "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1": secondary region eastasia`) {
		t.Errorf("key vault in southeastasia: exit %d, stderr %q", code, stderr)
	}
	// A declared vault region replaces the lookup, like --primary.
	code, _, stderr = runCLI(t, append(withKV, "--keyvault-region", "southeastasia")...)
	if code != exitRefused || !strings.Contains(stderr, "key vault (declared): secondary region eastasia") {
		t.Errorf("--keyvault-region southeastasia: exit %d, stderr %q", code, stderr)
	}
	primary, secondary, sku = "southeastasia", "eastasia", armstorage.SKUNameStandardRAGRS
	// An account ARM does not know: an error, not a decision.
	code, _, stderr = runCLI(t, append(put, "--arm-account", "00000000-0000-0000-0000-000000000000/rg1/nope")...)
	if code != exitUsage || !strings.Contains(stderr, "ResourceNotFound") {
		t.Errorf("unknown account: exit %d, stderr %q", code, stderr)
	}
	for _, bad := range [][]string{{"--arm-account", "sub/rg"}, {"--arm-account", "s/r/a", "--primary", "eastus"}} {
		if code, _, stderr := runCLI(t, append(put, bad...)...); code != exitUsage {
			t.Errorf("%v: exit %d, %q", bad, code, stderr)
		}
	}
}

// transportFunc is a policy.Transporter from a function.
type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(req *http.Request) (*http.Response, error) { return f(req) }
