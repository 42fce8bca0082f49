// Command region shows geoseal's region guard refusing an upload: the
// account's primary region, Southeast Asia (Singapore), is fine under the
// ITAR, but the account is geo-replicated and its secondary, East Asia, is
// in Hong Kong, which counts as China: 22 CFR 126.1 proscribes it. The
// guard refuses before a byte leaves the process, and the example counts
// the requests to prove it.
//
// It then shows the same account allowed when it is not geo-replicated,
// the same account refused again when the key-encryption key lives in a
// Key Vault vault in Southeast Asia (Key Vault replicates a vault to its
// region's pair, so the means of decryption would be in Hong Kong), and an
// unknown region refused by default.
//
// It runs against Azurite (started for the run, unless
// AZURE_STORAGE_CONNECTION_STRING names an account); the regions are
// declared, as region.Static does for an emulator. Run it with
//
//	go run ./examples/region
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "region:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	r := &exenv.Report{W: w}
	fmt.Fprintln(w, "geoseal region: the guard refuses storage in a proscribed country, before anything is sent")

	r.Step("Storage")
	st, err := exenv.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Line("using %s", st.Where)
	// Every request of the uploads below goes through this counter.
	counter := &exenv.RequestCounter{}
	// The container client, from the account's connection string (Open
	// put Azurite's there when none was given).
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), exenv.ContainerName("region"), counter.ClientOptions())
	if err != nil {
		return err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	counter.Reset() // creating the container is not part of the story
	key, err := keyring.GenerateAESKey()
	if err != nil {
		return err
	}
	kr, err := keyring.NewAES(key, nil)
	clear(key)
	if err != nil {
		return err
	}
	itar, err := region.LoadPolicy("itar")
	if err != nil {
		return err
	}
	data := bytes.Repeat([]byte("ITAR-controlled drawing, Category XIX(f)\n"), 50_000)

	r.Step("Upload to a GRS account in southeastasia, secondary eastasia, under ITAR")
	guard, err := region.NewGuard(itar, region.Static("southeastasia", "eastasia"), nil)
	if err != nil {
		return err
	}
	client, err := blobstore.NewClient(cc, kr, guard, nil)
	if err != nil {
		return err
	}
	_, err = client.Upload(ctx, "drawing.dwg", bytes.NewReader(data), nil)
	var v *region.Violation
	if !errors.As(err, &v) {
		return exenv.Unexpected("the upload was not refused by the guard: %v", err)
	}
	d := v.Decision
	r.Line("REFUSED. The guard's explanation, for the compliance officer:")
	r.Line("  %s", v.Error())
	r.Line("primary   %s: %s in %s, %s", d.Primary.Region, d.Primary.DisplayName, d.Primary.CountryName, verdict(d.Primary.Allowed))
	r.Line("secondary %s: %s in %s (counted as %s), %s by %s", d.Secondary.Region, d.Secondary.DisplayName, d.Secondary.CountryName, d.Secondary.TreatedAs, verdict(d.Secondary.Allowed), d.Secondary.Citation)
	reqs, sent := counter.Counts()
	if reqs != 0 || sent != 0 {
		return exenv.Unexpected("the refused upload sent %d requests, %d body bytes", reqs, sent)
	}
	r.Line("requests sent to the storage service: %d; bytes sent: %d", reqs, sent)
	if n, err := countBlobs(ctx, cc); err != nil || n != 0 {
		return exenv.Unexpected("the container holds %d blobs (%v) after a refused upload", n, err)
	}
	r.Line("the container is still empty")

	r.Step("The same account, locally redundant (no secondary), under ITAR")
	guard, err = region.NewGuard(itar, region.Static("southeastasia", ""), nil)
	if err != nil {
		return err
	}
	if client, err = blobstore.NewClient(cc, kr, guard, nil); err != nil {
		return err
	}
	counter.Reset() // the listing above was counted too
	up, err := client.Upload(ctx, "drawing.dwg", bytes.NewReader(data), nil)
	if err != nil {
		return exenv.Unexpected("the LRS upload was refused: %v", err)
	}
	reqs, sent = counter.Counts()
	r.Line("allowed: %s", up.Decision.Reason)
	r.Line("uploaded %d bytes encrypted as %d (%d requests, %d bytes sent)", up.Size, up.EncryptedSize, reqs, sent)

	r.Step("The same account, with its key in a Key Vault vault in Southeast Asia")
	// region.KeyVaultARM(cred, subscription, keyURL, nil) would ask Azure
	// Resource Manager where the vault is; here its region is declared.
	guard, err = region.NewGuard(itar, region.Static("southeastasia", ""), &region.GuardOptions{
		KeyVaults: []region.Resolver{region.StaticKeyVault("southeastasia")},
	})
	if err != nil {
		return err
	}
	if _, err = guard.Check(ctx); !errors.As(err, &v) {
		return exenv.Unexpected("a key replicated to Hong Kong was allowed: %v", err)
	}
	r.Line("REFUSED (where the key lives): %s", v.Decision.Reason)

	r.Step("A region the catalog does not know, under EAR")
	ear, err := region.LoadPolicy("ear")
	if err != nil {
		return err
	}
	guard, err = region.NewGuard(ear, region.Static("atlantiscentral", ""), nil)
	if err != nil {
		return err
	}
	_, err = guard.Check(ctx)
	if !errors.As(err, &v) {
		return exenv.Unexpected("an unknown region was allowed: %v", err)
	}
	r.Line("REFUSED (deny by default): %s", v.Error())

	fmt.Fprintln(w, "\nregion: OK (the lists are dated research with citations, not legal advice)")
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "allowed"
	}
	return "proscribed"
}

// countBlobs counts the blobs in the container.
func countBlobs(ctx context.Context, c *container.Client) (int, error) {
	n := 0
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Segment.BlobItems)
	}
	return n, nil
}
