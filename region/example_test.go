package region_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/geoseal/geoseal/region"
)

// A Singapore account with geo-redundant storage replicates to Hong Kong,
// which counts as China under the ITAR: the guard refuses it.
func ExampleGuard_Check() {
	p, err := region.LoadPolicy("itar")
	if err != nil {
		log.Fatal(err)
	}
	g, err := region.NewGuard(p, region.Static("southeastasia", "eastasia"), nil)
	if err != nil {
		log.Fatal(err)
	}
	d, err := g.Check(context.Background())
	var v *region.Violation
	if errors.As(err, &v) {
		fmt.Println("allowed:", d.Allowed)
		fmt.Println("primary:", d.Primary.Region, d.Primary.Country, d.Primary.Rule)
		fmt.Println("secondary:", d.Secondary.Region, d.Secondary.Country, "as", d.Secondary.TreatedAs, d.Secondary.Rule)
		fmt.Println(strings.SplitN(v.Error(), " (HK", 2)[0])
	}
	// Output:
	// allowed: false
	// primary: southeastasia SG allowed-country
	// secondary: eastasia HK as CN denied-country
	// region: refused: secondary region eastasia is in Hong Kong SAR (China), which ITAR 22 CFR 126.1(d)(1) proscribes
}

// CheckURL also checks that the endpoint's cloud matches the regions; the
// Azurite emulator is accepted with a declared (Static) location.
func ExampleGuard_CheckURL() {
	p, _ := region.LoadPolicy("us-only")
	g, _ := region.NewGuard(p, region.Static("usgovvirginia", "usgovtexas"), nil)

	d, err := g.CheckURL(context.Background(), "https://acct.blob.core.usgovcloudapi.net")
	fmt.Println(d.Allowed, d.EndpointCloud, err)

	_, err = g.CheckURL(context.Background(), "https://acct.blob.core.windows.net")
	fmt.Println(errors.As(err, new(*region.Violation)))
	// Output:
	// true AzureUSGovernment <nil>
	// true
}

// An override file declares what the embedded catalog does not know yet,
// here a pair for a region that has none, without a new geoseal release.
func ExampleLoadOverride() {
	o, err := region.LoadOverride(strings.NewReader(`{
	  "format": "geoseal-override/1",
	  "as_of": "2026-12-01",
	  "source": "Azure support case 123",
	  "regions": [{"name": "mexicocentral", "display_name": "Mexico Central",
	               "country": "MX", "cloud": "AzureCloud", "pair": "southcentralus"}]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	cat, err := region.DefaultCatalog().Apply(o)
	if err != nil {
		log.Fatal(err)
	}
	r, _ := cat.Region("mexicocentral")
	fmt.Println(r.Name, r.Country, "->", r.Pair)

	// A misspelt field is an error, never ignored.
	_, err = region.LoadOverride(strings.NewReader(`{"format":"geoseal-override/1","as_of":"2026-12-01","source":"x","regoins":[]}`))
	fmt.Println(err)
	// Output:
	// mexicocentral MX -> southcentralus
	// region: override: json: unknown field "regoins"
}

// brazilsouth's geo-replication pair is one-way and leaves Brazil.
func ExampleCatalog_Region() {
	cat := region.DefaultCatalog()
	for _, name := range []string{"brazilsouth", "southcentralus"} {
		r, _ := cat.Region(name)
		fmt.Printf("%s (%s) -> %s\n", r.Name, r.Country, r.Pair)
	}
	// Output:
	// brazilsouth (BR) -> southcentralus
	// southcentralus (US) -> northcentralus
}
