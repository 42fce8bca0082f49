package main

import (
	"io"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"golang.org/x/term"
)

// An environment is everything a command takes from the world outside it:
// its streams, its environment variables, how it reaches Azure and how it
// reports progress. main builds the real one (systemEnvironment); tests
// build their own, so no package variable is a hook a test must patch.
//
// The dispatcher copies the environment for each invocation and records the
// flags every command shares (common), so a run method reads --quiet or
// --timeout from env rather than from its own fields.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	// getenv looks up an environment variable; "" means unset.
	getenv func(string) string

	// credential returns the Microsoft Entra ID credential of Key Vault,
	// Azure Resource Manager, and storage accounts that no key or SAS
	// opens: azidentity's default chain.
	credential func() (azcore.TokenCredential, error)

	// azure are the options every Azure client of a command starts from
	// (a test sets a Transport); the command adds its retry settings.
	// keyVault and arm, when set, replace them for Key Vault and Azure
	// Resource Manager clients: tests answer those with internal/kvtest
	// and armstorage's fake server, which need their own transports.
	azure    azcore.ClientOptions
	keyVault *azkeys.ClientOptions
	arm      *arm.ClientOptions

	// progress paces progress reports; terminal tells a terminal from a
	// file or pipe.
	progress progressTiming
	terminal func(io.Writer) bool

	// common holds the flags every command takes, once parsed.
	common commonFlags
}

// systemEnvironment is the environment of the geoseal process.
func systemEnvironment() *environment {
	return &environment{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		credential: func() (azcore.TokenCredential, error) {
			return azidentity.NewDefaultAzureCredential(nil)
		},
		progress: defaultProgressTiming,
		terminal: isTerminal,
	}
}

// isTerminal reports whether w is a terminal. Being a character device is
// not enough: /dev/null is one too.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Environment variables geoseal reads. The GEOSEAL_ defaults stand in for
// flags users repeat on every command; a flag given wins (see envDefaults).
const (
	envPolicy    = "GEOSEAL_POLICY"
	envPrimary   = "GEOSEAL_PRIMARY"
	envSecondary = "GEOSEAL_SECONDARY"
	envKeyFile   = "GEOSEAL_KEY_FILE"
	envKeyVault  = "GEOSEAL_KEYVAULT"
	// envPKCS11PIN holds the PKCS#11 user PIN: never on the command line,
	// where every user of the host can read it.
	envPKCS11PIN = "GEOSEAL_PKCS11_PIN"

	// The Azure CLI's and SDKs' storage credentials, in the order tried.
	envConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	envAccount          = "AZURE_STORAGE_ACCOUNT"
	envAccountKey       = "AZURE_STORAGE_KEY"
	envSASToken         = "AZURE_STORAGE_SAS_TOKEN"
)

// envHelp documents the environment variables in `geoseal --help`.
var envHelp = []struct{ name, text string }{
	{envPolicy, "--policy of put, rewrap, rewrap-all and region check"},
	{envPrimary + ", " + envSecondary, "--primary and --secondary (together: either flag, or\n--arm-account, replaces both)"},
	{envKeyFile, "--key-file, when no key flag is given"},
	{envKeyVault, "--keyvault, when no key flag is given (with " + envKeyFile + ",\nboth keys are used)"},
	{envPKCS11PIN, "the PKCS#11 user PIN (--pkcs11-* flags)"},
	{envConnectionString, "the storage account and its key or SAS, for a URL\nwithout a SAS (Azurite's, for example)"},
	{envAccount + " with " + envAccountKey + " or " + envSASToken, "the\naccount and its key or SAS, when no connection string is set"},
	{"AZURE_CLIENT_ID, AZURE_TENANT_ID, ...", "azidentity's default credential chain\n(environment, workload or managed identity, az login), for\nKey Vault, --arm-account and storage no key or SAS opens"},
	{"GODEBUG=fips140=on|only", "FIPS 140-3 mode; \"only\" refuses what is not approved"},
}

// clientOptions returns the Azure client options of one invocation: the
// environment's, with a per-try timeout (--try-timeout) and a policy that
// reports retries on stderr (unless --quiet).
func (e *environment) clientOptions(base azcore.ClientOptions) azcore.ClientOptions {
	o := base
	o.Retry.TryTimeout = e.common.tryTimeout
	o.PerRetryPolicies = append(append([]policy.Policy(nil), o.PerRetryPolicies...), e.retryNotices(o.Retry))
	return o
}

// keyVaultOptions are the options of a Key Vault client.
func (e *environment) keyVaultOptions() *azkeys.ClientOptions {
	o := &azkeys.ClientOptions{ClientOptions: e.azure}
	if e.keyVault != nil {
		*o = *e.keyVault
	}
	o.ClientOptions = e.clientOptions(o.ClientOptions)
	return o
}

// armOptions are the options of an Azure Resource Manager client.
func (e *environment) armOptions() *arm.ClientOptions {
	o := &arm.ClientOptions{ClientOptions: e.azure}
	if e.arm != nil {
		*o = *e.arm
	}
	o.ClientOptions = e.clientOptions(o.ClientOptions)
	return o
}

// defaultTryTimeout bounds each try of a request unless --try-timeout says
// otherwise: long enough for a 16 MiB ranged GET or a large block at a few
// hundred kilobytes a second, short enough that a silent endpoint shows up
// as a retry notice within a minute.
const defaultTryTimeout = time.Minute
