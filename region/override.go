package region

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// OverrideFormat is the value an override file's "format" field must hold.
const OverrideFormat = "geoseal-override/1"

// Override is a parsed override file: regions to add or replace and
// policies to define or change, applied on top of a catalog with
// Catalog.Apply. It lets a compliance team act on a new Azure region or a
// changed country list the day it happens, without a geoseal release.
//
// The file is JSON:
//
//	{
//	  "format": "geoseal-override/1",
//	  "as_of": "2026-12-01",
//	  "source": "Export compliance memo EC-2026-17",
//	  "regions": [
//	    {"name": "mexicocentral", "display_name": "Mexico Central", "country": "MX",
//	     "cloud": "AzureCloud", "pair": "southcentralus", "note": "pair declared by Azure support case 123"}
//	  ],
//	  "policies": [
//	    {"name": "itar", "extends": "itar",
//	     "deny_regions": [{"region": "westeurope", "reason": "customer TCP", "citation": "TCP 4.2"}]},
//	    {"name": "acme-eu", "authority": "Acme", "citation": "Acme data policy 7",
//	     "allow_countries": [{"country": "DE", "name": "Germany", "effective": "2026-12-01", "citation": "Acme 7.1"}]}
//	  ]
//	}
//
// A region entry replaces the catalog's entry of the same name (a whole
// entry, so nothing is inherited by accident). A policy entry with "extends"
// starts from the named policy and adds to its lists; to take a country off
// a deny-list, list it in "remove_countries" with the citation that removed
// it — weakening a policy is possible, but never silent. A policy entry
// without "extends" defines a new policy and may not reuse an existing name.
//
// Parsing is strict: unknown fields, duplicate keys, malformed codes or
// dates, missing citations, and pairs or rules naming unknown regions are
// errors (*DataError), never skipped.
type Override struct {
	asOf     string
	source   string
	regions  []Region
	policies []policySpec
}

type overrideFile struct {
	Format   string       `json:"format"`
	AsOf     string       `json:"as_of"`
	Source   string       `json:"source"`
	Regions  []Region     `json:"regions"`
	Policies []policySpec `json:"policies"`
}

// policySpec is a policy as JSON writes it (built-in file and overrides).
type policySpec struct {
	Name            string         `json:"name"`
	Extends         string         `json:"extends,omitempty"`
	Authority       string         `json:"authority,omitempty"`
	Title           string         `json:"title,omitempty"`
	Citation        string         `json:"citation,omitempty"`
	Description     string         `json:"description,omitempty"`
	Sources         []Source       `json:"sources,omitempty"`
	AllowCountries  []CountryRule  `json:"allow_countries,omitempty"`
	DenyCountries   []CountryRule  `json:"deny_countries,omitempty"`
	AllowRegions    []RegionRule   `json:"allow_regions,omitempty"`
	DenyRegions     []RegionRule   `json:"deny_regions,omitempty"`
	TreatAs         []CountryAlias `json:"treat_as,omitempty"`
	Removed         []CountryRule  `json:"removed,omitempty"`
	RemoveCountries []CountryRule  `json:"remove_countries,omitempty"`
}

// LoadOverride parses an override file (at most 1 MiB). See Override for
// the format. Errors are *DataError with the path of the bad entry.
func LoadOverride(r io.Reader) (*Override, error) {
	var f overrideFile
	if err := decodeStrict(r, &f, maxOverrideSize); err != nil {
		return nil, &DataError{File: "override", Err: err}
	}
	if f.Format != OverrideFormat {
		return nil, &DataError{File: "override", Path: "format", Err: fmt.Errorf("want %q, got %q", OverrideFormat, f.Format)}
	}
	if err := checkDate(f.AsOf); err != nil {
		return nil, &DataError{File: "override", Path: "as_of", Err: err}
	}
	if strings.TrimSpace(f.Source) == "" {
		return nil, &DataError{File: "override", Path: "source", Err: errors.New("say where the changes come from (a memo, a rule, a support case)")}
	}
	if len(f.Regions) == 0 && len(f.Policies) == 0 {
		return nil, &DataError{File: "override", Err: errors.New("no regions and no policies: nothing to override")}
	}
	seen := map[string]bool{}
	for i, r := range f.Regions {
		if err := validateRegion(r); err != nil {
			return nil, &DataError{File: "override", Path: fmt.Sprintf("regions[%d]", i), Err: err}
		}
		if seen[r.Name] {
			return nil, &DataError{File: "override", Path: fmt.Sprintf("regions[%d]", i), Err: fmt.Errorf("duplicate region %q", r.Name)}
		}
		seen[r.Name] = true
	}
	names := map[string]bool{}
	for i, ps := range f.Policies {
		path := fmt.Sprintf("policies[%d]", i)
		if !validPolicyName(ps.Name) {
			return nil, &DataError{File: "override", Path: path, Err: fmt.Errorf("name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", ps.Name)}
		}
		if names[ps.Name] {
			return nil, &DataError{File: "override", Path: path, Err: fmt.Errorf("duplicate policy %q", ps.Name)}
		}
		names[ps.Name] = true
		if ps.Extends == "" && len(ps.RemoveCountries) > 0 {
			return nil, &DataError{File: "override", Path: path, Err: errors.New("remove_countries needs extends")}
		}
		if len(ps.Removed) > 0 {
			return nil, &DataError{File: "override", Path: path, Err: errors.New("removed is history kept by geoseal; use remove_countries")}
		}
		// Build against nothing to catch malformed entries now, at load
		// time, rather than when the override is applied.
		if ps.Extends == "" {
			if _, err := ps.build(nil, f.AsOf); err != nil {
				return nil, &DataError{File: "override", Path: path, Err: err}
			}
		} else if err := ps.checkEntries(); err != nil {
			return nil, &DataError{File: "override", Path: path, Err: err}
		}
	}
	return &Override{asOf: f.AsOf, source: f.Source, regions: f.Regions, policies: f.Policies}, nil
}

