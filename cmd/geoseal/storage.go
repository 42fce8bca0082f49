package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
)

// Addressing. A command names a container, or a blob, as azcopy does, by
// URL:
//
//	https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB      host-style
//	http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB             path-style (an
//	                                                          IP address or
//	                                                          localhost: the emulator)
//
// with a SAS as its query, or with the flags of earlier releases
// (--account-url, --container, --blob). The credential is the first of
// these that applies, in the order the Azure CLI tries them: a SAS in the
// URL; $AZURE_STORAGE_CONNECTION_STRING; $AZURE_STORAGE_ACCOUNT with
// $AZURE_STORAGE_KEY or $AZURE_STORAGE_SAS_TOKEN; azidentity's default
// chain. A connection string or account for another account than the
// URL's does not apply.

const containerHelp = `Where (a URL, or the flags):

	URL                     a blob or container URL, host-style
	                        (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB)
	                        or path-style as the emulator serves it
	                        (http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB),
	                        optionally with a SAS as its query (?sv=...&sig=...)
	--container NAME        the container, in the account of $` + envConnectionString + `
	                        or $` + envAccount + `, or of --account-url
	--account-url URL       the account's blob service, https://ACCOUNT.blob.core.windows.net
	                        (optionally with a SAS)

	Credentials, the first that applies: a SAS in the URL;
	$` + envConnectionString + `; $` + envAccount + ` with $` + envAccountKey + `
	or $` + envSASToken + `; azidentity's default chain (environment,
	workload or managed identity, az login). Signatures (sig=) are redacted
	in every message.
`

// A location is where a command reads or writes: a storage account's blob
// service, a container in it, perhaps a blob, perhaps a SAS.
type location struct {
	service   string // scheme://host[/account], no trailing slash, no query; "" when only a container is named
	account   string
	container string
	blob      string
	sas       string // the URL's query, when it is a SAS, without "?"
}

// parseBlobURL parses a blob, container or service URL (see Addressing).
// The blob name is the rest of the path after the container, '/' and all.
func parseBlobURL(raw string) (location, error) {
	const want = "want https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB or, for the emulator, http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB"
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, usageErrorf("%s is not a URL: %s", quoteUntrusted(redactSAS(raw)), want)
	}
	shown := quoteUntrusted(redactSAS(raw))
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.Opaque != "":
		return location{}, usageErrorf("%s: %s", shown, want)
	case u.User != nil:
		return location{}, usageErrorf("%s: credentials in a URL go in its SAS query, not before the host", shown)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return location{}, usageErrorf("%s: escape '#' in a blob name as %%23", shown)
	}
	loc := location{sas: u.RawQuery}
	p, host := strings.TrimPrefix(u.Path, "/"), strings.ToLower(u.Host)
	if pathStyle(u.Hostname()) {
		loc.account, p, _ = strings.Cut(p, "/")
		if loc.account == "" {
			return location{}, usageErrorf("%s: a path-style URL names the account first: http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB", shown)
		}
		loc.service = u.Scheme + "://" + host + "/" + loc.account
	} else {
		loc.account, _, _ = strings.Cut(host, ".")
		loc.service = u.Scheme + "://" + host
	}
	loc.container, loc.blob, _ = strings.Cut(p, "/")
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return location{}, usageErrorf("%s: the query is malformed", shown)
	}
	if err := checkSAS(q); err != nil {
		return location{}, usageErrorf("%s: %v", shown, err)
	}
	return loc, nil
}

// pathStyle reports whether host addresses an account in the URL's path:
// an IP address or localhost, as the emulator is reached.
func pathStyle(host string) bool {
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost")
}

// checkSAS accepts an empty query or a SAS (it has a signature), and
// nothing else: a snapshot or version query names a copy geoseal does not
// address, and another query is a mistake better said than ignored.
func checkSAS(q url.Values) error {
	if len(q) == 0 {
		return nil
	}
	for k := range q {
		switch strings.ToLower(k) {
		case "snapshot", "versionid":
			return fmt.Errorf("snapshots and versions are not addressed by URL; give the base blob")
		}
	}
	if q.Get("sig") == "" {
		return errors.New("the query is not a SAS (it has no sig=)")
	}
	return nil
}

