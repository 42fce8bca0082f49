package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// envConnectionString is the Azure CLI's and SDKs' variable for a storage
// connection string (Azurite's, for example).
const envConnectionString = "AZURE_STORAGE_CONNECTION_STRING"

// armClientOptions is a hook for tests, which answer ARM with armstorage's
// fake server.
var armClientOptions *arm.ClientOptions

// policyUnrestricted must be spelled out to write without export-control
// checks: forgetting --policy is an error, never a silent allow-all.
const policyUnrestricted = "unrestricted"

func init() {
	register(command{name: "put", summary: "encrypt a file and upload it to a blob, after the region guard allows the account", run: runPut, help: helpFor(putHelp)})
	register(command{name: "get", summary: "download and decrypt a blob (whole or a range)", run: runGet, help: helpFor(getHelp)})
	register(command{name: "rewrap", summary: "rotate the keys of one blob without re-encrypting it", run: runRewrap, help: helpFor(rewrapHelp)})
	register(command{name: "rewrap-all", summary: "rotate the keys of every geoseal blob in a container", run: runRewrapAll, help: helpFor(rewrapAllHelp)})
}

const containerHelp = `Container (where the blobs are):

	--container NAME        the container (required)
	--account-url URL       https://ACCOUNT.blob.core.windows.net, with
	                        credentials from azidentity's default chain
	                        (environment, workload or managed identity, az
	                        login). Without it, the connection string in
	                        $AZURE_STORAGE_CONNECTION_STRING is used (Azurite's,
	                        for example).
`

const guardHelp = `Region guard (asked before any byte is sent; see geoseal help region):

	--policy NAME           ear, itar, us-only, a policy of --override, or
	                        "unrestricted" to write WITHOUT export-control
	                        checks (for data under no export control; it must
	                        be spelled out)
	--primary REGION        the account's primary region, e.g. eastus, and
	--secondary REGION      its secondary if geo-replicated (GRS, RA-GRS, GZRS,
	                        RA-GZRS): you declare where the account is. Or
	--arm-account SUB/RG/ACCOUNT
	                        ask Azure Resource Manager (subscription id,
	                        resource group, account name) for the account's
	                        regions, SKU, failover state, object replication
	                        and settings, with the default credential; the
	                        vault of every --keyvault key is then located in
	                        that subscription too (armkeyvault)
	--keyvault-region REGION
	                        the region of the vault holding the --keyvault
	                        keys, declared (like --primary); its pair counts,
	                        as Key Vault replicates there
	--override FILE         a region/policy override file (geoseal-override/1)
`

var putHelp = `Usage:

	geoseal put --container NAME --blob NAME --in FILE [keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--context KEY=VALUE]... [--chunk-size N] [--create-container] [--json] [--quiet]

put asks the region guard whether the container's storage account may hold
data under --policy, then encrypts --in ("-": stdin) in this process and
uploads it as a geoseal object: the header in the first block, the body in
4 MiB blocks, the block list committed only when everything is staged (a
failed upload leaves the previous blob, or none). If the guard refuses, put
exits 3 with the guard's explanation and nothing is sent.

` + containerHelp + `
` + guardHelp + `
Keys (at least one; the data key is wrapped for each):

` + keyringHelp("") + `
Flags:

	--blob NAME             the blob name (default: the base name of --in)
	--in FILE               the plaintext, or - for stdin
	--context KEY=VALUE     encryption context pair (repeatable; in the clear)
	--chunk-size N          plaintext bytes per chunk (power of two, 4 KiB-16 MiB)
	--create-container      create the container if it does not exist
	--json                  print the result as JSON (blob, sizes, etag, decision)
	--quiet                 no progress report

Exit status: 0 uploaded, 3 refused by the region policy, 1 any other error.
`

