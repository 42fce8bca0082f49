package region

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/geoseal/geoseal/internal/kvurl"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// Where the keys live. Whoever can use the key-encryption key can decrypt
// every object wrapped for it, so a key's regions are judged like the
// data's. Azure Key Vault replicates a vault's contents to the region's pair
// (except in Brazil South and West US 3, and in regions without a pair,
// where it stays in the region), while a Managed HSM stays in its region
// unless multi-region replication extends it to one more region:
//
//   - "Azure Key Vault availability and redundancy", Data replication
//     (learn.microsoft.com/azure/key-vault/general/disaster-recovery-guidance,
//     checked 2026-12-01);
//   - "Enable multi-region replication on Azure Managed HSM"
//     (learn.microsoft.com/azure/key-vault/managed-hsm/multi-region-replication,
//     checked 2026-12-01).

// keyVaultStaysInRegion are the paired regions whose vaults Key Vault does
// not replicate across regions (the disaster-recovery guidance above).
var keyVaultStaysInRegion = map[string]bool{"brazilsouth": true, "westus3": true}

// vaultLocation is where a Key Vault vault in region keeps its contents.
func vaultLocation(region, id string) Location {
	loc := Location{Primary: NormalizeName(region), Source: SourceARM, Account: id}
	loc.ReplicatesToPair = !keyVaultStaysInRegion[loc.Primary]
	return loc
}

// StaticKeyVault returns a Resolver for a key vault declared to be in
// region (the CLI's --keyvault-region): Key Vault's own rule then adds the
// region's pair, which the guard judges as an inferred secondary. Use it
// when ARM cannot be asked; declaring the region makes you responsible for
// it being true.
func StaticKeyVault(region string) Resolver {
	loc := vaultLocation(region, "")
	loc.Source = SourceStatic
	return staticResolver{loc: loc}
}

// KeyVaultARM returns a Resolver for where the Key Vault vault or Managed
// HSM holding keyURL (https://NAME.vault.azure.net/keys/KEY[/VERSION], or
// …managedhsm.azure.net, in any cloud) keeps the key. It lists the vaults
// (or Managed HSMs) of subscriptionID through armkeyvault and takes the
// one whose URI is the key's host: its location is the primary; a vault
// adds its region's pair (Key Vault's replication), a Managed HSM the
// region it was extended to. A key whose vault is not in the subscription
// is reported Unknown, which the guard refuses: declare it with
// StaticKeyVault or name the vault's subscription.
//
// opts.ClientOptions configure the armkeyvault clients; the answer is
// cached for opts.TTL (a vault cannot move to another region).
func KeyVaultARM(cred azcore.TokenCredential, subscriptionID, keyURL string, opts *ARMOptions) Resolver {
	r := &keyVaultResolver{cred: cred, subscription: subscriptionID, keyURL: keyURL, cache: newAnswerCache(opts)}
	if opts != nil {
		r.clientOptions = opts.ClientOptions
	}
	return r
}

// maxVaultsListed bounds the vaults (or HSMs) read while looking for one.
const maxVaultsListed = 10000

type keyVaultResolver struct {
	cred          azcore.TokenCredential
	subscription  string
	keyURL        string
	clientOptions *arm.ClientOptions
	cache         *answerCache
}

// vaultHostSuffixes are the Key Vault vault host suffixes of the clouds
// (kvurl.IsManagedHSM knows the Managed HSM ones).
var vaultHostSuffixes = []string{".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn", ".vault.microsoftazure.de"}

// keyVaultHost parses a key URL with kvurl.Parse, the parser (and bounds)
// the Key Vault keyring applies to the same URL, into its vault host and
// whether it is a Managed HSM.
func keyVaultHost(keyURL string) (host string, hsm bool, err error) {
	vault, _, _, err := kvurl.Parse(keyURL)
	if err != nil {
		return "", false, fmt.Errorf("region: %w", err)
	}
	u, err := url.Parse(vault)
	if err != nil {
		return "", false, fmt.Errorf("region: key URL %q: %w", keyURL, err)
	}
	host = u.Hostname()
	if kvurl.IsManagedHSM(vault) {
		return host, true, nil
	}
	for _, s := range vaultHostSuffixes {
		if strings.HasSuffix(host, s) {
			return host, false, nil
		}
	}
	return "", false, fmt.Errorf("region: key URL %q: %q is not a Key Vault or Managed HSM host of a known cloud", keyURL, host)
}