func (l location) containerURL() string {
	return l.service + "/" + url.PathEscape(l.container)
}

// blobURL is the URL of the blob name, without the SAS: what output shows.
func (l location) blobURL(name string) string {
	escaped := strings.Split(name, "/")
	for i := range escaped {
		escaped[i] = url.PathEscape(escaped[i])
	}
	return l.containerURL() + "/" + strings.Join(escaped, "/")
}

// containerFlags are the flags of earlier releases that name a container
// and a blob, for commands that also take a URL.
type containerFlags struct {
	container, blob, accountURL string
}

// register defines --container and --account-url, and --blob when the
// command names a blob.
func (f *containerFlags) register(fs *flag.FlagSet, withBlob bool) {
	fs.StringVar(&f.container, "container", "", "container name")
	fs.StringVar(&f.accountURL, "account-url", "", "blob service URL, optionally with a SAS")
	if withBlob {
		fs.StringVar(&f.blob, "blob", "", "blob name")
	}
}

// locate returns the location the command names: rawURL, the URL argument
// (if any), or the flags.
func (f *containerFlags) locate(rawURL string) (location, error) {
	if rawURL != "" {
		if f.container != "" || f.blob != "" || f.accountURL != "" {
			return location{}, usageErrorf("give a URL or --container, --blob and --account-url, not both")
		}
		return parseBlobURL(rawURL)
	}
	for _, v := range []struct{ flag, value string }{{"--container", f.container}, {"--blob", f.blob}} {
		if strings.Contains(v.value, "://") {
			return location{}, usageErrorf("%s takes a name, not a URL; give the URL as an argument instead", v.flag)
		}
	}
	var loc location
	if f.accountURL != "" {
		var err error
		if loc, err = parseBlobURL(f.accountURL); err != nil {
			return location{}, err
		}
		if loc.container != "" {
			return location{}, usageErrorf("--account-url names the account's service, without a container: https://ACCOUNT.blob.core.windows.net")
		}
	}
	loc.container, loc.blob = f.container, f.blob
	return loc, nil
}

// locateArg is locate for a command whose one argument, if any, is the
// URL.
func (f *containerFlags) locateArg(args []string) (location, error) {
	if err := positionalArgs(args, 1, "a URL"); err != nil {
		return location{}, err
	}
	rawURL := ""
	if len(args) == 1 {
		rawURL = args[0]
	}
	return f.locate(rawURL)
}

// A store is an opened container: its client, and what messages about it
// need.
type store struct {
	cc  *container.Client
	loc location
	// credential says where the credential came from, for messages.
	credential string
	// skipped says which credential sources did not apply, and why.
	skipped []string
}

