// Command rotate rotates the key-encryption key of a whole container: every
// geoseal object is rewrapped from an old key to a new one by replacing its
// header block only, without downloading, re-encrypting or uploading any of
// its data. Afterwards the old key no longer opens the objects and the new
// one does.
//
// It runs against Azurite (started for the run, unless
// AZURE_STORAGE_CONNECTION_STRING names an account). Run it with
//
//	go run ./examples/rotate
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rotate:", err)
		os.Exit(1)
	}
}

func newKey() (*keyring.AES, error) {
	key, err := keyring.GenerateAESKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return keyring.NewAES(key, nil)
}

func run(ctx context.Context, w io.Writer) error {
	r := &exenv.Report{W: w}
	fmt.Fprintln(w, "geoseal rotate: rewrap a container to a new key; the old key stops working")

	r.Step("Storage and keys")
	st, err := exenv.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Line("using %s", st.Where)
	counter := &exenv.RequestCounter{}
	// The container client, from the account's connection string (Open
	// put Azurite's there when none was given).
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), exenv.ContainerName("rotate"), counter.ClientOptions())
	if err != nil {
		return err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	counter.Reset() // creating the container is not part of the story
	oldKey, err := newKey()
	if err != nil {
		return err
	}
	newKeyring, err := newKey()
	if err != nil {
		return err
	}
	r.Line("old key local-aes %s", oldKey.KeyID())
	r.Line("new key local-aes %s", newKeyring.KeyID())
	policy, err := region.LoadPolicy("ear")
	if err != nil {
		return err
	}
	guard, err := region.NewGuard(policy, region.Static(st.Primary, st.Secondary), nil)
	if err != nil {
		return err
	}
	withOld, err := blobstore.NewClient(cc, oldKey, guard, nil)
	if err != nil {
		return err
	}
	withNew, err := blobstore.NewClient(cc, newKeyring, guard, nil)
	if err != nil {
		return err
	}

	r.Step("Upload three objects under the old key, and one blob that is not geoseal")
	objects := map[string][]byte{}
	var total int64
	for i, name := range []string{"specs/a.pdf", "specs/b.step", "specs/c.txt"} {
		data := bytes.Repeat([]byte(fmt.Sprintf("spec %d, rev C\n", i)), 100_000*(i+1))
		objects[name] = data
		up, err := withOld.Upload(ctx, name, bytes.NewReader(data), nil)
		if err != nil {
			return err
		}
		total += up.EncryptedSize
		r.Line("%-14s %8d bytes, stored encrypted as %8d", name, up.Size, up.EncryptedSize)
	}
	if _, err := cc.NewBlockBlobClient("specs/README").UploadBuffer(ctx, []byte("plain notes"), &blockblob.UploadBufferOptions{}); err != nil {
		return err
	}
	r.Line("%-14s a plain blob, which rotation must leave alone", "specs/README")

	r.Step("Rewrap the container to the new key")
	counter.Reset()
	var skipped []string
	resp, err := withOld.RewrapAll(ctx, newKeyring, &blobstore.RewrapAllOptions{
		Prefix: "specs/",
		// Outcomes stream out one by one; the response only counts them.
		Results: func(res blobstore.WalkResult) {
			if res.Outcome == blobstore.OutcomeNotGeoseal {
				skipped = append(skipped, res.Blob)
			}
		},
	})
	if err != nil {
		return err
	}
	reqs, sent := counter.Counts()
	if resp.Rotated != 3 || resp.NotGeoseal != 1 || resp.Failed != 0 {
		return exenv.Unexpected("rotated %d, not geoseal %d, failed %d", resp.Rotated, resp.NotGeoseal, resp.Failed)
	}
	r.Line("rotated %d objects, skipped %s (not a geoseal object)", resp.Rotated, strings.Join(skipped, ", "))
	if sent >= total/100 {
		return exenv.Unexpected("rotation sent %d bytes for %d bytes of objects", sent, total)
	}
	r.Line("%d requests, %d bytes sent for %d bytes of objects: new headers and block lists only", reqs, sent, total)

	r.Step("The old key no longer opens the objects")
	for name := range objects {
		_, err := withOld.Download(ctx, name, nil)
		var nm *keyring.NoMatchError
		if !errors.As(err, &nm) {
			return exenv.Unexpected("the old key opened %s after the rotation (err %v)", name, err)
		}
	}
	_, err = withOld.Download(ctx, "specs/a.pdf", nil)
	r.Line("specs/a.pdf with the old key: %v", err)

	r.Step("The new key opens every object, unchanged")
	for _, name := range []string{"specs/a.pdf", "specs/b.step", "specs/c.txt"} {
		dl, err := withNew.Download(ctx, name, nil)
		if err != nil {
			return exenv.Unexpected("the new key cannot open %s: %v", name, err)
		}
		got, err := io.ReadAll(dl.Body)
		dl.Body.Close()
		if err != nil || !bytes.Equal(got, objects[name]) {
			return exenv.Unexpected("%s differs after the rotation (%v)", name, err)
		}
		r.Line("%-14s %8d bytes, identical", name, len(got))
	}

	fmt.Fprintln(w, "\nrotate: OK")
	return nil
}