var getHelp = `Usage:

	geoseal get --container NAME --blob NAME --out FILE [keys]
	        [--require-context KEY=VALUE]... [--offset N --length N]
	        [--format azure-cse-v2 [--key-id KID]] [--quiet]

get downloads the geoseal object in a blob and writes its plaintext to
--out ("-": stdout). Every chunk is authenticated before any of its bytes
are written; on any failure get exits 1 with a one-line reason and leaves no
--out file. With --offset/--length it fetches only the header and the
chunks of the range (plus the final chunk when the range reaches the end).
Reading stores nothing, so the region guard is not asked.

` + outHelp + `
` + containerHelp + `
Keys (at least one that can unwrap):

` + keyringHelp("") + `
Flags:

	--blob NAME                  the blob
	--out FILE                   where to write the plaintext, or - for stdout
	--require-context KEY=VALUE  refuse an object without this context pair
	--offset N, --length N       a plaintext range (default: all)
	--format FORMAT              geoseal (default): read geoseal objects only; or
	                             azure-cse-v2: read Azure client-side encryption
	                             v2 blobs too (the .NET, Java and Python SDKs'
	                             format, told apart by the blob's "encryptiondata"
	                             metadata), with one key: --key-file (32-byte
	                             A256KW key) or --rsa-private with --key-id, or a
	                             single --keyvault. With --require-context every
	                             CSE v2 blob is refused: the format has no context
	                             to check (nor any authenticated metadata), so it
	                             cannot hold the pairs required.
	--allow-cse-v2               the same as --format azure-cse-v2
	--key-id KID                 the id of --key-file or --rsa-private as a CSE v2
	                             blob's metadata names it
	--quiet                      no progress report

Exit status: 0, or 1 on any error.
`

var rewrapHelp = `Usage:

	geoseal rewrap --container NAME --blob NAME [keys] [new keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT) [--json]

rewrap rotates the key-encryption keys of one blob: it unwraps the object's
data key with the keys given, wraps it with the new keys (--to-*), and
replaces only the header block; no chunk is downloaded, re-encrypted or
uploaded. Afterwards only the new keys open the object. The commit is
conditional on the blob's ETag: a blob changed meanwhile is left alone. A
new header is a write, so the region guard is asked first.

Revoking a key takes more than a rewrap: snapshots and previous versions of
the blob keep the old header and still open with the old key, as do
soft-deleted copies and backups. Delete them (geoseal rewrap-all
--delete-snapshots), or disable the old key in Key Vault or the HSM.

` + containerHelp + `
` + guardHelp + `
Keys that open the object now:

` + keyringHelp("") + `
New keys (the object will be wrapped for exactly these):

` + keyringHelp("to-") + `
Flags:

	--blob NAME   the blob
	--json        print the result as JSON

Exit status: 0 rewrapped, 3 refused by the region policy, 1 any other error.
`

