package main

// Addressing and credentials: blob URLs (host-style, path-style, with a
// SAS) parsed, and each credential source used against Azurite through the
// binary, in the order the Azure CLI tries them.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/geoseal/geoseal/internal/azurite"
)

func TestParseBlobURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want location
		err  string
	}{
		{"https://acct.blob.core.windows.net/designs/part.step", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "designs", blob: "part.step"}, ""},
		{"https://ACCT.blob.core.windows.net/designs/dir/sub/part.step", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "designs", blob: "dir/sub/part.step"}, ""},
		{"https://acct.blob.core.windows.net/designs", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "designs"}, ""},
		{"https://acct.blob.core.windows.net/designs/", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "designs"}, ""},
		{"https://acct.blob.core.windows.net", location{service: "https://acct.blob.core.windows.net", account: "acct"}, ""},
		{"https://acct.blob.core.windows.net/c/a%20b%23c", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "c", blob: "a b#c"}, ""},
		{"http://127.0.0.1:10000/devstoreaccount1/c/dir/b", location{service: "http://127.0.0.1:10000/devstoreaccount1", account: "devstoreaccount1", container: "c", blob: "dir/b"}, ""},
		{"http://localhost:10000/devstoreaccount1/c", location{service: "http://localhost:10000/devstoreaccount1", account: "devstoreaccount1", container: "c"}, ""},
		{"http://[::1]:10000/devstoreaccount1/c/b", location{service: "http://[::1]:10000/devstoreaccount1", account: "devstoreaccount1", container: "c", blob: "b"}, ""},
		{"https://acct.blob.core.windows.net/c/b?sv=2024-08-04&sr=c&sp=rl&sig=abc%2Bdef", location{service: "https://acct.blob.core.windows.net", account: "acct", container: "c", blob: "b", sas: "sv=2024-08-04&sr=c&sp=rl&sig=abc%2Bdef"}, ""},

		{"acct.blob.core.windows.net/c/b", location{}, "want https://"},
		{"ftp://acct.blob.core.windows.net/c/b", location{}, "want https://"},
		{"https:///c/b", location{}, "want https://"},
		{"http://127.0.0.1:10000", location{}, "names the account first"},
		{"https://user:pw@acct.blob.core.windows.net/c/b", location{}, "SAS query"},
		{"https://acct.blob.core.windows.net/c/a#b", location{}, "%23"},
		{"https://acct.blob.core.windows.net/c/b?comp=list", location{}, "not a SAS"},
		{"https://acct.blob.core.windows.net/c/b?snapshot=2026-01-01T00:00:00Z", location{}, "snapshots"},
		{"https://acct.blob.core.windows.net/c/b?sv=1&sig=SECRET%3D&x=%zz", location{}, "sig=REDACTED&x=%zz\": the query is malformed"},
	} {
		got, err := parseBlobURL(tc.url)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q", tc.url, err, tc.err)
		case tc.err != "" && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("%s: the error shows the signature: %v", tc.url, err)
		}
	}
}

// containerSAS returns a SAS for the container of srv with every
// permission geoseal uses.
func containerSAS(t *testing.T, srv *azurite.Server, name string) string {
	t.Helper()
	perms := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		ContainerName: name,
		Permissions:   perms.String(),
	}.SignWithSharedKey(srv.Credential())
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// newContainer creates the container name in srv.
func newContainer(t *testing.T, srv *azurite.Server, name string) *container.Client {
	t.Helper()
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return cc
}

