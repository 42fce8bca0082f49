package main

// geoseal get and Azure client-side encryption v2 blobs: read only when
// asked for (--format azure-cse-v2, --allow-cse-v2), and never under
// --require-context, since the format has no context to check.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// uploadCSEv2 stores a CSE v2 blob: body and "encryptiondata" metadata.
func uploadCSEv2(t *testing.T, cc *container.Client, name string, body []byte, encryptionData string) {
	t.Helper()
	if _, err := cc.NewBlockBlobClient(name).UploadBuffer(context.Background(), body, &blockblob.UploadBufferOptions{
		Metadata: map[string]*string{"encryptiondata": &encryptionData},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBinaryGetCSEv2OptIn runs get against Azurite on a CSE v2 blob (a
// vector of the Python SDK's algorithm, RSA-OAEP-256, so that it opens in
// every FIPS mode) and on a geoseal object with a context.
func TestBinaryGetCSEv2OptIn(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 70_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	geoseal(t, env, nil, "put", "--container", "cse-get", "--blob", "gs", "--in", in, "--key-file", k, "--context", "p=1",
		"--policy", "unrestricted", "--primary", "eastus", "--create-container").want(t, 0)
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "cse-get", nil)
	if err != nil {
		t.Fatal(err)
	}
	v := csev2Vector(t, "2.1/RSA-OAEP-256/python/r16/50")
	uploadCSEv2(t, cc, "cse", v.ciphertext, v.encryptionData)
	rsaKey := []string{"--rsa-private", v.rsaPrivate, "--key-id", v.rsaKeyID}

	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name   string
		args   []string
		want   []byte // the plaintext, when get must succeed
		stderr string // when it must fail
	}{
		// Reading CSE v2 is asked for.
		{"format", append([]string{"--blob", "cse", "--format", "azure-cse-v2"}, rsaKey...), v.plaintext, ""},
		{"allow", append([]string{"--blob", "cse", "--allow-cse-v2"}, rsaKey...), v.plaintext, ""},
		{"format range", append([]string{"--blob", "cse", "--format", "azure-cse-v2", "--offset", "17", "--length", "20"}, rsaKey...), v.plaintext[17:37], ""},
		// ... and not by itself: neither the key id nor the key turns it on.
		{"key id alone", append([]string{"--blob", "cse"}, rsaKey...), nil, "--key-id needs --format azure-cse-v2"},
		{"key alone", []string{"--blob", "cse", "--rsa-private", v.rsaPrivate}, nil, "reads only with --format azure-cse-v2"},
		{"format geoseal", append([]string{"--blob", "cse", "--format", "geoseal"}, rsaKey...), nil, "--key-id needs --format azure-cse-v2"},
		{"unknown format", []string{"--blob", "cse", "--format", "cse", "--rsa-private", v.rsaPrivate}, nil, `unknown --format cse`},
		// Under --require-context a CSE v2 blob is refused, asked for or not.
		{"require context", append([]string{"--blob", "cse", "--format", "azure-cse-v2", "--require-context", "p=1"}, rsaKey...), nil, "no encryption context"},
		{"require context range", append([]string{"--blob", "cse", "--allow-cse-v2", "--require-context", "p=1", "--offset", "1", "--length", "2"}, rsaKey...), nil, "no encryption context"},
		{"require context only", []string{"--blob", "cse", "--require-context", "p=1", "--rsa-private", v.rsaPrivate}, nil, "no encryption context"},
		// A geoseal object reads as before, with or without the format.
		{"geoseal object", []string{"--blob", "gs", "--key-file", k, "--require-context", "p=1"}, plain, ""},
		{"geoseal object, format", []string{"--blob", "gs", "--format", "azure-cse-v2", "--key-file", k, "--key-id", "any", "--require-context", "p=1"}, plain, ""},
		{"geoseal object, wrong context", []string{"--blob", "gs", "--allow-cse-v2", "--key-file", k, "--key-id", "any", "--require-context", "p=2"}, nil, "lacks a --require-context pair"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			r := geoseal(t, env, nil, append([]string{"get", "--container", "cse-get", "--out", out}, tc.args...)...)
			if tc.want != nil {
				r.want(t, 0)
				if got := readFile(t, out); string(got) != string(tc.want) {
					t.Errorf("got %d bytes, want %d bytes of plaintext", len(got), len(tc.want))
				}
				return
			}
			r.want(t, 1)
			if line := errorLine(t, r.stderr); !strings.Contains(line, tc.stderr) {
				t.Errorf("stderr %q, want one line with %q", r.stderr, tc.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused get left its output: %v", err)
			}
		})
	}
}

// TestGetCSEv2KeyVault: a single --keyvault used to switch CSE v2 reading
// on by itself, and --require-context did not stop it. A CSE v2 blob
// wrapped by the vault's key must cost no unwrapkey call unless
// --format azure-cse-v2 asks for it, and none under --require-context.
func TestGetCSEv2KeyVault(t *testing.T) {
	kv := kvtest.NewServer(t)
	kid := kv.CreateRSAKey("cse", 2048)
	e := newTestEnv(t)
	useKeyVaultTestServer(e, kv)
	srv := azurite.ForTest(t)
	e.vars[envConnectionString] = srv.ConnectionString()
	runCLI := e.run
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "cse-kv", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// The vector's body and content key, the key wrapped (after its
	// NUL-padded protocol string, as CSE v2 does) by the vault's key.
	v := csev2Vector(t, "2.1/RSA-OAEP-256/python/r16/50")
	client, err := azkeys.NewClient(kv.URL, kv.Credential(), kv.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := client.WrapKey(ctx, "cse", path.Base(kid), azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256),
		Value:     append([]byte("2.1\x00\x00\x00\x00\x00"), v.cek...),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ed map[string]any
	if err := json.Unmarshal([]byte(v.encryptionData), &ed); err != nil {
		t.Fatal(err)
	}
	wck := ed["WrappedContentKey"].(map[string]any)
	wck["KeyId"], wck["EncryptedKey"] = kid, base64.StdEncoding.EncodeToString(wrapped.Result)
	edJSON, err := json.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	uploadCSEv2(t, cc, "cse", v.ciphertext, string(edJSON))

	out := filepath.Join(t.TempDir(), "out")
	get := []string{"get", "--container", "cse-kv", "--blob", "cse", "--out", out, "--keyvault", kv.KeyURL("cse")}
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		unwraps int
	}{
		{"not asked for", nil, 1, "reads only with --format azure-cse-v2", 0},
		{"require context", []string{"--require-context", "p=1"}, 1, "no encryption context", 0},
		{"asked for, require context", []string{"--format", "azure-cse-v2", "--require-context", "p=1"}, 1, "no encryption context", 0},
		{"asked for", []string{"--format", "azure-cse-v2"}, 0, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			kv.ResetCounts()
			code, _, stderr := runCLI(t, append(get, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.stderr)
			}
			if n := kv.Counts().UnwrapKey; n != tc.unwraps {
				t.Errorf("%d unwrapkey calls, want %d", n, tc.unwraps)
			}
			if tc.code == 0 {
				if got := readFile(t, out); string(got) != string(v.plaintext) {
					t.Errorf("got %d bytes, want the %d bytes of plaintext", len(got), len(v.plaintext))
				}
			} else if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused get left its output: %v", err)
			}
		})
	}
}
