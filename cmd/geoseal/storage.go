package main

import (
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

const containerHelp = `Container (where the blobs are):

	--container NAME        the container (required)
	--account-url URL       https://ACCOUNT.blob.core.windows.net, with
	                        credentials from azidentity's default chain
	                        (environment, workload or managed identity, az
	                        login). Without it, the connection string in
	                        $AZURE_STORAGE_CONNECTION_STRING is used (Azurite's,
	                        for example).
`

// containerFlags locate a container, and in it a blob.
type containerFlags struct {
	container, blob, accountURL string
}

// register defines --container and --account-url, and --blob when the
// command names a blob.
func (f *containerFlags) register(fs *flag.FlagSet, withBlob bool) {
	fs.StringVar(&f.container, "container", "", "container name")
	fs.StringVar(&f.accountURL, "account-url", "", "blob service URL (default credential)")
	if withBlob {
		fs.StringVar(&f.blob, "blob", "", "blob name")
	}
}

// containerClient connects to the container.
func (e *environment) containerClient(f *containerFlags) (*container.Client, error) {
	if f.container == "" {
		return nil, usageErrorf("--container is required")
	}
	opts := &container.ClientOptions{ClientOptions: e.clientOptions(e.azure)}
	if f.accountURL != "" {
		u, err := url.Parse(f.accountURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, usageErrorf("--account-url %s: want https://ACCOUNT.blob.core.windows.net", quoteUntrusted(f.accountURL))
		}
		cred, err := e.credential()
		if err != nil {
			return nil, fmt.Errorf("credential for --account-url (azidentity default chain): %w", err)
		}
		return container.NewClient(strings.TrimSuffix(f.accountURL, "/")+"/"+url.PathEscape(f.container), cred, opts)
	}
	cs := e.getenv(envConnectionString)
	if cs == "" {
		return nil, usageErrorf("no storage account: give --account-url, or set $%s", envConnectionString)
	}
	return container.NewClientFromConnectionString(cs, f.container, opts)
}