var rewrapAllHelp = `Usage:

	geoseal rewrap-all --container NAME [--prefix P] [keys] [new keys] --policy NAME
	        (--primary REGION [--secondary REGION] | --arm-account SUB/RG/ACCOUNT)
	        [--shard I/N] [--job NAME] [--kms-rate N] [--delete-snapshots] [--json]

rewrap-all does what geoseal rewrap does for every geoseal object in the
container whose name starts with --prefix: the rotation of a key-encryption
key, or the revocation of a recipient, across a container of any size.

For each blob it reads the header (one ranged GET); a blob already wrapped
for exactly the new keys is left alone, with no call to the KMS, so a rerun
costs one request per blob already done. Any other geoseal object is
rotated in four requests (the header, the block list, the new header, the
commit); the body is never read. A blob without geoseal metadata is
recognised by its first 13 bytes. Blobs that are not geoseal objects (plain,
or Azure client-side encryption) are left alone. A blob that fails does not
stop the others; each failure is printed.

Scale out with --shard: N workers given --shard 0/N to --shard N-1/N (a
Kubernetes Indexed Job, Azure Batch tasks, N shells) split the container by
a hash of the blob names, without talking to each other. With --job NAME,
each shard records its progress in the container (.geoseal/jobs/NAME/) after
every page of the listing, and running the same command again resumes after
the last record; a second worker given the same job and shard stops with an
error instead of doing the work twice.

Revoking a key takes more than a rotation: snapshots and previous versions
keep the header they were made with and still open with the old key
(rewrap-all reports each one; --delete-snapshots deletes them once their
blob is rotated), soft-deleted blobs and backups keep theirs until they
expire. Disable or delete the old key in Key Vault or the HSM when the
rotation is done: only that reaches every copy.

` + containerHelp + `
` + guardHelp + `
Keys that open the objects now:

` + keyringHelp("") + `
New keys (the objects will be wrapped for exactly these):

` + keyringHelp("to-") + `
Flags:

	--prefix P          only blobs whose names start with P
	--shard I/N         only the blobs of shard I of N (0 <= I < N)
	--job NAME          record progress under .geoseal/jobs/NAME/ and resume
	                    from it (letters, digits, '.', '-', '_')
	--kms-rate N        at most N keyring calls (unwrap or wrap) per second
	                    (0: no limit); whatever the rate, a KMS that throttles
	                    (429) makes the worker back off as a whole and retry
	--concurrency N     blobs rotated at once (default 16)
	--delete-snapshots  delete the snapshots and previous versions wrapped for
	                    other keys, once their blob is rotated (never by
	                    default)
	--json              JSON lines on stdout: one per blob, snapshot or
	                    version ({"blob", "outcome", ...}), then one
	                    {"summary": {...}}
	--quiet             no progress report

Outcomes: rotated, already-rotated, not-geoseal, failed, and for snapshots
and versions outside-keys or deleted.

Exit status: 0 no blob failed, 3 refused by the region policy, 1 if any blob
failed or on any other error (a job's shard run by another worker included).
`

// blobFlags locate a container and build the region guard.
type blobFlags struct {
	container, accountURL, blob         string
	policy, primary, secondary, armAcct string
	keyVaultRegion, override            string
}

func (b *blobFlags) registerContainer(fs *flag.FlagSet) {
	fs.StringVar(&b.container, "container", "", "container name")
	fs.StringVar(&b.accountURL, "account-url", "", "blob service URL (default credential)")
}

func (b *blobFlags) registerGuard(fs *flag.FlagSet) {
	fs.StringVar(&b.policy, "policy", "", "region policy, or unrestricted")
	fs.StringVar(&b.primary, "primary", "", "the account's primary region")
	fs.StringVar(&b.secondary, "secondary", "", "the account's secondary region, if geo-replicated")
	fs.StringVar(&b.armAcct, "arm-account", "", "SUBSCRIPTION/RESOURCE-GROUP/ACCOUNT to resolve with ARM")
	fs.StringVar(&b.keyVaultRegion, "keyvault-region", "", "declared region of the --keyvault keys' vault")
	fs.StringVar(&b.override, "override", "", "region/policy override file")
}

// containerClient connects to the container.
func (b *blobFlags) containerClient() (*container.Client, error) {
	if b.container == "" {
		return nil, errors.New("--container is required")
	}
	if b.accountURL != "" {
		u, err := url.Parse(b.accountURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("--account-url %q: want https://ACCOUNT.blob.core.windows.net", b.accountURL)
		}
		cred, err := azureCredential()
		if err != nil {
			return nil, fmt.Errorf("credential for --account-url (azidentity default chain): %w", err)
		}
		return container.NewClient(strings.TrimSuffix(b.accountURL, "/")+"/"+url.PathEscape(b.container), cred, nil)
	}
	cs := os.Getenv(envConnectionString)
	if cs == "" {
		return nil, fmt.Errorf("no storage account: give --account-url, or set $%s", envConnectionString)
	}
	return container.NewClientFromConnectionString(cs, b.container, nil)
}

