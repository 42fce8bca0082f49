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
// a country listed in 22 CFR 126.1 for the ITAR (Russia is one; the carve-out
// stopped naming it separately on 2025-07-07, FR Doc. 2025-12560).
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
//     data/policies.json); pairs Microsoft documents are marked
//     pair_confirmed, regions Microsoft's lists do not show are marked
//     unconfirmed. LoadOverride reads a user's override file and
//     Catalog.Apply layers it on top, so a new region or a changed country
//     list needs no new release.
//   - A Resolver says where an account's data lives: Static for a declared
//     location (and for the Azurite emulator), ARM to ask Azure Resource
//     Manager. StaticKeyVault and KeyVaultARM say where a key-encryption
//     key lives (GuardOptions.KeyVaults).
//   - A Guard applies a Policy to the resolved Locations and returns a
//     Decision; a refusal is a *Violation whose message names the region,
//     its country, the rule and its citation.
//
// # What the guard checks
//
// Every region below is judged by the policy (its country, the country it
// counts as, the allow- and deny-lists); a region the catalog does not know
// is refused.
//
//   - The primary region of the account.
//   - Its secondary, for a geo-redundant SKU (GRS, RA-GRS, GZRS, RA-GZRS, V2
//     variants, and any SKU geoseal does not recognise). A secondary no one
//     reported is the catalog pair, marked "inferred", and refused under
//     every policy but Unrestricted unless Microsoft confirms that pair; no
//     pair at all is refused (unknown-secondary).
//   - A topology that cannot exist: a secondary in another cloud than the
//     primary, declared or reported (cross-cloud-replica).
//   - With ARM, the account's own state: a failover in progress, or
//     geo-replication statistics saying the secondary is unavailable
//     (failover-in-progress); a SKU conversion in progress, whose target SKU
//     is judged as if it were done (an LRS account in Singapore converting
//     to GRS replicates to Hong Kong), and a migration naming no target
//     (conversion-unknown); AllowCrossTenantReplication not explicitly false
//     (cross-tenant-replication), because a destination in another tenant
//     cannot be located. Each Resolve reads the account's properties, so no
//     decision outlives a failover (LastGeoFailoverTime changing).
//   - With ARM, every object replication destination, resolved by resource
//     id and judged like the account (primary, secondary, own state),
//     following chains up to 4 hops and 16 accounts; a destination that
//     cannot be resolved, or a longer chain, is refused (unresolved).
//   - With GuardOptions.KeyVaults, where each key-encryption key lives:
//     the vault's region and its pair (Key Vault replicates a vault to the
//     pair, except in Brazil South, West US 3 and unpaired regions), or a
//     Managed HSM's region and the one it was extended to. Whoever holds
//     the key can decrypt.
//   - CheckURL: the endpoint's cloud against every region's (cloud-mismatch),
//     loopback endpoints only with Static (emulator-endpoint), and, with ARM,
//     that the endpoint is one of the account's own blob endpoints
//     (foreign-endpoint).
//
// A Static(primary, "") decision says that the account was declared as not
// geo-replicated, and how to declare a secondary or use ARM instead.
//
// # What the guard cannot see
//
// Copies made by services outside the storage account are out of its
// reach, and keeping them in allowed regions is the operator's duty: Azure
// Backup vaulted backups of blobs (and their cross-region restore), Azure
// Data Factory, AzCopy or Storage Mover jobs, Event Grid or Functions that
// copy blobs, diagnostic logs and Defender for Storage scans, Microsoft
// support copies, and any replication configured after the check (the
// guard decides at write time; ARM answers are reused for ARMOptions.TTL).
// Keys held outside Azure Key Vault (a PKCS#11 HSM, a local key file) are
// not located either. Because the data is end-to-end encrypted before it
// leaves the process, such copies hold ciphertext only; whether that is
// enough is a question for your export compliance officer.
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
//	res := region.ARM(accounts, "rg", "account", &region.ARMOptions{Credential: cred})
//	g, err := region.NewGuard(p, res, &region.GuardOptions{
//		KeyVaults: []region.Resolver{region.KeyVaultARM(cred, subscription, keyURL, nil)},
//	})
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
//	geoseal region check --policy itar --primary eastus --keyvault-region southeastasia
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
