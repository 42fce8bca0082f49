package main

import (
	"bytes"
	"context"
	"crypto/fips140"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/internal/azurite"
)

// TestBinaryPutCSEv2: put --format azure-cse-v2 writes what encrypt
// --format azure-cse-v2 writes, as a blob with its "encryptiondata"
// metadata, which ls classifies and get reads back; in FIPS 140-only mode
// it is refused before anything is sent.
func TestBinaryPutCSEv2(t *testing.T) {
	srv := azurite.ForTest(t)
	cc := newContainer(t, srv, "cse-put")
	env := []string{envConnectionString + "=" + srv.ConnectionString(), envPolicy + "=unrestricted", envPrimary + "=eastus"}
	dir := t.TempDir()
	kek := writeFile(t, filepath.Join(dir, "kek"), randomBytes(t, 32))
	rsaPriv, rsaPub := rsaPEMs(t, dir)
	plain := randomBytes(t, 5<<20+3) // two regions
	in := writeFile(t, filepath.Join(dir, "in"), plain)
	for _, kc := range []struct {
		name     string
		put, get []string
	}{
		{"A256KW", []string{"--key-file", kek, "--key-id", "local:kek"}, []string{"--key-file", kek, "--key-id", "local:kek"}},
		{"RSA-OAEP-256", []string{"--rsa-public", rsaPub, "--key-id", "local:rsa"}, []string{"--rsa-private", rsaPriv, "--key-id", "local:rsa"}},
	} {
		t.Run(kc.name, func(t *testing.T) {
			url := srv.BlobEndpoint + "/cse-put/" + kc.name
			r := geoseal(t, env, nil, append([]string{"put", in, url, "--format", "azure-cse-v2", "--json"}, kc.put...)...)
			if fips140.Enforced() {
				r.want(t, 1)
				if line := errorLine(t, r.stderr); !strings.Contains(line, "not approved") {
					t.Errorf("%q", line)
				}
				if _, err := cc.NewBlobClient(kc.name).GetProperties(context.Background(), nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
					t.Errorf("a refused put left a blob: %v", err)
				}
				return
			}
			r.want(t, 0)
			var res putResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Format != "azure-cse-v2" || res.Size != int64(len(plain)) || res.EncryptedSize != int64(len(plain)+2*28) {
				t.Errorf("put --json: %s (%v)", r.stdout, err)
			}
			props, err := cc.NewBlobClient(kc.name).GetProperties(context.Background(), nil)
			if err != nil || props.Metadata["Encryptiondata"] == nil && props.Metadata["encryptiondata"] == nil {
				t.Fatalf("no encryptiondata metadata: %v %v", props.Metadata, err)
			}
			if r := geoseal(t, env, nil, "ls", url).want(t, 0); !strings.Contains(r.stdout, "azure-cse-v2") {
				t.Errorf("ls: %s", r.stdout)
			}
			out := filepath.Join(dir, kc.name+".out")
			geoseal(t, env, nil, append([]string{"get", url, out, "--format", "azure-cse-v2"}, kc.get...)...).want(t, 0)
			if !bytes.Equal(readFile(t, out), plain) {
				t.Error("get of the CSE v2 blob put wrote differs")
			}
		})
	}
	// The format's own flags need the format, and it takes no context.
	for _, args := range [][]string{
		{"put", in, srv.BlobEndpoint + "/cse-put/x", "--key-file", kek, "--key-id", "kid"},
		{"put", in, srv.BlobEndpoint + "/cse-put/x", "--format", "azure-cse-v2", "--key-file", kek, "--key-id", "kid", "--context", "a=b"},
		{"put", in, srv.BlobEndpoint + "/cse-put/x", "--format", "azure-cse-v2", "--key-file", kek, "--key-file", kek, "--key-id", "kid"},
	} {
		if r := geoseal(t, env, nil, args...); r.code != 1 || errorLine(t, r.stderr) == "" {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
}