// guard builds the region guard writes are checked with. A read-only
// command (get) passes write=false and gets an unrestricted guard, which the
// blob client never consults for reads. keyVaultURLs are the --keyvault keys
// the written data keys are wrapped for: their vaults are located with ARM
// when the account is, or declared with --keyvault-region.
func (b *blobFlags) guard(write bool, keyVaultURLs []string) (*region.Guard, error) {
	if !write {
		return region.NewGuard(region.Unrestricted(), region.Static("", ""), nil)
	}
	if b.policy == "" {
		return nil, errors.New(`--policy is required for writing: ear, itar, us-only, or "unrestricted" for data under no export control`)
	}
	cat, err := loadCatalog(b.override)
	if err != nil {
		return nil, err
	}
	var p *region.Policy
	if b.policy == policyUnrestricted {
		p = region.Unrestricted()
	} else if p, err = cat.Policy(b.policy); err != nil {
		return nil, err
	}
	var res region.Resolver
	var keyVaults []region.Resolver
	switch {
	case b.armAcct != "" && (b.primary != "" || b.secondary != ""):
		return nil, errors.New("give either --arm-account or --primary/--secondary, not both")
	case b.armAcct != "":
		parts := strings.Split(b.armAcct, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("--arm-account %q: want SUBSCRIPTION-ID/RESOURCE-GROUP/ACCOUNT", b.armAcct)
		}
		cred, err := azureCredential()
		if err != nil {
			return nil, fmt.Errorf("credential for --arm-account (azidentity default chain): %w", err)
		}
		client, err := armstorage.NewAccountsClient(parts[0], cred, armClientOptions)
		if err != nil {
			return nil, err
		}
		opts := &region.ARMOptions{Credential: cred, ClientOptions: armClientOptions}
		res = region.ARM(client, parts[1], parts[2], opts)
		if b.keyVaultRegion == "" {
			for _, u := range keyVaultURLs {
				keyVaults = append(keyVaults, region.KeyVaultARM(cred, parts[0], u, opts))
			}
		}
	case b.primary != "":
		res = region.Static(b.primary, b.secondary)
	default:
		return nil, errors.New("say where the account is: --primary REGION [--secondary REGION], or --arm-account SUB/RG/ACCOUNT")
	}
	if b.keyVaultRegion != "" {
		keyVaults = []region.Resolver{region.StaticKeyVault(b.keyVaultRegion)}
	}
	return region.NewGuard(p, res, &region.GuardOptions{Catalog: cat, KeyVaults: keyVaults})
}

