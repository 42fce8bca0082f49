package blobstore_test

import (
	"context"
	"crypto/fips140"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/azurite"
)

// The examples need a storage account, so they carry no Output comment
// (go test would fail instead of skipping where Azurite is not
// installed). This test runs them against Azurite, through the connection
// string they read, and checks what they print.
func TestExamples(t *testing.T) {
	srv := azurite.ForTest(t) // skips loudly (fails in CI) without Azurite
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", srv.ConnectionString())
	for _, ex := range []struct {
		name string
		run  func()
		want string
	}{
		{"Package", Example, "uploaded 23 bytes; allowed by ear\nstation,load\n1,42\n2,57\n"},
		{"Open", ExampleClient_Open, "1200021 bytes; the last line: \"the interesting line\"\n"},
		{"Download", ExampleClient_Download, "spar of a 24-byte blob\n"},
		{"ServeBlob", ExampleClient_ServeBlob, "206 Partial Content bytes 20-38/39 \"chapter 2: testing\\n\"\n404 Not Found\n"},
		{"GetProperties", ExampleClient_GetProperties, "geoseal 11 bytes, eccn 9E003 wrapped by local-aes true\n"},
		{"NewListPager", ExampleClient_NewListPager, "plain.txt not-encrypted 13\nsealed.txt geoseal 14\n"},
		{"Rewrap", ExampleClient_Rewrap, "wrapped by the new key: true\n"},
		{"Audit", ExampleClient_Audit, "finding: notes.txt not-encrypted\n2 blobs: 1 geoseal, 1 not encrypted\nguard allows the account: true\n"},
		{"RewrapAll", ExampleClient_RewrapAll, "tail/1 rotated\ntail/2 rotated\ntail/3 rotated\n3 rotated, 0 failed\n0 rotated, 3 already rotated\n"},
		{"Migrate", ExampleClient_Migrate, "1 to migrate\ndrawing.step azure-cse-v2 migrated\n1 migrated, 0 failed\nnow geoseal with 1 metadata entry\n"},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if ex.name == "Migrate" && fips140.Enforced() {
				// The example's first step, writing a CSE v2 blob with a
				// local A256KW key, is refused in this mode by design
				// (the migration itself is tested in it: TestMigrate...).
				// Assert that refusal instead of running the example,
				// which would stop at log.Fatal.
				kek, err := csev2.LocalAESKEK("local:old-kek", make([]byte, 32))
				if err == nil {
					_, err = csev2.Upload(context.Background(), newContainer("legacy").NewBlockBlobClient("drawing.step"), strings.NewReader("solid model"), kek, nil)
				}
				if !errors.Is(err, csev2.ErrNotApproved) {
					t.Fatalf("writing the example's CSE v2 blob in FIPS 140-only mode: %v, want csev2.ErrNotApproved", err)
				}
				return
			}
			if got := captureStdout(t, ex.run); got != ex.want {
				t.Fatalf("printed %q, want %q", got, ex.want)
			}
		})
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return string(<-done)
}