// TestBinaryURLAddressing puts and gets blobs by URL, with each credential
// source in turn, against Azurite.
func TestBinaryURLAddressing(t *testing.T) {
	srv := azurite.ForTest(t)
	newContainer(t, srv, "urls")
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 200_000)
	in := writeFile(t, filepath.Join(dir, "part.step"), plain)
	guard := []string{"--policy", "itar", "--primary", "eastus"}
	sasQuery := containerSAS(t, srv, "urls")
	base := srv.BlobEndpoint + "/urls/"
	signature := sasSignature.FindString("?" + sasQuery)
	if !strings.HasPrefix(signature, "sig=") || len(signature) < 20 {
		t.Fatalf("no signature in the SAS %q", sasQuery)
	}
	// Nothing any command prints may hold the signature.
	noSignature := func(t *testing.T, r result) {
		t.Helper()
		if strings.Contains(r.stdout+r.stderr, signature[4:]) {
			t.Errorf("the SAS signature was printed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
	}

	// A SAS in the URL, nothing in the environment.
	r := geoseal(t, nil, nil, append([]string{"put", in, base + "dir/part.step?" + sasQuery, "--key-file", k, "--json"}, guard...)...).want(t, 0)
	noSignature(t, r)
	var up putResult
	if err := json.Unmarshal([]byte(r.stdout), &up); err != nil || up.Container != "urls" || up.Blob != "dir/part.step" ||
		up.URL != base+"dir/part.step" || up.Size != int64(len(plain)) || up.Format != "geoseal" || up.Decision == nil || !up.Decision.Allowed {
		t.Errorf("put --json: %s (%v)", r.stdout, err)
	}
	out := filepath.Join(dir, "out")
	r = geoseal(t, nil, nil, "get", base+"dir/part.step?"+sasQuery, out, "--key-file", k).want(t, 0)
	noSignature(t, r)
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("get by SAS URL: plaintext differs")
	}
	if want := "wrote 200000 bytes (195.3 KiB) of " + base + "dir/part.step to " + out + "\n"; r.stdout != want || r.stderr != "" {
		t.Errorf("get's result: %q, stderr %q; want %q", r.stdout, r.stderr, want)
	}
	// A container URL (or one ending in '/') takes SRC's base name.
	geoseal(t, nil, nil, append([]string{"put", in, base + "?" + sasQuery, "--key-file", k}, guard...)...).want(t, 0)
	geoseal(t, nil, nil, append([]string{"put", in, base + "sub/?" + sasQuery, "--key-file", k}, guard...)...).want(t, 0)
	for _, name := range []string{"part.step", "sub/part.step"} {
		os.Remove(out)
		geoseal(t, nil, nil, "get", base+name+"?"+sasQuery, out, "--key-file", k).want(t, 0)
		if !bytes.Equal(readFile(t, out), plain) {
			t.Errorf("%s: plaintext differs", name)
		}
	}

	// Each credential source, for a URL without a SAS.
	accountKey := []string{envAccount + "=" + azurite.DevAccountName, envAccountKey + "=" + azurite.DevAccountKey}
	otherAccount := envConnectionString + "=DefaultEndpointsProtocol=http;AccountName=other;AccountKey=" + azurite.DevAccountKey + ";BlobEndpoint=http://127.0.0.1:1/other;"
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"connection string", []string{envConnectionString + "=" + srv.ConnectionString()}, []string{base + "dir/part.step", out}},
		{"connection string, flags", []string{envConnectionString + "=" + srv.ConnectionString()}, []string{"--container", "urls", "--blob", "dir/part.step", "--out", out}},
		{"account and key", accountKey, []string{base + "dir/part.step", out}},
		{"account and SAS token", []string{envAccount + "=" + azurite.DevAccountName, envSASToken + "=?" + sasQuery}, []string{base + "dir/part.step", out}},
		{"another account's connection string does not apply", append([]string{otherAccount}, accountKey...), []string{base + "dir/part.step", out}},
		{"the SAS in the URL comes first", []string{envConnectionString + "=" + strings.Replace(srv.ConnectionString(), azurite.DevAccountKey, "d3Jvbmc=", 1)}, []string{base + "dir/part.step?" + sasQuery, out}},
		{"--account-url with a SAS", nil, []string{"--account-url", srv.BlobEndpoint + "?" + sasQuery, "--container", "urls", "--blob", "dir/part.step", "--out", out}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			r := geoseal(t, tc.env, nil, append(append([]string{"get"}, tc.args...), "--key-file", k)...).want(t, 0)
			noSignature(t, r)
			if !bytes.Equal(readFile(t, out), plain) {
				t.Error("plaintext differs")
			}
		})
	}

	// Errors say what failed and what to do, in one short line, without
	// the service's XML or the signature.
	badSAS := strings.Replace(sasQuery, signature, "sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D", 1)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"missing container", []string{envConnectionString + "=" + srv.ConnectionString()},
			append([]string{"put", in, srv.BlobEndpoint + "/nope/x", "--key-file", k}, guard...),
			"geoseal put: container nope does not exist; create it with --create-container"},
		{"missing blob", nil, []string{"get", base + "zzz?" + sasQuery, out, "--key-file", k},
			"geoseal get: blob zzz not found in container urls"},
		{"wrong signature", nil, []string{"get", base + "dir/part.step?" + badSAS, out, "--key-file", k},
			"(the SAS in the URL, AuthorizationFailure): a wrong or expired SAS"},
		{"no account", nil, []string{"get", "--container", "urls", "--blob", "x", "--out", out, "--key-file", k},
			"geoseal get: no storage account: give a blob URL or --account-url, or set $AZURE_STORAGE_CONNECTION_STRING or $AZURE_STORAGE_ACCOUNT"},
		{"a URL in --blob", nil, []string{"get", "--container", "urls", "--blob", base + "x", "--out", out, "--key-file", k},
			"geoseal get: --blob takes a name, not a URL"},
		{"a URL and the flags", nil, []string{"get", base + "x", out, "--container", "urls", "--key-file", k},
			"geoseal get: give a URL or --container, --blob and --account-url, not both"},
		{"a query that is not a SAS", nil, []string{"get", base + "x?comp=list", out, "--key-file", k},
			"the query is not a SAS"},
		{"a container name too short", []string{envConnectionString + "=" + srv.ConnectionString()},
			append([]string{"put", in, srv.BlobEndpoint + "/c1/x", "--key-file", k, "--create-container"}, guard...),
			"geoseal put: the service refused the name (OutOfRangeInput): a container name is 3-63 lowercase letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			r := geoseal(t, tc.env, nil, tc.args...).want(t, 1)
			noSignature(t, r)
			if line := errorLine(t, r.stderr); !strings.Contains(line, tc.want) {
				t.Errorf("error line %q, want %q", line, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Error("a failed get left its output")
			}
			// --verbose adds the service's status, code and request id,
			// still without the signature.
			if tc.name == "wrong signature" || tc.name == "missing blob" {
				r := geoseal(t, tc.env, nil, append(tc.args, "--verbose")...).want(t, 1)
				noSignature(t, r)
				if !strings.Contains(r.stderr, "  service: 40") || !strings.Contains(r.stderr, "request id ") {
					t.Errorf("--verbose: %s", r.stderr)
				}
			}
		})
	}
}

