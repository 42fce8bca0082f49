package region

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cloud names an Azure cloud (an isolated instance of Azure with its own
// endpoints). The values are the names `az cloud list` uses.
type Cloud string

const (
	CloudPublic     Cloud = "AzureCloud"
	CloudGovernment Cloud = "AzureUSGovernment"
	CloudChina      Cloud = "AzureChinaCloud"
	// CloudGermany is Microsoft Cloud Deutschland, closed in 2021. It is
	// kept so its region names resolve to a country instead of "unknown".
	CloudGermany Cloud = "AzureGermanCloud"
)

var knownClouds = []Cloud{CloudPublic, CloudGovernment, CloudChina, CloudGermany}

// String returns a name for people: "Azure public cloud", ...
func (c Cloud) String() string {
	switch c {
	case CloudPublic:
		return "Azure public cloud"
	case CloudGovernment:
		return "Azure US Government"
	case CloudChina:
		return "Azure China (21Vianet)"
	case CloudGermany:
		return "Microsoft Cloud Deutschland (retired)"
	}
	return string(c)
}

// Region is one Azure region as the catalog knows it.
type Region struct {
	// Name is the programmatic name ARM uses: "eastus", "southeastasia".
	Name string `json:"name"`
	// DisplayName is the portal name: "East US".
	DisplayName string `json:"display_name"`
	// Country is the ISO 3166-1 alpha-2 code of the region's physical
	// location. Hong Kong SAR is "HK"; whether HK counts as China is a
	// policy's decision (see Policy.TreatAs), not the catalog's.
	Country string `json:"country"`
	// Cloud is the Azure cloud the region belongs to.
	Cloud Cloud `json:"cloud"`
	// Pair is the region geo-redundant storage replicates to by default, or
	// "" when the region has none. Pairs can be one-way: brazilsouth pairs
	// with southcentralus, which pairs with northcentralus.
	Pair string `json:"pair"`
	// Restricted marks regions open only to approved subscriptions
	// (norwaywest, germanynorth, ...). They still hold data, so they are
	// checked like any other.
	Restricted bool `json:"restricted,omitempty"`
	// Retired marks regions that no longer accept data.
	Retired bool `json:"retired,omitempty"`
	// PairConfirmed says Microsoft's own region-pair documentation lists
	// Pair for this region. When ARM does not report an account's secondary
	// and the guard has to infer it from Pair, an unconfirmed pair is
	// refused under every policy but Unrestricted: a guessed secondary is
	// not a known one.
	PairConfirmed bool `json:"pair_confirmed,omitempty"`
	// Unconfirmed marks a region that could not be found in Microsoft's
	// own region lists (it was seen in tooling or announcements). It is
	// still judged by its country; the mark tells a reviewer the entry is
	// weaker evidence.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Note says anything a reviewer should know about this entry.
	Note string `json:"note,omitempty"`
}

// Source records where a piece of data came from and when it was read.
type Source struct {
	Title     string `json:"title"`
	URL       string `json:"url"`
	Retrieved string `json:"retrieved"`
}

// Catalog is the data the guard decides with: every known region (with its
// country, cloud and pair) and the named policies. The default catalog is
// embedded in the package and dated (AsOf); Apply layers a user's override
// file on top of it, so a new region or a changed list needs no new release.
//
// A Catalog is immutable and safe for concurrent use.
type Catalog struct {
	asOf     string
	sources  []Source
	regions  map[string]Region
	policies map[string]*Policy
}

//go:embed data/regions.json
var regionsJSON []byte

//go:embed data/policies.json
var policiesJSON []byte

var defaultCatalog = sync.OnceValues(func() (*Catalog, error) {
	return parseCatalog(regionsJSON, policiesJSON)
})

// DefaultCatalog returns the catalog embedded in this version of geoseal.
// It panics only if the embedded data is corrupt, which the package's tests
// rule out.
func DefaultCatalog() *Catalog {
	c, err := defaultCatalog()
	if err != nil {
		panic("region: embedded catalog is invalid: " + err.Error())
	}
	return c
}

// AsOf returns the date (YYYY-MM-DD) the catalog's data was last reviewed.
func (c *Catalog) AsOf() string { return c.asOf }

// Sources returns where the catalog's region data came from.
func (c *Catalog) Sources() []Source { return slices.Clone(c.sources) }

// Region looks a region up by programmatic name. The lookup ignores case and
// spaces, so "East US" finds "eastus" (ARM and the portal disagree on case).
func (c *Catalog) Region(name string) (Region, bool) {
	r, ok := c.regions[NormalizeName(name)]
	return r, ok
}

// Regions returns every region in the catalog, sorted by cloud then name.
func (c *Catalog) Regions() []Region {
	out := slices.Collect(maps.Values(c.regions))
	slices.SortFunc(out, func(a, b Region) int {
		if a.Cloud != b.Cloud {
			return slices.Index(knownClouds, a.Cloud) - slices.Index(knownClouds, b.Cloud)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Policy returns a copy of the named policy ("ear", "itar", "us-only", or a
// name an override file defined).
func (c *Catalog) Policy(name string) (*Policy, error) {
	p, ok := c.policies[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownPolicy, name, strings.Join(c.PolicyNames(), ", "))
	}
	return p.clone(), nil
}

// PolicyNames returns the names of the catalog's policies, sorted.
func (c *Catalog) PolicyNames() []string {
	return slices.Sorted(maps.Keys(c.policies))
}

// NormalizeName turns a region name as ARM, the portal or a user writes it
// into the catalog's key: lower case, no spaces. "East US 2" -> "eastus2".
func NormalizeName(name string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), " ", ""))
}

// ErrUnknownPolicy is returned for a policy name the catalog does not have.
var ErrUnknownPolicy = errors.New("region: unknown policy")

// DataError reports invalid catalog, policy or override data: where it is
// (File, Path such as "regions[3].country") and what is wrong.
type DataError struct {
	File string // "regions.json", "policies.json", "override" or a file name
	Path string
	Err  error
}

func (e *DataError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("region: %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("region: %s: %s: %v", e.File, e.Path, e.Err)
}

func (e *DataError) Unwrap() error { return e.Err }

// regionsFile and policiesFile are the embedded files' schemas.
type regionsFile struct {
	Format  string   `json:"format"`
	AsOf    string   `json:"as_of"`
	Sources []Source `json:"sources"`
	Notes   string   `json:"notes"`
	Regions []Region `json:"regions"`
}

type policiesFile struct {
	Format   string       `json:"format"`
	AsOf     string       `json:"as_of"`
	Notes    string       `json:"notes"`
	Policies []policySpec `json:"policies"`
}

const (
	regionsFormat  = "geoseal-regions/1"
	policiesFormat = "geoseal-policies/1"
)

func parseCatalog(regionsData, policiesData []byte) (*Catalog, error) {
	var rf regionsFile
	if err := decodeStrict(bytes.NewReader(regionsData), &rf, maxOverrideSize); err != nil {
		return nil, &DataError{File: "regions.json", Err: err}
	}
	if rf.Format != regionsFormat {
		return nil, &DataError{File: "regions.json", Path: "format", Err: fmt.Errorf("want %q, got %q", regionsFormat, rf.Format)}
	}
	if err := checkDate(rf.AsOf); err != nil {
		return nil, &DataError{File: "regions.json", Path: "as_of", Err: err}
	}
	c := &Catalog{asOf: rf.AsOf, sources: rf.Sources, regions: map[string]Region{}, policies: map[string]*Policy{}}
	for i, r := range rf.Regions {
		if err := validateRegion(r); err != nil {
			return nil, &DataError{File: "regions.json", Path: fmt.Sprintf("regions[%d]", i), Err: err}
		}
		if _, dup := c.regions[r.Name]; dup {
			return nil, &DataError{File: "regions.json", Path: fmt.Sprintf("regions[%d]", i), Err: fmt.Errorf("duplicate region %q", r.Name)}
		}
		c.regions[r.Name] = r
	}
	if err := c.checkPairs("regions.json"); err != nil {
		return nil, err
	}

	var pf policiesFile
	if err := decodeStrict(bytes.NewReader(policiesData), &pf, maxOverrideSize); err != nil {
		return nil, &DataError{File: "policies.json", Err: err}
	}
	if pf.Format != policiesFormat {
		return nil, &DataError{File: "policies.json", Path: "format", Err: fmt.Errorf("want %q, got %q", policiesFormat, pf.Format)}
	}
	if err := checkDate(pf.AsOf); err != nil {
		return nil, &DataError{File: "policies.json", Path: "as_of", Err: err}
	}
	for i, ps := range pf.Policies {
		path := fmt.Sprintf("policies[%d]", i)
		if ps.Extends != "" || len(ps.RemoveCountries) > 0 {
			return nil, &DataError{File: "policies.json", Path: path, Err: errors.New("built-in policies cannot extend or remove")}
		}
		p, err := ps.build(nil, pf.AsOf)
		if err != nil {
			return nil, &DataError{File: "policies.json", Path: path, Err: err}
		}
		if _, dup := c.policies[p.Name]; dup {
			return nil, &DataError{File: "policies.json", Path: path, Err: fmt.Errorf("duplicate policy %q", p.Name)}
		}
		c.policies[p.Name] = p
	}
	return c, nil
}

// checkPairs makes sure every pair names a region the catalog knows, so a
// geo-replicated account never resolves to a secondary that cannot be placed.
func (c *Catalog) checkPairs(file string) error {
	for _, name := range slices.Sorted(maps.Keys(c.regions)) {
		r := c.regions[name]
		if r.Pair == "" {
			continue
		}
		p, ok := c.regions[r.Pair]
		if !ok {
			return &DataError{File: file, Path: "regions." + name + ".pair", Err: fmt.Errorf("pair %q is not a known region", r.Pair)}
		}
		if p.Cloud != r.Cloud {
			return &DataError{File: file, Path: "regions." + name + ".pair", Err: fmt.Errorf("pair %q is in %s, not %s", r.Pair, p.Cloud, r.Cloud)}
		}
	}
	return nil
}

func validateRegion(r Region) error {
	if !validRegionName(r.Name) {
		return fmt.Errorf("name %q: want 1-64 lower-case letters and digits", r.Name)
	}
	if strings.TrimSpace(r.DisplayName) == "" {
		return fmt.Errorf("region %q: display_name is empty", r.Name)
	}
	if _, ok := iso3166[r.Country]; !ok {
		return fmt.Errorf("region %q: country %q is not an ISO 3166-1 alpha-2 code", r.Name, r.Country)
	}
	if !slices.Contains(knownClouds, r.Cloud) {
		return fmt.Errorf("region %q: unknown cloud %q (want one of %v)", r.Name, r.Cloud, knownClouds)
	}
	if r.Pair != "" && !validRegionName(r.Pair) {
		return fmt.Errorf("region %q: pair %q is not a region name", r.Name, r.Pair)
	}
	if r.Pair == r.Name {
		return fmt.Errorf("region %q: paired with itself", r.Name)
	}
	if r.PairConfirmed && r.Pair == "" {
		return fmt.Errorf("region %q: pair_confirmed without a pair", r.Name)
	}
	return nil
}

func validRegionName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// checkDate accepts exactly YYYY-MM-DD.
func checkDate(s string) error {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return nil
}
