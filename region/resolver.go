package region

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
)

// Resolver finds where a storage account keeps its data.
type Resolver interface {
	Resolve(ctx context.Context) (Location, error)
}

// Location is where an account's data lives.
type Location struct {
	// Primary is the region that receives writes.
	Primary string `json:"primary"`
	// Secondary is the region data is replicated to, when GeoReplicated.
	// It may be "" for a geo-replicated account whose secondary could not be
	// found; the guard refuses such an account.
	Secondary string `json:"secondary,omitempty"`
	// GeoReplicated reports that a second copy lives in Secondary.
	GeoReplicated bool `json:"geo_replicated"`
	// SKU is the storage SKU name ("Standard_RAGRS") when known.
	SKU string `json:"sku,omitempty"`
	// Source says who answered: "static" (declared) or "arm".
	Source string `json:"source"`
	// SecondarySource says where Secondary came from: "declared", "arm",
	// or "catalog-pair" (ARM did not report one; the region's pair was used).
	SecondarySource string `json:"secondary_source,omitempty"`
}

// Location sources.
const (
	SourceStatic      = "static"
	SourceARM         = "arm"
	SecondaryDeclared = "declared"
	SecondaryARM      = "arm"
	SecondaryPair     = "catalog-pair"
)

type staticResolver struct{ loc Location }

// Static returns a Resolver that answers with a declared location: primary
// and, for a geo-replicated account, secondary ("" = not geo-replicated).
// Use it when ARM is not reachable or not wanted, and for the Azurite
// emulator (the guard accepts a loopback endpoint only with Static).
//
// Declaring the location makes you responsible for it being true: if the
// account is GRS, the secondary must be declared or its pair's country is
// never checked.
func Static(primary, secondary string) Resolver {
	loc := Location{Primary: NormalizeName(primary), Source: SourceStatic}
	if s := NormalizeName(secondary); s != "" {
		loc.Secondary, loc.GeoReplicated, loc.SecondarySource = s, true, SecondaryDeclared
	}
	return staticResolver{loc: loc}
}

func (s staticResolver) Resolve(ctx context.Context) (Location, error) {
	if err := ctx.Err(); err != nil {
		return Location{}, err
	}
	if s.loc.Primary == "" {
		return Location{}, errors.New("region: Static resolver: primary region is empty")
	}
	return s.loc, nil
}

// ARMOptions configures the ARM resolver. A nil *ARMOptions is valid.
type ARMOptions struct {
	// TTL is how long an answer is reused. Failover moves the primary to
	// the old secondary (and makes the account LRS), so answers must not
	// live forever. Zero means DefaultARMTTL; negative disables caching.
	TTL time.Duration
	// Catalog supplies region pairs when ARM reports no secondary for a
	// geo-replicated account. Nil means DefaultCatalog().
	Catalog *Catalog
}

// DefaultARMTTL is the ARM resolver's default cache lifetime.
const DefaultARMTTL = 5 * time.Minute

// ARM returns a Resolver that asks Azure Resource Manager where the account
// lives: AccountsClient.GetProperties gives the primary location, the
// secondary location and the SKU. A geo-replicated SKU (GRS, RA-GRS, GZRS,
// RA-GZRS, and their V2 variants) makes the secondary count; if ARM reports
// no secondary for such an account, the catalog pair of the primary is used,
// and if there is none the Location has an empty Secondary, which the guard
// refuses. An SKU geoseal does not recognise is treated as geo-replicated,
// so that a new replicating SKU cannot slip past the check.
//
// Answers are cached for opts.TTL; errors are not cached.
func ARM(client *armstorage.AccountsClient, resourceGroup, account string, opts *ARMOptions) Resolver {
	r := &armResolver{client: client, group: resourceGroup, account: account, ttl: DefaultARMTTL}
	if opts != nil {
		if opts.TTL != 0 {
			r.ttl = opts.TTL
		}
		r.catalog = opts.Catalog
	}
	return r
}

type armResolver struct {
	client         *armstorage.AccountsClient
	group, account string
	ttl            time.Duration
	catalog        *Catalog

	mu      sync.Mutex
	cached  Location
	expires time.Time
}

func (a *armResolver) Resolve(ctx context.Context) (Location, error) {
	if a.ttl > 0 {
		a.mu.Lock()
		loc, exp := a.cached, a.expires
		a.mu.Unlock()
		if !exp.IsZero() && time.Now().Before(exp) {
			return loc, nil
		}
	}
	if a.client == nil {
		return Location{}, errors.New("region: ARM resolver: nil AccountsClient")
	}
	resp, err := a.client.GetProperties(ctx, a.group, a.account, nil)
	if err != nil {
		return Location{}, fmt.Errorf("region: ARM GetProperties %s/%s: %w", a.group, a.account, err)
	}
	loc, err := a.locationOf(resp.Account)
	if err != nil {
		return Location{}, err
	}
	if a.ttl > 0 {
		a.mu.Lock()
		a.cached, a.expires = loc, time.Now().Add(a.ttl)
		a.mu.Unlock()
	}
	return loc, nil
}

func (a *armResolver) locationOf(acct armstorage.Account) (Location, error) {
	loc := Location{Source: SourceARM}
	if acct.SKU != nil && acct.SKU.Name != nil {
		loc.SKU = string(*acct.SKU.Name)
	}
	var secondary string
	if p := acct.Properties; p != nil {
		if p.PrimaryLocation != nil {
			loc.Primary = NormalizeName(*p.PrimaryLocation)
		}
		if p.SecondaryLocation != nil {
			secondary = NormalizeName(*p.SecondaryLocation)
		}
	}
	if loc.Primary == "" && acct.Location != nil {
		loc.Primary = NormalizeName(*acct.Location)
	}
	if loc.Primary == "" {
		return Location{}, fmt.Errorf("region: ARM reported no location for %s/%s", a.group, a.account)
	}
	loc.GeoReplicated = IsGeoReplicatedSKU(loc.SKU) || secondary != ""
	if !loc.GeoReplicated {
		return loc, nil
	}
	if secondary != "" {
		loc.Secondary, loc.SecondarySource = secondary, SecondaryARM
		return loc, nil
	}
	cat := a.catalog
	if cat == nil {
		cat = DefaultCatalog()
	}
	if r, ok := cat.Region(loc.Primary); ok && r.Pair != "" {
		loc.Secondary, loc.SecondarySource = r.Pair, SecondaryPair
	}
	return loc, nil
}

// IsGeoReplicatedSKU reports whether a storage SKU keeps a copy in a
// secondary region. Only SKUs known to stay in one region (…LRS, …ZRS)
// report false; anything else, including an empty or unfamiliar name,
// reports true, because assuming no replica is the unsafe mistake.
func IsGeoReplicatedSKU(sku string) bool {
	_, redundancy, ok := strings.Cut(sku, "_")
	if !ok {
		return true
	}
	switch strings.ToUpper(redundancy) {
	case "LRS", "ZRS":
		return false
	}
	return true
}
