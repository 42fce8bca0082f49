// Command hsm keeps the key-encryption key in a hardware security module:
// a SoftHSM2 token, created in a temporary directory for the run, stands
// in for a network HSM reached through PKCS#11. The AES key is generated
// inside the token and never leaves it; geoseal asks the token to wrap and
// unwrap each object's data key (AES key wrap with padding, RFC 5649).
//
// It needs SoftHSM2 (Debian package softhsm2; make deps installs it) and
// runs against Azurite (started for the run, unless
// AZURE_STORAGE_CONNECTION_STRING names an account). Run it with
//
//	go run ./examples/hsm
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/internal/softhsm"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hsm:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	r := &exenv.Report{W: w}
	fmt.Fprintln(w, "geoseal hsm: data keys wrapped by an AES key that never leaves a PKCS#11 token (SoftHSM2)")

	r.Step("HSM token")
	dir, err := os.MkdirTemp("", "geoseal-hsm-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pin := rand.Text()[:12] // a throw-away token's PIN
	tok, err := softhsm.New(dir, "geoseal-demo", pin)
	if err != nil {
		return err
	}
	if err := tok.CreateAESKey("kek-2026"); err != nil {
		return err
	}
	r.Line("token %q via %s, in %s", tok.Label, tok.Module, dir)
	r.Line("AES-256 key \"kek-2026\" generated in the token: sensitive, not extractable, wrap/unwrap only")

	// The PIN would come from GEOSEAL_PKCS11_PIN (left empty here: the
	// keyring reads that variable itself when PIN is empty).
	hsm, err := keyring.NewPKCS11(&keyring.PKCS11Options{
		Module:     tok.Module,
		TokenLabel: tok.Label,
		KeyLabel:   "kek-2026",
		PIN:        pin,
	})
	if err != nil {
		return err
	}
	defer hsm.Close()
	r.Line("keyring pkcs11 %s logged in", hsm.KeyID())

	r.Step("Storage")
	st, err := exenv.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Line("using %s", st.Where)
	// The container client, from the account's connection string (Open
	// put Azurite's there when none was given).
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), exenv.ContainerName("hsm"), nil)
	if err != nil {
		return err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	policy, err := region.LoadPolicy("itar")
	if err != nil {
		return err
	}
	guard, err := region.NewGuard(policy, region.Static(st.Primary, st.Secondary), nil)
	if err != nil {
		return err
	}
	client, err := blobstore.NewClient(cc, hsm, guard, nil)
	if err != nil {
		return err
	}

	r.Step("Upload, data key wrapped in the HSM")
	data := bytes.Repeat([]byte("rocket nozzle throat insert, C-C composite, drawing 4471-B\n"), 40_000)
	ec := keyring.Context{"program": "lunar-lander"}
	up, err := client.Upload(ctx, "nozzle/4471-B.txt", bytes.NewReader(data), &blobstore.UploadOptions{Context: ec})
	if err != nil {
		return err
	}
	r.Line("encrypted %d bytes into %d, stored as nozzle/4471-B.txt (context %s)", up.Size, up.EncryptedSize, exenv.FormatContext(ec))
	raw, err := cc.NewBlobClient("nozzle/4471-B.txt").DownloadStream(ctx, nil)
	if err != nil {
		return err
	}
	h, err := envelope.Inspect(raw.Body)
	raw.Body.Close()
	if err != nil {
		return err
	}
	if len(h.WrappedKeys) != 1 || h.WrappedKeys[0].Provider != keyring.ProviderPKCS11 {
		return exenv.Unexpected("the object's wrapped keys are %+v", h.WrappedKeys)
	}
	k := h.WrappedKeys[0]
	r.Line("header (inspected without a key): wrapped for %s %s with %s, %d bytes", k.Provider, k.KeyID, k.Algorithm, len(k.Ciphertext))

	r.Step("Download, data key unwrapped in the HSM")
	dl, err := client.Download(ctx, "nozzle/4471-B.txt", nil)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(dl.Body)
	dl.Body.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return exenv.Unexpected("the downloaded plaintext differs")
	}
	r.Line("%d bytes, identical", len(got))

	r.Step("Without the HSM, no key opens it")
	other, err := keyring.GenerateAESKey()
	if err != nil {
		return err
	}
	local, err := keyring.NewAES(other, nil)
	clear(other)
	if err != nil {
		return err
	}
	outsider, err := blobstore.NewClient(cc, local, guard, nil)
	if err != nil {
		return err
	}
	_, err = outsider.Download(ctx, "nozzle/4471-B.txt", nil)
	var nm *keyring.NoMatchError
	if !errors.As(err, &nm) {
		return exenv.Unexpected("a local key opened the HSM-wrapped object (err %v)", err)
	}
	r.Line("a local AES key: %v", err)

	fmt.Fprintln(w, "\nhsm: OK")
	return nil
}
