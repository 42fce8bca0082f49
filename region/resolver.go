package region

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/geoseal/geoseal/internal/untrusted"
)

// Resolver finds where something keeps its data: a storage account
// (Static, ARM) or the vault that holds a key (StaticKeyVault,
// KeyVaultARM).
type Resolver interface {
	Resolve(ctx context.Context) (Location, error)
}

// Location is where an account's data (or a vault's keys) lives, and what
// the resolver learnt about where it may go next. A Static location has
// only the declared fields; the ARM resolver fills the rest.
type Location struct {
	// Primary is the region that receives writes.
	Primary string `json:"primary"`
	// Secondary is the region data is replicated to, when GeoReplicated.
	// It may be "" for a geo-replicated account whose secondary was not
	// reported; the guard then assumes the catalog pair ("inferred") or,
	// with no pair, refuses.
	Secondary string `json:"secondary,omitempty"`
	// GeoReplicated reports that a second copy lives in Secondary.
	GeoReplicated bool `json:"geo_replicated"`
	// ReplicatesToPair reports a copy in the primary's catalog pair, if the
	// region has one (Key Vault's rule); the guard fills in Secondary.
	ReplicatesToPair bool `json:"replicates_to_pair,omitempty"`
	// SKU is the storage SKU name ("Standard_RAGRS") when known.
	SKU string `json:"sku,omitempty"`
	// TargetSKU is the SKU a conversion or migration in progress is moving
	// the account to; its replication is already counted in GeoReplicated.
	TargetSKU string `json:"target_sku,omitempty"`
	// Source says who answered: "static" (declared) or "arm".
	Source string `json:"source"`
	// SecondarySource says where Secondary came from: "declared", "arm",
	// or "catalog-pair" (no one reported it; the region's pair was assumed).
	SecondarySource string `json:"secondary_source,omitempty"`

	// Account is the resource id of the storage account (or the vault)
	// when the resolver knows it.
	Account string `json:"account,omitempty"`
	// Endpoints are the account's own blob endpoint hosts (primary,
	// secondary and routing-preference endpoints) as ARM reports them.
	Endpoints []string `json:"blob_endpoints,omitempty"`
	// FailoverInProgress, GeoReplicationStatus ("Live", "Bootstrap",
	// "Unavailable") and LastGeoFailoverTime (RFC 3339) are ARM's account
	// failover state.
	FailoverInProgress   bool   `json:"failover_in_progress,omitempty"`
	GeoReplicationStatus string `json:"geo_replication_status,omitempty"`
	LastGeoFailoverTime  string `json:"last_geo_failover_time,omitempty"`
	// MigrationInProgress is ARM's AccountMigrationInProgress.
	MigrationInProgress bool `json:"migration_in_progress,omitempty"`
	// AllowCrossTenantReplication is the account's setting as ARM reports
	// it; nil when ARM does not report it (or for a declared location).
	AllowCrossTenantReplication *bool `json:"allow_cross_tenant_replication,omitempty"`
	// ReplicatesTo are the destination accounts of the account's object
	// replication policies, each resolved like the account itself.
	ReplicatesTo []Location `json:"replicates_to,omitempty"`
	// Unknown lists what the resolver could not find out (a destination it
	// could not resolve, a chain longer than it follows). The guard refuses
	// a location with anything unknown.
	Unknown []string `json:"unknown,omitempty"`
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
// never checked, and the guard's decision says so. A declared location has
// no failover state, replication policies or endpoints to check.
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

// ARMOptions configures the ARM resolvers (ARM, KeyVaultARM). A nil
// *ARMOptions is valid.
type ARMOptions struct {
	// TTL is how long the parts of an answer that take more requests
	// (object replication policies and their destination accounts, a
	// vault's location) are reused. Zero means DefaultARMTTL; negative
	// disables caching.
	TTL time.Duration
	// Credential and ClientOptions build the ARM clients the resolver needs
	// beyond the AccountsClient it is given: the object replication
	// policies client, and accounts clients for destinations in other
	// subscriptions. Without a Credential, ARM cannot list the account's
	// object replication policies and the guard refuses.
	Credential    azcore.TokenCredential
	ClientOptions *arm.ClientOptions
}

// DefaultARMTTL is the ARM resolvers' default cache lifetime.
const DefaultARMTTL = 5 * time.Minute

// storageAccountType is the ARM resource type of a storage account.
const storageAccountType = "Microsoft.Storage/storageAccounts"

// Bounds on object replication chains: a hostile or broken configuration
// must not make the resolver do unbounded work.
const (
	maxReplicationDepth    = 4  // hops from the account
	maxReplicationAccounts = 16 // destination accounts in all
	maxReplicationPolicies = 100
)

// ARM returns a Resolver that asks Azure Resource Manager where the account
// lives and where its data may go:
//
//   - AccountsClient.GetProperties gives the primary and secondary
//     locations, the SKU, the account's blob endpoints, its failover state
//     (FailoverInProgress, LastGeoFailoverTime and, for a geo-replicated
//     account, GeoReplicationStats), a SKU conversion or migration in
//     progress (whose target SKU counts as if it were done) and
//     AllowCrossTenantReplication.
//   - ObjectReplicationPoliciesClient lists the account's object
//     replication policies; every destination account is resolved by
//     resource id in the same way, following chains up to 4 hops and 16
//     accounts. A destination named only by account name, or that cannot
//     be read, is reported Unknown.
//
// A geo-replicated SKU (GRS, RA-GRS, GZRS, RA-GZRS, and their V2 variants)
// makes the secondary count; an SKU geoseal does not recognise counts as
// geo-replicated, so that a new replicating SKU cannot slip past the check.
// If ARM reports no secondary, the guard assumes the catalog pair and says
// "inferred".
//
// Every Resolve asks ARM for the account's properties (one request, two for
// a geo-replicated account), so a failover, a conversion or a changed
// setting is seen at once. The object replication part of the answer is
// reused for opts.TTL, and only while the account's location, SKU and
// LastGeoFailoverTime are unchanged. Errors are not cached.
func ARM(client *armstorage.AccountsClient, resourceGroup, account string, opts *ARMOptions) Resolver {
	r := &armResolver{client: client, group: resourceGroup, account: account, cache: newAnswerCache(opts)}
	if opts != nil {
		r.cred, r.clientOptions = opts.Credential, opts.ClientOptions
	}
	return r
}

// answerCache keeps a resolver's last answer for ARMOptions.TTL. It is
// safe for concurrent use; errors are never put in it.
type answerCache struct {
	ttl time.Duration // <= 0: nothing is kept

	mu      sync.Mutex
	loc     Location
	expires time.Time
}

// newAnswerCache returns the cache opts asks for: DefaultARMTTL for a nil
// opts or a zero TTL, none for a negative one.
func newAnswerCache(opts *ARMOptions) *answerCache {
	c := &answerCache{ttl: DefaultARMTTL}
	if opts != nil && opts.TTL != 0 {
		c.ttl = opts.TTL
	}
	return c
}

// get returns the kept answer while it is fresh.
func (c *answerCache) get() (Location, bool) {
	if c.ttl <= 0 {
		return Location{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loc, time.Now().Before(c.expires)
}

// put keeps loc for the cache's TTL.
func (c *answerCache) put(loc Location) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	c.loc, c.expires = loc, time.Now().Add(c.ttl)
	c.mu.Unlock()
}

type armResolver struct {
	client         *armstorage.AccountsClient
	group, account string
	cred           azcore.TokenCredential
	clientOptions  *arm.ClientOptions
	// cache holds the last answer with its ReplicatesTo, reused while
	// sameAccountState holds.
	cache *answerCache
}

func (a *armResolver) Resolve(ctx context.Context) (Location, error) {
	if a.client == nil {
		return Location{}, errors.New("region: ARM resolver: nil AccountsClient")
	}
	loc, err := a.accountLocation(ctx, a.client, a.group, a.account)
	if err != nil {
		return Location{}, err
	}
	if cached, ok := a.cache.get(); ok && sameAccountState(cached, loc) {
		return cached, nil
	}
	w := &replicationWalk{r: a, seen: map[string]bool{normID(loc.Account): true}}
	full, err := w.replicas(ctx, loc, a.group, a.account, 0)
	if err != nil {
		return Location{}, err
	}
	a.cache.put(full)
	return full, nil
}

// sameAccountState reports whether fresh (the account's properties just
// read) matches the state the cached answer was computed for. A changed
// LastGeoFailoverTime, location, SKU or setting invalidates the cache.
func sameAccountState(cached, fresh Location) bool {
	c := cached
	c.ReplicatesTo, c.Unknown = nil, nil
	f := fresh
	f.ReplicatesTo, f.Unknown = nil, nil
	return reflect.DeepEqual(c, f)
}

// accountLocation reads one account's properties and turns them into a
// Location without its replication destinations.
func (a *armResolver) accountLocation(ctx context.Context, client *armstorage.AccountsClient, group, name string) (Location, error) {
	resp, err := client.GetProperties(ctx, group, name, nil)
	if err != nil {
		return Location{}, fmt.Errorf("region: ARM GetProperties %s/%s: %w", group, name, err)
	}
	loc, err := locationOf(resp.Account, group, name)
	if err != nil {
		return Location{}, err
	}
	if IsGeoReplicatedSKU(loc.SKU) {
		// Failover statistics exist only for a geo-replicated account, and
		// asking for them costs ARM a round trip to the secondary.
		resp, err := client.GetProperties(ctx, group, name, &armstorage.AccountsClientGetPropertiesOptions{
			Expand: to.Ptr(armstorage.StorageAccountExpandGeoReplicationStats)})
		if err != nil {
			return Location{}, fmt.Errorf("region: ARM GetProperties %s/%s (geoReplicationStats): %w", group, name, err)
		}
		if p := resp.Properties; p != nil && p.GeoReplicationStats != nil && p.GeoReplicationStats.Status != nil {
			loc.GeoReplicationStatus = string(*p.GeoReplicationStats.Status)
		}
		if p := resp.Properties; p != nil && p.FailoverInProgress != nil && *p.FailoverInProgress {
			loc.FailoverInProgress = true
		}
	}
	return loc, nil
}

// locationOf turns ARM's account properties into a Location.
func locationOf(acct armstorage.Account, group, name string) (Location, error) {
	loc := Location{Source: SourceARM}
	if acct.ID != nil {
		loc.Account = *acct.ID
	}
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
		loc.FailoverInProgress = p.FailoverInProgress != nil && *p.FailoverInProgress
		if p.LastGeoFailoverTime != nil {
			loc.LastGeoFailoverTime = p.LastGeoFailoverTime.UTC().Format(time.RFC3339Nano)
		}
		loc.MigrationInProgress = p.AccountMigrationInProgress != nil && *p.AccountMigrationInProgress
		if c := p.StorageAccountSKUConversionStatus; c != nil {
			done := c.SKUConversionStatus != nil &&
				(*c.SKUConversionStatus == armstorage.SKUConversionStatusSucceeded || *c.SKUConversionStatus == armstorage.SKUConversionStatusFailed)
			switch {
			case !done && c.TargetSKUName != nil:
				loc.TargetSKU = string(*c.TargetSKUName)
			case !done:
				// A conversion whose target ARM does not name.
				loc.MigrationInProgress = true
			}
		}
		if p.AllowCrossTenantReplication != nil {
			loc.AllowCrossTenantReplication = to.Ptr(*p.AllowCrossTenantReplication)
		}
		loc.Endpoints = blobEndpoints(p.PrimaryEndpoints, p.SecondaryEndpoints)
	}
	if loc.Primary == "" && acct.Location != nil {
		loc.Primary = NormalizeName(*acct.Location)
	}
	if loc.Primary == "" {
		return Location{}, fmt.Errorf("region: ARM reported no location for %s/%s", group, name)
	}
	loc.GeoReplicated = IsGeoReplicatedSKU(loc.SKU) || secondary != "" || (loc.TargetSKU != "" && IsGeoReplicatedSKU(loc.TargetSKU))
	if loc.GeoReplicated && secondary != "" {
		loc.Secondary, loc.SecondarySource = secondary, SecondaryARM
	}
	return loc, nil
}

// blobEndpoints collects the blob endpoint hosts ARM reports for an
// account, lower-case and without duplicates.
func blobEndpoints(eps ...*armstorage.Endpoints) []string {
	var hosts []string
	add := func(s *string) {
		if s == nil {
			return
		}
		h := *s
		if i := strings.Index(h, "://"); i >= 0 {
			h = h[i+3:]
		}
		h, _, _ = strings.Cut(h, "/")
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
			h = h[:i]
		}
		h = normHost(h)
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, e := range eps {
		if e == nil {
			continue
		}
		add(e.Blob)
		if e.InternetEndpoints != nil {
			add(e.InternetEndpoints.Blob)
		}
		if e.MicrosoftEndpoints != nil {
			add(e.MicrosoftEndpoints.Blob)
		}
	}
	return hosts
}

// replicationWalk follows object replication policies from an account,
// with the bounds above; seen holds lower-case resource ids.
type replicationWalk struct {
	r        *armResolver
	seen     map[string]bool
	accounts int
}

// replicas returns loc with its object replication destinations resolved.
func (w *replicationWalk) replicas(ctx context.Context, loc Location, group, name string, depth int) (Location, error) {
	if w.r.cred == nil {
		loc.Unknown = append(loc.Unknown, "its object replication policies were not listed (the ARM resolver has no Credential: "+
			"set ARMOptions.Credential), so copies to other accounts cannot be ruled out")
		return loc, nil
	}
	sub, err := subscriptionOf(loc.Account)
	if err != nil {
		loc.Unknown = append(loc.Unknown, fmt.Sprintf("ARM reported no usable resource id (%v), so its object replication policies cannot be listed", err))
		return loc, nil
	}
	orc, err := armstorage.NewObjectReplicationPoliciesClient(sub, w.r.cred, w.r.clientOptions)
	if err != nil {
		return Location{}, err
	}
	pager := orc.NewListPager(group, name, nil)
	policies := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return Location{}, fmt.Errorf("region: ARM listing object replication policies of %s/%s: %w", group, name, err)
		}
		for _, pol := range page.Value {
			if policies++; policies > maxReplicationPolicies {
				loc.Unknown = append(loc.Unknown, fmt.Sprintf("it has more than %d object replication policies; geoseal stops reading there", maxReplicationPolicies))
				return loc, nil
			}
			if pol == nil || pol.Properties == nil {
				continue
			}
			dst := deref(pol.Properties.DestinationAccount)
			if sameAccount(dst, loc.Account, name) {
				continue // the account receives copies; it does not send them
			}
			next, err := w.destination(ctx, dst, depth+1)
			if err != nil {
				return Location{}, err
			}
			if next != nil {
				loc.ReplicatesTo = append(loc.ReplicatesTo, *next)
			}
		}
	}
	return loc, nil
}