// openContainer connects to the container of loc with the first
// credential that applies (see Addressing).
func (e *environment) openContainer(loc location) (*store, error) {
	if loc.container == "" {
		return nil, usageErrorf("no container given: give a container or blob URL, or --container")
	}
	opts := &container.ClientOptions{ClientOptions: e.clientOptions(e.azure)}
	s := &store{loc: loc}
	var err error
	if loc.sas != "" {
		s.credential = "the SAS in the URL"
		s.cc, err = container.NewClientWithNoCredential(loc.containerURL()+"?"+loc.sas, opts)
		return s, err
	}
	if cs := e.getenv(envConnectionString); cs != "" {
		cc, err := container.NewClientFromConnectionString(cs, loc.container, opts)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", envConnectionString, err)
		}
		if loc.service == "" || sameService(cc.URL(), loc.service) {
			s.credential, s.cc = "$"+envConnectionString, cc
			s.loc.service = serviceOf(cc.URL())
			return s, nil
		}
		s.skipped = append(s.skipped, "$"+envConnectionString+" is another account's")
	}
	if acct := e.getenv(envAccount); acct != "" {
		if loc.service == "" {
			s.loc.service, s.loc.account = "https://"+strings.ToLower(acct)+".blob.core.windows.net", acct
		}
		if !strings.EqualFold(s.loc.account, acct) {
			s.skipped = append(s.skipped, "$"+envAccount+" is another account")
		} else if key := e.getenv(envAccountKey); key != "" {
			cred, err := container.NewSharedKeyCredential(acct, key)
			if err != nil {
				return nil, fmt.Errorf("$%s: %w", envAccountKey, err)
			}
			s.credential = "$" + envAccount + " and $" + envAccountKey
			s.cc, err = container.NewClientWithSharedKeyCredential(s.loc.containerURL(), cred, opts)
			return s, err
		} else if sas := strings.TrimPrefix(e.getenv(envSASToken), "?"); sas != "" {
			s.credential = "$" + envAccount + " and $" + envSASToken
			s.cc, err = container.NewClientWithNoCredential(s.loc.containerURL()+"?"+sas, opts)
			return s, err
		}
	}
	if s.loc.service == "" {
		return nil, usageErrorf("no storage account: give a blob URL or --account-url, or set $%s or $%s", envConnectionString, envAccount)
	}
	cred, err := e.azureCredential("storage account " + s.loc.account)
	if err != nil {
		return nil, err
	}
	s.credential = "azidentity's default chain"
	s.cc, err = container.NewClient(s.loc.containerURL(), cred, opts)
	return s, err
}

// serviceOf returns the blob service of a container or blob URL, as
// location.service writes it.
func serviceOf(raw string) string {
	loc, err := parseBlobURL(strings.SplitN(raw, "?", 2)[0])
	if err != nil {
		return ""
	}
	return loc.service
}

// sameService reports whether the container URL u is in the service.
func sameService(u, service string) bool {
	return strings.EqualFold(serviceOf(u), service)
}

// fail attaches the store's names and credential to the error of a
// request, for its message.
func (s *store) fail(err error) error {
	if err == nil {
		return nil
	}
	return s.blobError(err)
}

func (s *store) blobError(err error) *blobError {
	return &blobError{container: s.loc.container, blob: s.loc.blob, credential: s.credential, skipped: s.skipped, err: err}
}

// azureCredential returns the environment's Microsoft Entra ID credential
// for what ("--keyvault URL"), whose failures say what it was for.
func (e *environment) azureCredential(what string) (azcore.TokenCredential, error) {
	cred, err := e.credential()
	if err != nil {
		return nil, &credentialError{what: what, err: err}
	}
	return namedCredential{cred, what}, nil
}

// namedCredential wraps the errors of a credential in a credentialError.
type namedCredential struct {
	azcore.TokenCredential
	what string
}

func (c namedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil {
		err = &credentialError{what: c.what, err: err}
	}
	return t, err
}

// A credentialError is a Microsoft Entra ID credential that could not
// give a token. azidentity's explanation of each credential it tried is
// long: the line says what to do, --verbose prints it.
type credentialError struct {
	what string
	err  error
}

func (e *credentialError) Error() string {
	return "no Microsoft Entra ID token for " + e.what + ": " + e.err.Error()
}
func (e *credentialError) Unwrap() error { return e.err }

// openKeyless connects to the container of loc for a command that opens
// no object (ls, rm), with a blob client that holds no key.
func (e *environment) openKeyless(loc location) (*blobstore.Client, *store, error) {
	s, err := e.openContainer(loc)
	if err != nil {
		return nil, nil, err
	}
	client, err := blobstore.NewClient(s.cc, noKeys{}, readGuard(), nil)
	return client, s, err
}

// noKeys is the keyring of the commands that open no object (ls, rm,
// audit): the blob client requires one, and this one refuses every use.
type noKeys struct{}

var errNoKeys = errors.New("this command opens no object and holds no key")

func (noKeys) Wrap(context.Context, []byte, keyring.Context) ([]keyring.WrappedKey, error) {
	return nil, errNoKeys
}

func (noKeys) Unwrap(context.Context, []keyring.WrappedKey, keyring.Context) ([]byte, error) {
	return nil, errNoKeys
}