// TestBinaryNoOverwrite: put, get, encrypt and decrypt refuse to replace
// what exists, and leave it as it was.
func TestBinaryNoOverwrite(t *testing.T) {
	srv := azurite.ForTest(t)
	cc := newContainer(t, srv, "keep")
	env := []string{envConnectionString + "=" + srv.ConnectionString()}
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	first := writeFile(t, filepath.Join(dir, "first"), []byte("the first version"))
	second := writeFile(t, filepath.Join(dir, "second"), []byte("the second version"))
	url := srv.BlobEndpoint + "/keep/doc"
	guard := []string{"--policy", "unrestricted", "--primary", "eastus"}

	geoseal(t, env, nil, append([]string{"put", first, url, "--key-file", k, "--no-overwrite"}, guard...)...).want(t, 0)
	props, err := cc.NewBlobClient("doc").GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := geoseal(t, env, nil, append([]string{"put", second, url, "--key-file", k, "--no-overwrite"}, guard...)...).want(t, 1)
	if line := errorLine(t, r.stderr); line != "geoseal put: blob doc already exists in container keep; --no-overwrite leaves it as it is" {
		t.Errorf("put --no-overwrite over a blob: %q", line)
	}
	after, err := cc.NewBlobClient("doc").GetProperties(context.Background(), nil)
	if err != nil || *after.ETag != *props.ETag {
		t.Errorf("the blob changed: %v", err)
	}
	// Without the flag, put replaces.
	geoseal(t, env, nil, append([]string{"put", second, url, "--key-file", k}, guard...)...).want(t, 0)

	out := writeFile(t, filepath.Join(dir, "out"), []byte("keep me"))
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", first, "--out", obj, "--key-file", k).want(t, 0)
	for _, args := range [][]string{
		{"get", url, out, "--key-file", k, "--no-overwrite"},
		{"decrypt", "--in", obj, "--out", out, "--key-file", k, "--no-overwrite"},
		{"encrypt", "--in", first, "--out", out, "--key-file", k, "--no-overwrite"},
	} {
		r := geoseal(t, env, nil, args...).want(t, 1)
		if line := errorLine(t, r.stderr); !strings.Contains(line, out+" exists; --no-overwrite leaves it as it is") {
			t.Errorf("%s: %q", args[0], line)
		}
		if string(readFile(t, out)) != "keep me" {
			t.Fatalf("%s --no-overwrite replaced the file", args[0])
		}
	}
	if got := dirEntries(t, dir); len(got) != 5 {
		t.Errorf("files left behind: %v", got)
	}
	// A new file is written.
	geoseal(t, env, nil, "get", url, filepath.Join(dir, "new"), "--key-file", k, "--no-overwrite").want(t, 0)
	if string(readFile(t, filepath.Join(dir, "new"))) != "the second version" {
		t.Error("get --no-overwrite of a new file")
	}
}

