package main

// In-process tests: help completeness, progress output, and the Key Vault
// flags against internal/kvtest (whose credential and TLS certificate a
// separate process could not use).

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

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

// testEnv is an environment for in-process runs: no stdin, captured
// stdout and stderr, only the variables a test sets, no Azure credential
// unless a test gives one, immediate progress reports.
type testEnv struct {
	environment
	vars           map[string]string
	stdout, stderr bytes.Buffer
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{vars: map[string]string{}}
	e.environment = environment{
		stdin:  strings.NewReader(""),
		getenv: func(k string) string { return e.vars[k] },
		credential: func() (azcore.TokenCredential, error) {
			return nil, errors.New("no Azure credential in this test")
		},
		progress: defaultProgressTiming,
		terminal: func(io.Writer) bool { return false },
	}
	e.environment.stdout, e.environment.stderr = &e.stdout, &e.stderr
	return e
}

// run runs geoseal in-process and returns exit code, stdout and stderr.
func (e *testEnv) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	e.stdout.Reset()
	e.stderr.Reset()
	code := run(context.Background(), &e.environment, args)
	return code, e.stdout.String(), e.stderr.String()
}

// runCLI runs geoseal in-process in a fresh test environment.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return newTestEnv(t).run(t, args...)
}

// eachCommand calls f for every runnable command of the table, with its
// path ("region check").
func eachCommand(f func(path string, c command)) {
	var walk func(prefix string, cs []command)
	walk = func(prefix string, cs []command) {
		for _, c := range cs {
			path := strings.TrimSpace(prefix + " " + c.name)
			if c.new != nil {
				f(path, c)
			}
			walk(path, c.subcommands)
		}
	}
	walk("", commands)
}

// definedFlags lists the flags c defines, those every command takes
// included.
func definedFlags(c command) []string {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.new().flags(fs)
	new(commonFlags).register(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// TestHelpDocumentsEveryFlag checks that each command's help, requested
// with --help or `geoseal help`, goes to stdout, exits 0 and names every
// flag the command defines.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	eachCommand(func(path string, c command) {
		t.Run(path, func(t *testing.T) {
			args := append(strings.Fields(path), "--help")
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 || stderr != "" {
				t.Errorf("%s --help: exit %d, stderr %q", path, code, stderr)
			}
			for _, f := range definedFlags(c) {
				if !strings.Contains(stdout, "--"+f+" ") && !strings.Contains(stdout, "--"+f+"\n") &&
					!strings.Contains(stdout, "--"+f+",") {
					t.Errorf("help of %s does not document --%s", path, f)
				}
			}
			for _, section := range []string{"Usage:", "Exit status"} {
				if !strings.Contains(stdout, section) {
					t.Errorf("help of %s lacks %q", path, section)
				}
			}
			// `geoseal help NAME` and -h print the same.
			for _, alt := range [][]string{append([]string{"help"}, strings.Fields(path)...), append(strings.Fields(path), "-h")} {
				if code, out, _ := runCLI(t, alt...); code != 0 || out != stdout {
					t.Errorf("%v differs from %s --help", alt, path)
				}
			}
		})
	})
	// The top-level help lists every command, on stdout.
	code, stdout, _ := runCLI(t, "--help")
	if code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(stdout, "\t"+c.name+" ") {
			t.Errorf("geoseal --help does not list %s", c.name)
		}
	}
}

// useKeyVaultTestServer points the --keyvault flags of e at kv.
func useKeyVaultTestServer(e *testEnv, kv *kvtest.Server) {
	e.credential = func() (azcore.TokenCredential, error) { return kv.Credential(), nil }
	e.keyVault = kv.ClientOptions()
}

