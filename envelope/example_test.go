package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/keyring"
)

// newKeyring returns a local AES keyring with a fresh key. In production
// the key-encryption key lives in Key Vault, a Managed HSM or a PKCS#11
// HSM: see package keyring.
func newKeyring(name string) *keyring.AES {
	key, err := keyring.GenerateAESKey()
	if err != nil {
		log.Fatal(name, err)
	}
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		log.Fatal(name, err)
	}
	return kr
}

func Example() {
	ctx := context.Background()
	kr := newKeyring("project key")

	// Encrypt: everything written to w is sealed in chunks after the header.
	var object bytes.Buffer
	w, err := envelope.Encrypt(ctx, &object, kr, &envelope.EncryptOptions{
		Context: keyring.Context{"project": "x-57"},
	})
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, "drawing 9E003-17, rev. C")
	if err := w.Close(); err != nil { // seals the final chunk
		log.Fatal(err)
	}

	// Decrypt, insisting that the object belongs to project x-57.
	r, err := envelope.Decrypt(ctx, &object, kr, &envelope.DecryptOptions{
		RequireContext: keyring.Context{"project": "x-57"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // stops the reader's goroutines if it is not read to the end
	plaintext, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err) // e.g. envelope.ErrBodyTampered: discard what was read
	}
	fmt.Printf("%s\n", plaintext)
	// Output: drawing 9E003-17, rev. C
}

func ExampleInspect() {
	kr := newKeyring("archive key")
	var object bytes.Buffer
	w, _ := envelope.Encrypt(context.Background(), &object, kr, &envelope.EncryptOptions{
		Context:   keyring.Context{"classification": "ECCN 9E003", "project": "x-57"},
		ChunkSize: 1 << 20,
	})
	w.Close()

	// No key is needed to see what an object is and who can open it; none
	// of it is authenticated until Decrypt.
	h, err := envelope.Inspect(&object)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version:", h.Version)
	fmt.Println("suite:", h.Suite)
	fmt.Println("chunk size:", h.ChunkSize)
	fmt.Println("context:", h.Context["classification"], h.Context["project"])
	for _, k := range h.WrappedKeys {
		fmt.Println("wrapped for:", k.Provider, k.Algorithm)
	}
	// Output:
	// version: 1
	// suite: AES-256-GCM
	// chunk size: 1048576
	// context: ECCN 9E003 x-57
	// wrapped for: local-aes A256GCM
}

func ExampleDecryptAt() {
	ctx := context.Background()
	kr := newKeyring("key")
	var object bytes.Buffer
	w, _ := envelope.Encrypt(ctx, &object, kr, &envelope.EncryptOptions{ChunkSize: 4096})
	io.Copy(w, strings.NewReader(strings.Repeat("0123456789", 1000)))
	w.Close()

	// Random access reads only the chunks a range needs, and trusts the
	// size because the final chunk is authenticated on open.
	ra, err := envelope.DecryptAt(ctx, bytes.NewReader(object.Bytes()), int64(object.Len()), kr, nil)
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := ra.ReadAt(buf, 5005); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ra.Size(), string(buf))
	// Output: 10000 5678901234
}

func ExampleRewrap() {
	ctx := context.Background()
	oldKey, newKey := newKeyring("old key"), newKeyring("new key")
	var object bytes.Buffer
	w, _ := envelope.Encrypt(ctx, &object, oldKey, nil)
	io.WriteString(w, "rotate me")
	w.Close()

	// Replace the header only: the body is untouched.
	h, err := envelope.Inspect(bytes.NewReader(object.Bytes()))
	if err != nil {
		log.Fatal(err)
	}
	header, err := envelope.Rewrap(ctx, object.Bytes()[:h.Size], oldKey, newKey)
	if err != nil {
		log.Fatal(err)
	}
	rotated := append(header, object.Bytes()[h.Size:]...)

	r, err := envelope.Decrypt(ctx, bytes.NewReader(rotated), newKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	plaintext, _ := io.ReadAll(r)
	fmt.Printf("%s\n", plaintext)

	_, err = envelope.Decrypt(ctx, bytes.NewReader(rotated), oldKey, nil)
	fmt.Println("old key:", err != nil)
	// Output:
	// rotate me
	// old key: true
}
