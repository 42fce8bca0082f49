package keyring_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/keyring"
)

// TestAESOpensFirstReleaseObjects checks that the local AES keyring, with
// its default options, opens the objects of testdata/vectors, which the
// first release wrote with the HMAC-derived key id: the key id changed
// (issue 11.5), objects already stored did not.
func TestAESOpensFirstReleaseObjects(t *testing.T) {
	files, err := filepath.Glob("../testdata/vectors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	opened := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Name, Suite, Expect, Object, Plaintext string
			Keys                                   []string
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if v.Expect != "success" || v.Suite != "AES-256-GCM" {
			continue
		}
		obj, _ := hex.DecodeString(v.Object)
		want, _ := hex.DecodeString(v.Plaintext)
		for _, k := range v.Keys {
			raw, _ := hex.DecodeString(k)
			kr, err := keyring.NewAES(raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := envelope.Decrypt(context.Background(), bytes.NewReader(obj), kr, nil)
			if err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes, %v", v.Name, len(got), err)
			}
			opened++
		}
	}
	if opened == 0 {
		t.Fatal("no vector was opened")
	}
}
