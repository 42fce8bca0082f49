// Package examples holds geoseal's runnable examples, one main package
// each, the test that keeps the README's quick start compiling, and the
// one that checks the Kubernetes manifest.
//
//	go run ./examples/quickstart  local key, region guard, upload, ranged download, verify
//	go run ./examples/hsm         the key-encryption key in a PKCS#11 HSM (SoftHSM2)
//	go run ./examples/keyvault    the key-encryption key in Azure Key Vault
//	go run ./examples/region      an upload refused for a proscribed geo-replica
//	go run ./examples/rotate      rewrap a container to a new key
//
// examples/kubernetes/rewrap-all-job.yaml is a Kubernetes Indexed Job that
// rotates a container with one geoseal rewrap-all worker per shard; a test
// parses it and checks every argument against the binary (README.md,
// "Rotating keys at scale").
//
// Each runs against Azurite, started for the run, unless
// AZURE_STORAGE_CONNECTION_STRING names a storage account (then
// GEOSEAL_EXAMPLE_PRIMARY_REGION, and GEOSEAL_EXAMPLE_SECONDARY_REGION for a
// geo-replicated account, declare where it keeps its data). `make demo` runs
// them all. Each prints what it does, step by step, and exits non-zero on
// any unexpected outcome; each has a test that runs it.
package examples