// AsOf returns the override file's date.
func (o *Override) AsOf() string { return o.asOf }

// Source returns where the override file says its changes come from.
func (o *Override) Source() string { return o.source }

// Apply returns a new catalog: c with o's regions and policies layered on
// top. c is not modified. The result is checked as a whole: every pair and
// every region named by a policy rule must be a known region.
func (c *Catalog) Apply(o *Override) (*Catalog, error) {
	if o == nil {
		return c, nil
	}
	n := &Catalog{
		asOf:     c.asOf,
		sources:  append(slices.Clone(c.sources), Source{Title: "override: " + o.source, Retrieved: o.asOf}),
		regions:  maps.Clone(c.regions),
		policies: maps.Clone(c.policies),
	}
	for _, r := range o.regions {
		n.regions[r.Name] = r
	}
	if err := n.checkPairs("override"); err != nil {
		return nil, err
	}
	for i, ps := range o.policies {
		path := fmt.Sprintf("policies[%d]", i)
		var base *Policy
		if ps.Extends != "" {
			b, ok := n.policies[ps.Extends]
			if !ok {
				return nil, &DataError{File: "override", Path: path, Err: fmt.Errorf("extends unknown policy %q", ps.Extends)}
			}
			base = b
		} else if _, exists := n.policies[ps.Name]; exists {
			return nil, &DataError{File: "override", Path: path,
				Err: fmt.Errorf("policy %q already exists; to change it, set \"extends\": %q", ps.Name, ps.Name)}
		}
		p, err := ps.build(base, o.asOf)
		if err != nil {
			return nil, &DataError{File: "override", Path: path, Err: err}
		}
		for _, rr := range slices.Concat(p.AllowRegions, p.DenyRegions) {
			if _, ok := n.regions[rr.Region]; !ok {
				return nil, &DataError{File: "override", Path: path, Err: fmt.Errorf("rule names unknown region %q (declare it under regions)", rr.Region)}
			}
		}
		n.policies[p.Name] = p
	}
	return n, nil
}

// checkEntries validates the entries of an extending spec on their own.
func (ps policySpec) checkEntries() error {
	for i, r := range slices.Concat(ps.AllowCountries, ps.DenyCountries, ps.RemoveCountries) {
		if err := r.validate(); err != nil {
			return fmt.Errorf("country entry %d: %w", i, err)
		}
	}
	probe := &Policy{Name: ps.Name, Citation: "probe", AllowRegions: ps.AllowRegions, DenyRegions: ps.DenyRegions, TreatAs: ps.TreatAs,
		DenyCountries: []CountryRule{{Country: "US", Effective: "2000-01-01", Citation: "probe"}}}
	return probe.Validate()
}

// build turns a spec into a policy, on top of base when it extends one.
func (ps policySpec) build(base *Policy, asOf string) (*Policy, error) {
	var p *Policy
	if base != nil {
		p = base.clone()
		p.Name = ps.Name
	} else {
		p = &Policy{Name: ps.Name}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&p.Authority, ps.Authority)
	set(&p.Title, ps.Title)
	set(&p.Citation, ps.Citation)
	set(&p.Description, ps.Description)
	p.AsOf = asOf
	p.Sources = append(p.Sources, ps.Sources...)
	p.AllowCountries = append(p.AllowCountries, ps.AllowCountries...)
	p.DenyCountries = append(p.DenyCountries, ps.DenyCountries...)
	p.AllowRegions = append(p.AllowRegions, ps.AllowRegions...)
	p.DenyRegions = append(p.DenyRegions, ps.DenyRegions...)
	p.TreatAs = append(p.TreatAs, ps.TreatAs...)
	p.Removed = append(p.Removed, ps.Removed...)
	for _, rm := range ps.RemoveCountries {
		if err := rm.validate(); err != nil {
			return nil, fmt.Errorf("remove_countries: %w", err)
		}
		i := slices.IndexFunc(p.DenyCountries, func(d CountryRule) bool { return d.Country == rm.Country })
		if i < 0 {
			return nil, fmt.Errorf("remove_countries: %s is not on the deny-list of %q", rm.Country, ps.Extends)
		}
		p.DenyCountries = slices.Delete(p.DenyCountries, i, i+1)
		// The removal goes into the record, replacing any older removal.
		p.Removed = slices.DeleteFunc(p.Removed, func(d CountryRule) bool { return d.Country == rm.Country })
		p.Removed = append(p.Removed, rm)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