// destination resolves one destination account by resource id, and its
// own destinations. It returns nil for an account already seen (a cycle).
func (w *replicationWalk) destination(ctx context.Context, id string, depth int) (*Location, error) {
	unresolved := func(format string, args ...any) *Location {
		return &Location{Account: id, Source: SourceARM, Unknown: []string{fmt.Sprintf(format, args...)}}
	}
	rid, err := arm.ParseResourceID(id)
	if err != nil || !strings.EqualFold(rid.ResourceType.String(), storageAccountType) || rid.SubscriptionID == "" || rid.ResourceGroupName == "" {
		return unresolved("the destination is not named by a storage account resource id (%s), so it cannot be located; "+
			"a destination in another tenant is named only by account name", untrusted.Quote(id)), nil
	}
	key := normID(id)
	if w.seen[key] {
		return nil, nil
	}
	w.seen[key] = true
	if depth > maxReplicationDepth {
		return unresolved("the replication chain goes on beyond %d accounts; geoseal follows it no further", maxReplicationDepth), nil
	}
	if w.accounts++; w.accounts > maxReplicationAccounts {
		return unresolved("more than %d accounts receive copies; geoseal follows no more of them", maxReplicationAccounts), nil
	}
	client, err := armstorage.NewAccountsClient(rid.SubscriptionID, w.r.cred, w.r.clientOptions)
	if err != nil {
		return nil, err
	}
	loc, err := w.r.accountLocation(ctx, client, rid.ResourceGroupName, rid.Name)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			// Not found, or not readable with our credential: refused with
			// the service's answer rather than failing the whole check.
			return unresolved("the destination account could not be read from ARM (%s %d)", re.ErrorCode, re.StatusCode), nil
		}
		return nil, err
	}
	if loc.Account == "" {
		loc.Account = rid.String()
	}
	loc, err = w.replicas(ctx, loc, rid.ResourceGroupName, rid.Name, depth)
	if err != nil {
		return nil, err
	}
	return &loc, nil
}

// normID is the key a resource id is remembered by.
func normID(id string) string {
	if rid, err := arm.ParseResourceID(id); err == nil {
		return strings.ToLower(rid.String())
	}
	return strings.ToLower(id)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sameAccount reports whether ref (a resource id or an account name)
// names the account with resource id id and name name.
func sameAccount(ref, id, name string) bool {
	if ref == "" {
		return false
	}
	if strings.EqualFold(ref, id) || strings.EqualFold(ref, name) {
		return true
	}
	if rid, err := arm.ParseResourceID(ref); err == nil && id != "" {
		if own, err := arm.ParseResourceID(id); err == nil {
			return strings.EqualFold(rid.String(), own.String())
		}
	}
	return false
}

func subscriptionOf(id string) (string, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return "", err
	}
	if rid.SubscriptionID == "" {
		return "", fmt.Errorf("no subscription in %q", id)
	}
	return rid.SubscriptionID, nil
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