// blobFail prints err on one line and returns 3 for a region refusal,
// 1 otherwise.
func blobFail(stderr io.Writer, cmd string, err error) int {
	var v *region.Violation
	if errors.As(err, &v) {
		fmt.Fprintf(stderr, "geoseal %s: nothing was sent. %s\n", cmd, oneLine(v))
		return exitRefused
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == string(bloberror.ContainerNotFound) {
		err = fmt.Errorf("%w (put --create-container creates it)", err)
	}
	return fail(stderr, cmd, exitUsage, explain(err))
}

// decisionJSON is the region decision as put and rewrap print it.
type decisionJSON struct {
	Allowed bool        `json:"allowed"`
	Policy  string      `json:"policy"`
	Reason  string      `json:"reason"`
	Rule    region.Rule `json:"rule"`
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func describeKeys(keys []keyring.WrappedKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s %s (%s)", quoteUntrusted(k.Provider), quoteUntrusted(k.KeyID), quoteUntrusted(k.Algorithm)))
	}
	return strings.Join(s, ", ")
}

func runPut(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "put"
	fs := flagSet(cmd, stderr, helpFor(putHelp))
	var b blobFlags
	b.registerContainer(fs)
	b.registerGuard(fs)
	fs.StringVar(&b.blob, "blob", "", "blob name")
	in := fs.String("in", "", "plaintext file, or - for stdin")
	var ec contextFlag
	fs.Var(&ec, "context", "encryption context KEY=VALUE (repeatable)")
	chunkSize := fs.Int("chunk-size", 0, "plaintext bytes per chunk")
	create := fs.Bool("create-container", false, "create the container if missing")
	asJSON := fs.Bool("json", false, "print JSON")
	quiet := fs.Bool("quiet", false, "no progress report")
	keys := keyringFlags{}
	keys.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if *in == "" {
		return usageError(stderr, cmd, "--in is required")
	}
	if b.blob == "" {
		if *in == "-" {
			return usageError(stderr, cmd, "--blob is required with --in -")
		}
		b.blob = filepath.Base(*in)
	}
	guard, err := b.guard(true, keys.keyVault)
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	cc, err := b.containerClient()
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	ctx, cancel := commandContext()
	defer cancel()
	// Ask the guard before anything else (the keyring included), so a
	// refusal costs nothing and says so; Upload asks again itself.
	if _, err := guard.CheckURL(ctx, cc.URL()); err != nil {
		return blobFail(stderr, cmd, err)
	}
	var cl closers
	defer cl.close()
	kr, err := keys.build(ctx, "encrypt", &cl)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	src, size, closeIn, err := openInput(*in, stdin)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	defer closeIn()
	if *create {
		if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return blobFail(stderr, cmd, err)
		}
	}
	client, err := blobstore.NewClient(cc, kr, guard, nil)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	p := newProgress(stderr, "uploading "+b.blob, "B", size, *quiet)
	resp, err := client.Upload(ctx, b.blob, progressReader{src, p}, &blobstore.UploadOptions{Context: ec.ctx, ChunkSize: *chunkSize})
	if err != nil {
		return blobFail(stderr, cmd, err)
	}
	p.done()
	d := resp.Decision
	if *asJSON {
		out := map[string]any{
			"container": b.container, "blob": b.blob, "url": cc.NewBlobClient(b.blob).URL(),
			"size": resp.Size, "encrypted_size": resp.EncryptedSize,
		}
		if resp.ETag != nil {
			out["etag"] = string(*resp.ETag)
		}
		if d != nil {
			out["decision"] = decisionJSON{d.Allowed, d.Policy, d.Reason, d.Rule}
		}
		printJSON(stdout, out)
		return exitOK
	}
	fmt.Fprintf(stdout, "uploaded %s (%d bytes, %d encrypted) to %s/%s\n", *in, resp.Size, resp.EncryptedSize, b.container, b.blob)
	if d != nil {
		fmt.Fprintf(stdout, "region guard: allowed under %s: %s\n", d.Policy, d.Reason)
	}
	return exitOK
}

func runGet(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "get"
	fs := flagSet(cmd, stderr, helpFor(getHelp))
	var b blobFlags
	b.registerContainer(fs)
	fs.StringVar(&b.blob, "blob", "", "blob name")
	out := fs.String("out", "", "plaintext file, or - for stdout")
	var req contextFlag
	fs.Var(&req, "require-context", "required context pair KEY=VALUE (repeatable)")
	offset := fs.Int64("offset", 0, "first plaintext byte")
	length := fs.Int64("length", -1, "plaintext bytes from --offset (default: to the end)")
	quiet := fs.Bool("quiet", false, "no progress report")
	format := fs.String("format", formatGeoseal, "geoseal, or azure-cse-v2 to read Azure CSE v2 blobs too")
	allowCSEv2 := fs.Bool("allow-cse-v2", false, "the same as --format azure-cse-v2")
	keyID := fs.String("key-id", "", "key id of --key-file or --rsa-private for Azure CSE v2 blobs")
	keys := keyringFlags{}
	keys.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if b.blob == "" || *out == "" {
		return usageError(stderr, cmd, "--blob and --out are required")
	}
	if *offset < 0 || *length < -1 {
		return usageError(stderr, cmd, "--offset and --length must not be negative")
	}
	readCSEv2 := *allowCSEv2
	switch *format {
	case formatCSEv2:
		readCSEv2 = true
	case formatGeoseal:
	default:
		return usageError(stderr, cmd, "unknown --format %q (want geoseal or azure-cse-v2)", *format)
	}
	if *keyID != "" && !readCSEv2 {
		return usageError(stderr, cmd, "--key-id needs --format azure-cse-v2")
	}
	cc, err := b.containerClient()
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	kr, err := keys.build(ctx, "decrypt", &cl)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	guard, err := b.guard(false, nil)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	// Blobs written with Azure client-side encryption v2 are read only when
	// asked for: the format authenticates none of its metadata and has no
	// context, and with an RSA key anyone holding the public key can write
	// one, so a blob swapped for one must not be read silently. A read
	// that requires context refuses them whatever the flags say (the blob
	// client does, with envelope.ErrContextMismatch).
	var opts0 *blobstore.ClientOptions
	if readCSEv2 && len(req.ctx) == 0 {
		_, resolver, err := cseKEK(ctx, &keys, *keyID, false)
		if err != nil {
			return fail(stderr, cmd, exitUsage, err)
		}
		opts0 = &blobstore.ClientOptions{CSEv2: resolver}
	}
	client, err := blobstore.NewClient(cc, kr, guard, opts0)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	dst, err := createOutput(*out, stdout)
	if err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	defer dst.abort()
	opts := &blobstore.DownloadOptions{RequireContext: req.ctx}
	if *offset != 0 || *length >= 0 {
		if *length == 0 {
			// A Range count of 0 means "to the end"; an empty range is
			// empty.
			if err := dst.commit(); err != nil {
				return fail(stderr, cmd, exitUsage, err)
			}
			return exitOK
		}
		opts.Range = blob.HTTPRange{Offset: *offset, Count: max(*length, 0)}
	}
	dl, err := client.Download(ctx, b.blob, opts)
	if err != nil {
		return blobFail(stderr, cmd, err)
	}
	r := dl.Body
	defer r.Close()
	p := newProgress(stderr, "downloading "+b.blob, "B", -1, *quiet)
	if _, err := copyContext(ctx, dst, progressReader{r, p}); err != nil {
		return blobFail(stderr, cmd, err)
	}
	if err := dst.commit(); err != nil {
		return fail(stderr, cmd, exitUsage, err)
	}
	p.done()
	return exitOK
}

