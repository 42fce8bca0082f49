package main

import (
	"flag"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/geoseal/geoseal/region"
)

// policyUnrestricted must be spelled out to write without export-control
// checks: forgetting --policy is an error, never a silent allow-all.
const policyUnrestricted = "unrestricted"

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

	Without the flags, $GEOSEAL_POLICY is the policy, and $GEOSEAL_PRIMARY
	and $GEOSEAL_SECONDARY the regions (both replaced by any of --primary,
	--secondary or --arm-account).
`

// guardFlags build the region guard of a command that writes.
type guardFlags struct {
	policy, primary, secondary, armAccount string
	keyVaultRegion, override               string
}

func (g *guardFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.policy, "policy", "", "region policy, or unrestricted")
	fs.StringVar(&g.primary, "primary", "", "the account's primary region")
	fs.StringVar(&g.secondary, "secondary", "", "the account's secondary region, if geo-replicated")
	fs.StringVar(&g.armAccount, "arm-account", "", "SUBSCRIPTION/RESOURCE-GROUP/ACCOUNT to resolve with ARM")
	fs.StringVar(&g.keyVaultRegion, "keyvault-region", "", "declared region of the --keyvault keys' vault")
	fs.StringVar(&g.override, "override", "", "region/policy override file")
}

// build returns the guard writes are checked with. keyVaultURLs are the
// --keyvault keys the written data keys are wrapped for: their vaults are
// located with ARM when the account is, or declared with --keyvault-region.
func (g *guardFlags) build(env *environment, keyVaultURLs []string) (*region.Guard, error) {
	g.policy, g.primary, g.secondary = regionDefaults(env, g.policy, g.primary, g.secondary, g.armAccount)
	if g.policy == "" {
		return nil, usageErrorf(`--policy is required for writing: ear, itar, us-only, or "unrestricted" for data under no export control`)
	}
	cat, err := loadCatalog(g.override)
	if err != nil {
		return nil, err
	}
	var p *region.Policy
	if g.policy == policyUnrestricted {
		p = region.Unrestricted()
	} else if p, err = policyOf(cat, g.policy); err != nil {
		return nil, err
	}
	var res region.Resolver
	var keyVaults []region.Resolver
	switch {
	case g.armAccount != "" && (g.primary != "" || g.secondary != ""):
		return nil, usageErrorf("give either --arm-account or --primary/--secondary, not both")
	case g.armAccount != "":
		parts := strings.Split(g.armAccount, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, usageErrorf("--arm-account %s: want SUBSCRIPTION-ID/RESOURCE-GROUP/ACCOUNT", quoteUntrusted(g.armAccount))
		}
		cred, err := env.azureCredential("--arm-account")
		if err != nil {
			return nil, err
		}
		armOpts := env.armOptions()
		client, err := armstorage.NewAccountsClient(parts[0], cred, armOpts)
		if err != nil {
			return nil, err
		}
		opts := &region.ARMOptions{Credential: cred, ClientOptions: armOpts}
		res = region.ARM(client, parts[1], parts[2], opts)
		if g.keyVaultRegion == "" {
			for _, u := range keyVaultURLs {
				keyVaults = append(keyVaults, region.KeyVaultARM(cred, parts[0], u, opts))
			}
		}
	case g.primary != "":
		res = region.Static(g.primary, g.secondary)
	default:
		return nil, usageErrorf("say where the account is: --primary REGION [--secondary REGION], or --arm-account SUB/RG/ACCOUNT")
	}
	if g.keyVaultRegion != "" {
		keyVaults = []region.Resolver{region.StaticKeyVault(g.keyVaultRegion)}
	}
	return region.NewGuard(p, res, &region.GuardOptions{Catalog: cat, KeyVaults: keyVaults})
}

// regionDefaults fills in $GEOSEAL_POLICY for an empty --policy, and
// $GEOSEAL_PRIMARY and $GEOSEAL_SECONDARY when the command line says
// nothing about where the account is: --primary, --secondary or
// --arm-account replace both, so a declared location is never half the
// flags' and half the environment's.
func regionDefaults(env *environment, policy, primary, secondary, armAccount string) (string, string, string) {
	if policy == "" {
		policy = env.getenv(envPolicy)
	}
	if primary == "" && secondary == "" && armAccount == "" {
		primary, secondary = env.getenv(envPrimary), env.getenv(envSecondary)
	}
	return policy, primary, secondary
}

// readGuard is the guard of a command that only reads: the blob client
// consults its guard for writes alone, and requires one.
func readGuard() *region.Guard {
	g, err := region.NewGuard(region.Unrestricted(), region.Static("", ""), nil)
	if err != nil {
		panic(err) // an unrestricted static guard cannot fail
	}
	return g
}