func (k *keyVaultResolver) Resolve(ctx context.Context) (Location, error) {
	if loc, ok := k.cache.get(); ok {
		return loc, nil
	}
	host, hsm, err := keyVaultHost(k.keyURL)
	if err != nil {
		return Location{}, err
	}
	if k.cred == nil || k.subscription == "" {
		return Location{}, errors.New("region: KeyVaultARM: a credential and a subscription id are required")
	}
	var loc Location
	if hsm {
		client, cerr := armkeyvault.NewManagedHsmsClient(k.subscription, k.cred, k.clientOptions)
		if cerr != nil {
			return Location{}, cerr
		}
		loc, err = findByHost(ctx, k, "Managed HSM", host, client.NewListBySubscriptionPager(nil),
			func(r armkeyvault.ManagedHsmsClientListBySubscriptionResponse) []*armkeyvault.ManagedHsm {
				return r.Value
			},
			func(h *armkeyvault.ManagedHsm) (string, *string) {
				if h.Properties == nil {
					return "", h.Location
				}
				return deref(h.Properties.HsmURI), h.Location
			},
			hsmLocation)
	} else {
		client, cerr := armkeyvault.NewVaultsClient(k.subscription, k.cred, k.clientOptions)
		if cerr != nil {
			return Location{}, cerr
		}
		loc, err = findByHost(ctx, k, "key vault", host, client.NewListBySubscriptionPager(nil),
			func(r armkeyvault.VaultsClientListBySubscriptionResponse) []*armkeyvault.Vault { return r.Value },
			func(v *armkeyvault.Vault) (string, *string) {
				if v.Properties == nil {
					return "", v.Location
				}
				return deref(v.Properties.VaultURI), v.Location
			},
			func(v *armkeyvault.Vault) Location { return vaultLocation(*v.Location, deref(v.ID)) })
	}
	if err != nil {
		return Location{}, err
	}
	k.cache.put(loc)
	return loc, nil
}

func (k *keyVaultResolver) notFound(host string, listed int, what string) Location {
	return Location{Source: SourceARM, Account: k.keyURL, Unknown: []string{fmt.Sprintf(
		"no %s with host %q among the %d in subscription %q, so where the key lives cannot be told; "+
			"declare its region (region.StaticKeyVault, CLI --keyvault-region) or give the vault's subscription", what, host, listed, k.subscription)}}
}

// findByHost pages through a subscription's vaults (or Managed HSMs) for
// the one whose URI has host, reading at most maxVaultsListed of them.
// describe returns an item's URI and location.
func findByHost[R, I any](ctx context.Context, k *keyVaultResolver, what, host string,
	pages interface {
		More() bool
		NextPage(context.Context) (R, error)
	},
	items func(R) []*I, describe func(*I) (uri string, location *string), locate func(*I) Location) (Location, error) {
	listed := 0
	for pages.More() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return Location{}, fmt.Errorf("region: ARM listing the %ss of subscription %s: %w", what, k.subscription, err)
		}
		for _, it := range items(page) {
			if listed++; listed > maxVaultsListed {
				return Location{}, fmt.Errorf("region: more than %d %ss in subscription %s; declare the key's region instead", maxVaultsListed, what, k.subscription)
			}
			if it == nil {
				continue
			}
			uri, location := describe(it)
			if !sameHost(uri, host) {
				continue
			}
			if location == nil || *location == "" {
				return Location{}, fmt.Errorf("region: ARM reported no location for %s %s", what, host)
			}
			return locate(it), nil
		}
	}
	return k.notFound(host, listed, what), nil
}

// hsmLocation: a Managed HSM pool stays in its region; multi-region
// replication extends it to exactly one more, listed in Regions.
func hsmLocation(h *armkeyvault.ManagedHsm) Location {
	loc := Location{Primary: NormalizeName(*h.Location), Source: SourceARM, Account: deref(h.ID)}
	for _, r := range h.Properties.Regions {
		if r == nil || r.Name == nil {
			continue
		}
		name := NormalizeName(*r.Name)
		if name == loc.Primary {
			continue
		}
		if loc.Secondary != "" {
			loc.Unknown = append(loc.Unknown, fmt.Sprintf("the Managed HSM reports more than one extended region (%s and %s); "+
				"geoseal judges one", untrusted.Quote(loc.Secondary), untrusted.Quote(name)))
			break
		}
		loc.Secondary, loc.GeoReplicated, loc.SecondarySource = name, true, SecondaryARM
	}
	return loc
}

func sameHost(uri, host string) bool {
	u, err := url.Parse(uri)
	return err == nil && strings.EqualFold(strings.TrimSuffix(u.Hostname(), "."), host)
}