// rewrapSetup parses the flags common to rewrap and rewrap-all and builds
// the client (opened with the current keys) and the new keys.
func rewrapSetup(ctx context.Context, cmd string, b *blobFlags, keys, to *keyringFlags, cl *closers, stderr io.Writer) (*blobstore.Client, keyring.Wrapper, int) {
	// The new header is wrapped for the new keys: theirs are the vaults
	// that will hold the means of decryption.
	guard, err := b.guard(true, to.keyVault)
	if err != nil {
		return nil, nil, usageError(stderr, cmd, "%s", oneLine(err))
	}
	cc, err := b.containerClient()
	if err != nil {
		return nil, nil, usageError(stderr, cmd, "%s", oneLine(err))
	}
	if _, err := guard.CheckURL(ctx, cc.URL()); err != nil {
		return nil, nil, blobFail(stderr, cmd, err)
	}
	kr, err := keys.build(ctx, "decrypt", cl)
	if err != nil {
		return nil, nil, fail(stderr, cmd, exitUsage, err)
	}
	newKR, err := to.build(ctx, "encrypt", cl)
	if err != nil {
		return nil, nil, fail(stderr, cmd, exitUsage, fmt.Errorf("new keys: %w", err))
	}
	client, err := blobstore.NewClient(cc, kr, guard, nil)
	if err != nil {
		return nil, nil, fail(stderr, cmd, exitUsage, err)
	}
	return client, newKR, exitOK
}

func runRewrap(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "rewrap"
	fs := flagSet(cmd, stderr, helpFor(rewrapHelp))
	var b blobFlags
	b.registerContainer(fs)
	b.registerGuard(fs)
	fs.StringVar(&b.blob, "blob", "", "blob name")
	asJSON := fs.Bool("json", false, "print JSON")
	keys, to := keyringFlags{}, keyringFlags{prefix: "to-"}
	keys.register(fs)
	to.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if b.blob == "" {
		return usageError(stderr, cmd, "--blob is required")
	}
	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	client, newKR, code := rewrapSetup(ctx, cmd, &b, &keys, &to, &cl, stderr)
	if client == nil {
		return code
	}
	resp, err := client.Rewrap(ctx, b.blob, newKR, nil)
	if err != nil {
		return blobFail(stderr, cmd, err)
	}
	if *asJSON {
		var wk []wrappedKeyInfo
		for _, k := range resp.WrappedKeys {
			wk = append(wk, wrappedKeyInfo{k.Provider, k.KeyID, k.Algorithm, len(k.Ciphertext)})
		}
		printJSON(stdout, map[string]any{"container": b.container, "blob": b.blob, "header_size": resp.HeaderSize, "wrapped_keys": wk})
		return exitOK
	}
	fmt.Fprintf(stdout, "rewrapped %s/%s: new %d-byte header, wrapped for %s\n", b.container, b.blob, resp.HeaderSize, describeKeys(resp.WrappedKeys))
	return exitOK
}