func TestKeyVaultFlags(t *testing.T) {
	kv := kvtest.NewServer(t)
	kv.CreateRSAKey("cli", 2048)
	e := newTestEnv(t)
	useKeyVaultTestServer(e, kv)
	runCLI := e.run
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
	if code, _, stderr := runCLI(t, "decrypt", "--in", obj, "--out", out+"2", "--keyvault", kv.KeyURL("nope")); code != 1 || !strings.Contains(errorLine(t, stderr), "404 KeyNotFound") {
		t.Errorf("missing key: exit %d, stderr %q", code, stderr)
	}

	// GEOSEAL_KEYVAULT and GEOSEAL_KEY_FILE stand in for the key flags when
	// none is given: both wrap, either opens; a key flag replaces both.
	e.vars[envKeyVault], e.vars[envKeyFile] = kv.KeyURL("cli"), local
	envObj := filepath.Join(dir, "env.obj")
	if code, _, stderr := runCLI(t, "encrypt", "--in", in, "--out", envObj); code != 0 {
		t.Fatal(stderr)
	}
	if _, stdout, _ := runCLI(t, "inspect", "--in", envObj); !strings.Contains(stdout, "azure-keyvault") || !strings.Contains(stdout, "local-aes") {
		t.Errorf("GEOSEAL_KEYVAULT and GEOSEAL_KEY_FILE: inspect:\n%s", stdout)
	}
	delete(e.vars, envKeyFile)
	kv.ResetCounts()
	os.Remove(out)
	if code, _, stderr := runCLI(t, "decrypt", "--in", envObj, "--out", out); code != 0 || kv.Counts().UnwrapKey != 1 {
		t.Errorf("decrypt with GEOSEAL_KEYVAULT: exit %d, %d unwraps, %s", code, kv.Counts().UnwrapKey, stderr)
	}
	kv.ResetCounts()
	os.Remove(out)
	if code, _, stderr := runCLI(t, "decrypt", "--in", envObj, "--out", out, "--key-file", local); code != 0 || kv.Counts().UnwrapKey != 0 {
		t.Errorf("--key-file over GEOSEAL_KEYVAULT: exit %d, %d unwraps, %s", code, kv.Counts().UnwrapKey, stderr)
	}
	delete(e.vars, envKeyVault)

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
	e := newTestEnv(t)
	runCLI := e.run
	e.credential = func() (azcore.TokenCredential, error) { return &azfake.TokenCredential{}, nil }
	e.arm = &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: transportFunc(func(req *http.Request) (*http.Response, error) {
			if strings.Contains(strings.ToLower(req.URL.Path), "/providers/microsoft.keyvault/") {
				return keyvault.Do(req)
			}
			return storage.Do(req)
		}),
		Retry: policy.RetryOptions{MaxRetries: -1},
	}}

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
	if code != exitRefused || !strings.Contains(errorLine(t, stderr), `policy itar refuses key vault "kv1": secondary region eastasia (Hong Kong SAR, counted as CN): denied-country`) {
		t.Errorf("key vault in southeastasia: exit %d, stderr %q", code, stderr)
	}
	// --verbose adds the guard's full explanation.
	code, _, stderr = runCLI(t, append(withKV, "--verbose")...)
	if code != exitRefused || !strings.Contains(stderr, `key vault "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1": secondary region eastasia`) {
		t.Errorf("key vault in southeastasia, --verbose: exit %d, stderr %q", code, stderr)
	}
	// A declared vault region replaces the lookup, like --primary.
	code, _, stderr = runCLI(t, append(withKV, "--keyvault-region", "southeastasia")...)
	if code != exitRefused || !strings.Contains(errorLine(t, stderr), "key vault (declared): secondary region eastasia") {
		t.Errorf("--keyvault-region southeastasia: exit %d, stderr %q", code, stderr)
	}
	primary, secondary, sku = "southeastasia", "eastasia", armstorage.SKUNameStandardRAGRS
	// An account ARM does not know: an error, not a decision.
	code, _, stderr = runCLI(t, append(put, "--arm-account", "00000000-0000-0000-0000-000000000000/rg1/nope")...)
	if code != exitFailure || !strings.Contains(stderr, "ResourceNotFound") {
		t.Errorf("unknown account: exit %d, stderr %q", code, stderr)
	}
	for _, bad := range [][]string{{"--arm-account", "sub/rg"}, {"--arm-account", "s/r/a", "--primary", "eastus"}} {
		if code, _, stderr := runCLI(t, append(put, bad...)...); code != exitFailure {
			t.Errorf("%v: exit %d, %q", bad, code, stderr)
		}
	}
}

// transportFunc is a policy.Transporter from a function.
type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(req *http.Request) (*http.Response, error) { return f(req) }
