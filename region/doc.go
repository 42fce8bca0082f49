// Package region decides whether an Azure storage account may hold
// export-controlled data, from where the account keeps it.
//
// # Why
//
// The EAR (15 CFR 734.18(a)(5)) and the ITAR (22 CFR 120.54(a)(5)) say that
// sending or storing unclassified technology or technical data is not an
// export when it is end-to-end encrypted with FIPS 140 validated (or equally
// strong) cryptography AND not intentionally stored in a proscribed country:
// a country in EAR Country Group D:5 or the Russian Federation for the EAR,
// a country listed in 22 CFR 126.1 or the Russian Federation for the ITAR.
// Encryption is the envelope package's job; this package is the third
// condition. It answers one question before any byte is sent: is every
// region that will hold a copy of the data allowed by the policy?
//
// "Every region" is the trap. A geo-redundant account (GRS, RA-GRS, GZRS,
// RA-GZRS) keeps a second copy in its secondary region. An account in
// Southeast Asia (Singapore) replicates to East Asia, which is in Hong Kong
// SAR, and Hong Kong counts as China under both the EAR and the ITAR since
// 2020. The guard checks the secondary as strictly as the primary.
//
// # How
//
// Three pieces:
//
//   - A Catalog places every Azure region (public cloud, Azure Government,
//     Azure China, restricted-access and retired regions) in an ISO 3166
//     country and a cloud, with its geo-replication pair, and holds the named
//     policies. The data is embedded, dated and sourced (data/regions.json,
//     data/policies.json). LoadOverride reads a user's override file and
//     Catalog.Apply layers it on top, so a new region or a changed country
//     list needs no new release.
//   - A Resolver says where an account's data lives: Static for a declared
//     location (and for the Azurite emulator), ARM to ask Azure Resource
//     Manager (cached, because a failover moves the primary).
//   - A Guard applies a Policy to the resolved Location and returns a
//     Decision; a refusal is a *Violation whose message names the region,
//     its country, the rule and its citation.
//
// Built-in policies: "ear" (Country Group D:5 plus Russia), "itar"
// (22 CFR 126.1 plus Russia) and "us-only" (regions in the United States,
// public cloud or Azure Government). Unrestricted is an explicit allow-all
// for data that is not export-controlled.
//
// The guard denies by default: a region it does not know, or a
// geo-replicated account whose secondary it cannot find, is refused, with
// advice on how to declare it.
//
//	p, err := region.LoadPolicy("itar")
//	// handle err
//	g, err := region.NewGuard(p, region.ARM(accounts, "rg", "account", nil), nil)
//	// handle err
//	d, err := g.CheckURL(ctx, "https://account.blob.core.windows.net/")
//	var v *region.Violation
//	if errors.As(err, &v) {
//		// refused: do not write; v.Error() says why, d says what was checked
//	}
//
// The geoseal command exposes the same decision:
//
//	geoseal region check --policy itar --primary southeastasia --secondary eastasia
//
// # Not legal advice
//
// The lists are research, dated and cited, not legal advice. Export-control
// lists change (Cambodia left D:5 in 2026; Nicaragua joined in 2024), and a
// policy is only as current as its data: review Catalog.AsOf and
// Policy.AsOf, and have your export compliance officer confirm the lists
// against the current eCFR before relying on them. The storage condition is
// one of several: the data must also be unclassified and end-to-end
// encrypted with keys no one in a proscribed country holds.
package region