// TestBinaryEnvDefaults: GEOSEAL_POLICY, GEOSEAL_PRIMARY, GEOSEAL_SECONDARY
// and GEOSEAL_KEY_FILE stand in for their flags, and a flag wins.
func TestBinaryEnvDefaults(t *testing.T) {
	srv := azurite.ForTest(t)
	newContainer(t, srv, "envs")
	dir := t.TempDir()
	k1, k2 := keygen(t, filepath.Join(dir, "k1")), keygen(t, filepath.Join(dir, "k2"))
	in := writeFile(t, filepath.Join(dir, "in"), []byte("defaults"))
	url := srv.BlobEndpoint + "/envs/doc"
	out := filepath.Join(dir, "out")
	cs := envConnectionString + "=" + srv.ConnectionString()
	env := []string{cs, envPolicy + "=itar", envPrimary + "=eastus", envSecondary + "=westus", envKeyFile + "=" + k1}

	// Nothing but the environment.
	geoseal(t, env, nil, "put", in, url).want(t, 0)
	geoseal(t, env, nil, "get", url, out).want(t, 0)
	if string(readFile(t, out)) != "defaults" {
		t.Fatal("round trip with the environment's defaults differs")
	}
	// The region guard refuses what the environment declares...
	refused := []string{cs, envPolicy + "=itar", envPrimary + "=southeastasia", envSecondary + "=eastasia", envKeyFile + "=" + k1}
	r := geoseal(t, refused, nil, "put", in, url).want(t, 3)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "secondary region eastasia") {
		t.Errorf("refused: %q", line)
	}
	// ... and a flag wins: --primary replaces both GEOSEAL_PRIMARY and
	// GEOSEAL_SECONDARY; --policy replaces GEOSEAL_POLICY.
	geoseal(t, refused, nil, "put", in, url, "--primary", "eastus").want(t, 0)
	r = geoseal(t, env, nil, "put", in, url, "--policy", "us-only", "--primary", "westeurope").want(t, 3)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "policy us-only refuses primary region westeurope") {
		t.Errorf("flags over the environment: %q", line)
	}
	// --key-file wins over GEOSEAL_KEY_FILE: the object is k2's alone.
	geoseal(t, env, nil, "put", in, url, "--key-file", k2).want(t, 0)
	r = geoseal(t, env, nil, "get", url, out).want(t, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "none of the keys given opens this object") {
		t.Errorf("get with GEOSEAL_KEY_FILE's key: %q", line)
	}
	geoseal(t, env, nil, "get", url, out, "--key-file", k2).want(t, 0)
	// region check reads them too.
	r = geoseal(t, []string{envPolicy + "=ear", envPrimary + "=southeastasia", envSecondary + "=eastasia"}, nil, "region", "check").want(t, 3)
	if !strings.Contains(r.stdout, "REFUSED under policy ear") {
		t.Errorf("region check with the environment: %s", r.stdout)
	}
	// geoseal --help lists them.
	r = geoseal(t, nil, nil, "--help").want(t, 0)
	for _, v := range []string{envPolicy, envPrimary, envSecondary, envKeyFile, envKeyVault, envConnectionString, envAccount, envAccountKey, envSASToken} {
		if !strings.Contains(r.stdout, v) {
			t.Errorf("geoseal --help does not list %s", v)
		}
	}
}

// TestBinaryCredentialChain: a URL without a SAS, and no storage key in
// the environment, falls to azidentity's default chain. Its Azure CLI
// credential runs `az account get-access-token`: a fake az on PATH hands
// out a token, and a TLS endpoint standing in for the account checks that
// the request carries it.
func TestBinaryCredentialChain(t *testing.T) {
	bin := t.TempDir()
	az := filepath.Join(bin, "az")
	if err := os.WriteFile(az, []byte("#!/bin/sh\necho '{\"accessToken\":\"fake-entra-token\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var auth atomic.Value
	auth.Store("")
	blobs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("x-ms-error-code", "BlobNotFound")
		w.Header().Set("x-ms-request-id", "req-1")
		w.WriteHeader(http.StatusNotFound)
	}))
	defer blobs.Close()
	certFile := writeFile(t, filepath.Join(bin, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: blobs.Certificate().Raw}))
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	url := blobs.URL + "/acct/c/b"
	chain := []string{"AZURE_TOKEN_CREDENTIALS=AzureCLICredential", "SSL_CERT_FILE=" + certFile}

	r := geoseal(t, append(chain, "PATH="+bin+":"+os.Getenv("PATH")), nil, "get", url, filepath.Join(dir, "out"), "--key-file", k).want(t, 1)
	if got := auth.Load().(string); got != "Bearer fake-entra-token" {
		t.Errorf("the request's Authorization header is %q, want the Azure CLI's token", got)
	}
	if line := errorLine(t, r.stderr); line != "geoseal get: blob b not found in container c" {
		t.Errorf("error line %q", line)
	}

	// No credential at all: the line says what to do.
	r = geoseal(t, append(chain, "PATH="+t.TempDir()), nil, "get", url, filepath.Join(dir, "out"), "--key-file", k).want(t, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "no Microsoft Entra ID token for storage account acct from azidentity's default chain: sign in (az login)") {
		t.Errorf("error line %q", line)
	}
}
