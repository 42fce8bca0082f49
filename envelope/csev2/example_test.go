package csev2_test

import (
	"bytes"
	"context"
	"crypto/fips140"
	"fmt"
	"io"
	"log"

	"github.com/geoseal/geoseal/envelope/csev2"
)

// Encrypt a stream into CSE v2 and decrypt it again, as a .NET, Java or
// Python SDK client would, with a local AES key-encryption key. The metadata
// JSON is what the SDKs store under the blob's "encryptiondata" entry.
func Example() {
	if fips140.Enforced() {
		// Writing needs counter GCM nonces, which FIPS 140-only mode refuses.
		fmt.Println("hello, CSE v2")
		return
	}
	ctx := context.Background()
	kek, err := csev2.LocalAESKEK("https://example.vault.azure.net/keys/cse/1", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}

	var blob bytes.Buffer
	w, err := csev2.NewWriter(ctx, &blob, kek, nil) // protocol 2.0, 4 MiB regions
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, "hello, CSE v2")
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	metadata, err := w.EncryptionData().Marshal()
	if err != nil {
		log.Fatal(err)
	}

	// Reading needs only the ciphertext, the metadata and a way to find the
	// key the metadata names.
	ed, err := csev2.ParseEncryptionData(metadata)
	if err != nil {
		log.Fatal(err)
	}
	r, err := csev2.NewReader(ctx, &blob, ed, csev2.Keys(kek), nil)
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plaintext))
	// Output: hello, CSE v2
}