func runRewrapAll(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const cmd = "rewrap-all"
	fs := flagSet(cmd, stderr, helpFor(rewrapAllHelp))
	var b blobFlags
	b.registerContainer(fs)
	b.registerGuard(fs)
	prefix := fs.String("prefix", "", "only blobs whose names start with this")
	shard := fs.String("shard", "", "I/N: only shard I of N")
	job := fs.String("job", "", "record progress under .geoseal/jobs/NAME/ and resume from it")
	kmsRate := fs.Float64("kms-rate", 0, "keyring calls per second (0: no limit)")
	concurrency := fs.Int("concurrency", 0, "blobs at once")
	deleteSnapshots := fs.Bool("delete-snapshots", false, "delete snapshots and versions under other keys once their blob is rotated")
	asJSON := fs.Bool("json", false, "JSON lines")
	quiet := fs.Bool("quiet", false, "no progress report")
	keys, to := keyringFlags{}, keyringFlags{prefix: "to-"}
	keys.register(fs)
	to.register(fs)
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	si, sn, err := parseShard(*shard)
	if err != nil {
		return usageError(stderr, cmd, "%s", oneLine(err))
	}
	ctx, cancel := commandContext()
	defer cancel()
	var cl closers
	defer cl.close()
	client, newKR, code := rewrapSetup(ctx, cmd, &b, &keys, &to, &cl, stderr)
	if client == nil {
		return code
	}
	p := newProgress(stderr, "rotating "+b.container, "blobs", -1, *quiet || *asJSON)
	out := newResultWriter(stdout, stderr, cmd, *asJSON)
	resp, err := client.RewrapAll(ctx, newKR, &blobstore.RewrapAllOptions{
		Prefix:          *prefix,
		Shard:           si,
		Shards:          sn,
		Job:             *job,
		KMSRate:         *kmsRate,
		Concurrency:     *concurrency,
		DeleteSnapshots: *deleteSnapshots,
		Results: func(r blobstore.WalkResult) {
			p.add(1)
			out.result(r)
		},
	})
	p.done()
	var v *region.Violation
	if errors.As(err, &v) {
		return blobFail(stderr, cmd, err)
	}
	summary := rewrapAllSummary{
		Container: b.container, Prefix: *prefix, Shard: *shard, Job: *job,
		Rotated: resp.Rotated, AlreadyRotated: resp.AlreadyRotated, NotGeoseal: resp.NotGeoseal, Failed: resp.Failed,
		OutsideKeys: resp.OutsideKeys, Deleted: resp.Deleted, Resumed: resp.Resumed, Done: resp.Done,
	}
	if *asJSON {
		out.json(map[string]any{"summary": summary})
	} else {
		fmt.Fprintf(stdout, "%s\n", summary)
	}
	if err != nil && resp.Failed == 0 {
		return blobFail(stderr, cmd, err)
	}
	if err != nil {
		return exitUsage
	}
	return exitOK
}

// rewrapAllSummary is the last line of rewrap-all: the counts of the run
// (of the whole job, for a resumed one).
type rewrapAllSummary struct {
	Container      string `json:"container"`
	Prefix         string `json:"prefix"`
	Shard          string `json:"shard,omitempty"`
	Job            string `json:"job,omitempty"`
	Rotated        int64  `json:"rotated"`
	AlreadyRotated int64  `json:"already_rotated"`
	NotGeoseal     int64  `json:"not_geoseal"`
	Failed         int64  `json:"failed"`
	OutsideKeys    int64  `json:"outside_keys"`
	Deleted        int64  `json:"deleted"`
	Resumed        bool   `json:"resumed"`
	Done           bool   `json:"done"`
}

