// Command keyvault keeps the key-encryption key in Azure Key Vault (or a
// Managed HSM): an RSA key whose private half never leaves the vault.
// Writing costs no round trip (the data key is wrapped locally with the
// vault key's public half, RSA-OAEP-256); reading asks the vault to unwrap,
// and a cache in front of the keyring saves the repeated calls. Rotating the
// key in the vault does not strand the objects written before.
//
// Without configuration it runs against geoseal's Key Vault test server
// (internal/kvtest: the keys REST API with real crypto, reached through the
// real azkeys client) and Azurite. To use a real vault, set
// GEOSEAL_KEYVAULT_KEY_URL to https://VAULT.vault.azure.net/keys/NAME (an
// RSA key the default Azure credential may get, wrap and unwrap with); the
// rotation step then only runs against the test server. Run it with
//
//	go run ./examples/keyvault
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// envKeyURL names a real Key Vault key to use instead of the test server.
const envKeyURL = "GEOSEAL_KEYVAULT_KEY_URL"

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "keyvault:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) error {
	r := &exenv.Report{W: w}
	fmt.Fprintln(w, "geoseal keyvault: data keys wrapped by an Azure Key Vault RSA key")

	r.Step("Key Vault")
	var (
		kr  *keyring.KeyVault
		err error
		kv  *kvtest.Server
	)
	if url := os.Getenv(envKeyURL); url != "" {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return err
		}
		if kr, err = keyring.NewKeyVault(ctx, url, cred, nil); err != nil {
			return err
		}
		r.Line("real vault key from $%s", envKeyURL)
	} else {
		if kv, err = kvtest.Start(); err != nil {
			return err
		}
		defer kv.Close()
		kv.CreateRSAKey("geoseal-kek", 3072)
		kr, err = keyring.NewKeyVault(ctx, kv.KeyURL("geoseal-kek"), kv.Credential(),
			&keyring.KeyVaultOptions{ClientOptions: kv.ClientOptions()})
		if err != nil {
			return err
		}
		r.Line("Key Vault test server at %s (keys REST API, bearer challenge, real RSA-OAEP-256)", kv.URL)
	}
	r.Line("key %s", exenv.Short(kr.KeyID()))
	// The cache saves unwrap round trips: each costs latency, money and
	// throttling headroom. Entries expire after MaxAge, which bounds how
	// long a key disabled in the vault keeps working here.
	cached := keyring.NewCache(kr, nil)

	r.Step("Storage")
	st, err := exenv.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Line("using %s", st.Where)
	// The container client, from the account's connection string (Open
	// put Azurite's there when none was given).
	cc, err := container.NewClientFromConnectionString(os.Getenv("AZURE_STORAGE_CONNECTION_STRING"), exenv.ContainerName("keyvault"), nil)
	if err != nil {
		return err
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	policy, err := region.LoadPolicy("us-only")
	if err != nil {
		return err
	}
	guard, err := region.NewGuard(policy, region.Static(st.Primary, st.Secondary), nil)
	if err != nil {
		return err
	}
	client, err := blobstore.NewClient(cc, cached, guard, nil)
	if err != nil {
		return err
	}

	r.Step("Upload: the data key is wrapped locally with the vault key's public half")
	data := bytes.Repeat([]byte("hypersonic inlet CFD results, Mach 6.2, run 118\n"), 60_000)
	resetCounts(kv)
	up, err := client.Upload(ctx, "cfd/run-118.csv", bytes.NewReader(data), nil)
	if err != nil {
		return err
	}
	r.Line("encrypted %d bytes into %d, stored as cfd/run-118.csv", up.Size, up.EncryptedSize)
	if kv != nil {
		c := kv.Counts()
		if c.WrapKey != 0 || c.UnwrapKey != 0 {
			return exenv.Unexpected("the upload made %d wrap and %d unwrap calls to the vault", c.WrapKey, c.UnwrapKey)
		}
		r.Line("vault calls during the upload: wrapkey %d, unwrapkey %d", c.WrapKey, c.UnwrapKey)
	}

	r.Step("Download twice: the vault unwraps once, the cache serves the second")
	for i := range 2 {
		dl, err := client.Download(ctx, "cfd/run-118.csv", nil)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(dl.Body)
		dl.Body.Close()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return exenv.Unexpected("download %d differs", i+1)
		}
	}
	if kv != nil {
		if c := kv.Counts(); c.UnwrapKey != 1 {
			return exenv.Unexpected("two downloads made %d unwrap calls, want 1", c.UnwrapKey)
		}
		r.Line("both downloads identical; vault unwrapkey calls: 1")
	} else {
		r.Line("both downloads identical")
	}

	if kv != nil {
		r.Step("Rotate the key in the vault")
		newVersion := kv.RotateKey("geoseal-kek")
		r.Line("new current version %s", exenv.Short(newVersion))
		// A fresh keyring (no cache) wraps with the new version and still
		// unwraps objects wrapped with the old one.
		fresh, err := keyring.NewKeyVault(ctx, kv.KeyURL("geoseal-kek"), kv.Credential(),
			&keyring.KeyVaultOptions{ClientOptions: kv.ClientOptions()})
		if err != nil {
			return err
		}
		client2, err := blobstore.NewClient(cc, fresh, guard, nil)
		if err != nil {
			return err
		}
		dl, err := client2.Download(ctx, "cfd/run-118.csv", nil)
		if err != nil {
			return exenv.Unexpected("the object written before the rotation does not open: %v", err)
		}
		got, err := io.ReadAll(dl.Body)
		dl.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			return exenv.Unexpected("the object written before the rotation differs (%v)", err)
		}
		r.Line("the object wrapped with the old version still opens: the vault unwraps with the version it names")
		r.Line("new objects are wrapped with %s", exenv.Short(fresh.KeyID()))
	}

	fmt.Fprintln(w, "\nkeyvault: OK")
	return nil
}

func resetCounts(kv *kvtest.Server) {
	if kv != nil {
		kv.ResetCounts()
	}
}