func (s rewrapAllSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotated %d blobs in %s; %d already rotated; %d not geoseal objects; %d failed", s.Rotated, s.Container, s.AlreadyRotated, s.NotGeoseal, s.Failed)
	if s.OutsideKeys+s.Deleted > 0 {
		fmt.Fprintf(&b, "; %d snapshots or versions wrapped for other keys", s.OutsideKeys)
		if s.Deleted > 0 {
			fmt.Fprintf(&b, ", %d deleted", s.Deleted)
		}
	}
	if s.Job != "" {
		state := "in progress"
		if s.Done {
			state = "done"
		}
		fmt.Fprintf(&b, " (job %s, shard %s: %s", s.Job, cmpOr(s.Shard, "0/1"), state)
		if s.Resumed {
			b.WriteString(", resumed")
		}
		b.WriteString(")")
	}
	return b.String()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseShard reads --shard I/N ("" is the whole container).
func parseShard(s string) (shard, shards int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	i, n, ok := strings.Cut(s, "/")
	shard, err1 := strconv.Atoi(i)
	shards, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || shards < 1 || shard < 0 || shard >= shards || shards > blobstore.MaxShards {
		return 0, 0, fmt.Errorf("--shard %s: want I/N with 0 <= I < N <= %d", quoteUntrusted(s), blobstore.MaxShards)
	}
	return shard, shards, nil
}

// A resultWriter prints the outcomes of a container-wide command as they
// come: JSON lines, or for people the failures on stderr, and the blobs
// skipped and the snapshots under other keys on stdout (blob names quoted: whoever can
// write to the container chooses them).
type resultWriter struct {
	stdout, stderr io.Writer
	cmd            string
	asJSON         bool
	enc            *json.Encoder
}

func newResultWriter(stdout, stderr io.Writer, cmd string, asJSON bool) *resultWriter {
	return &resultWriter{stdout: stdout, stderr: stderr, cmd: cmd, asJSON: asJSON, enc: json.NewEncoder(stdout)}
}

// resultLine is one line of --json.
type resultLine struct {
	Blob      string   `json:"blob"`
	Snapshot  string   `json:"snapshot,omitempty"`
	VersionID string   `json:"version_id,omitempty"`
	Outcome   string   `json:"outcome"`
	Format    string   `json:"format,omitempty"`
	KeyIDs    []string `json:"key_ids,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (w *resultWriter) json(v any) { w.enc.Encode(v) }

func (w *resultWriter) result(r blobstore.WalkResult) {
	if w.asJSON {
		line := resultLine{Blob: r.Blob, Snapshot: r.Snapshot, VersionID: r.VersionID, Outcome: r.Outcome, Format: r.Format, KeyIDs: r.KeyIDs}
		if r.Err != nil {
			line.Error = oneLine(explain(r.Err))
		}
		w.enc.Encode(line)
		return
	}
	name := quoteUntrusted(r.Blob)
	switch {
	case r.Snapshot != "":
		name += " snapshot " + quoteUntrusted(r.Snapshot)
	case r.VersionID != "":
		name += " version " + quoteUntrusted(r.VersionID)
	}
	switch r.Outcome {
	case blobstore.OutcomeNotGeoseal:
		fmt.Fprintf(w.stdout, "  skipped %s\n", name)
	case blobstore.OutcomeFailed:
		fmt.Fprintf(w.stderr, "geoseal %s: %s: %s\n", w.cmd, name, oneLine(explain(r.Err)))
	case blobstore.OutcomeOutsideKeys:
		fmt.Fprintf(w.stdout, "  %s is still wrapped for other keys (%s)\n", name, quoteUntrusted(strings.Join(r.KeyIDs, ", ")))
	case blobstore.OutcomeDeleted:
		fmt.Fprintf(w.stdout, "  %s deleted: it was wrapped for other keys\n", name)
	}
}
