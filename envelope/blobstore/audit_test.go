package blobstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/internal/kvtest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
	"github.com/geoseal/geoseal/stream"
)

// findingKey names a finding in a test: blob[@snapshot] kind.
func findingKey(f Finding) string {
	name := f.Blob
	if f.Snapshot != "" {
		name += "@snapshot"
	}
	return name + " " + f.Kind
}

// TestAudit audits a container holding one of everything, with the key
// the objects should be wrapped for, and checks every count, every
// finding and what it cost: headers only, never a body.
func TestAudit(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	a, b, c, d := f.kr, formattest.NewAES(t), formattest.NewAES(t), formattest.NewAES(t)
	body := randomBytes(1 << 20) // bodies the audit must not read
	withB, withAC, withD := f.newClient(t, b, nil), f.newClient(t, keyring.NewMulti(a, c), nil), f.newClient(t, d, nil)
	for i := range 3 {
		f.upload(t, fmt.Sprintf("ok/%d", i), body, nil)
	}
	if _, err := withB.Upload(ctx, "other-key", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := withAC.Upload(ctx, "two-keys", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	f.putRaw(t, "plain/1", []byte("export-controlled drawing, in the clear"), nil)
	f.putRaw(t, "plain/2", body, nil)
	f.putRaw(t, "plain/empty", nil, nil)
	_, cse := loadCSE(t)
	f.putCSE(t, "cse/v2", cse[1])
	f.putRaw(t, "cse/v1", []byte("0123456789abcdef"), map[string]*string{csev2.MetadataKey: to.Ptr(`{"EncryptionAgent":{"Protocol":"1.0","EncryptionAlgorithm":"AES_CBC_256"},"WrappedContentKey":{"KeyId":"v1-kek","EncryptedKey":"3u9KkyRxtfeHQ/vcHdCOl5rh+BFWw3GzNLsjSZuyfV0GeGsLt7Ag2g==","Algorithm":"RSA-OAEP"},"ContentEncryptionIV":"aS8XeXf9rL8b4+u0Fd3KWw=="}`)})
	f.putRaw(t, "cse/odd", []byte("x"), map[string]*string{csev2.MetadataKey: to.Ptr(`not json`)})
	f.upload(t, "stripped", body, nil)
	if _, err := f.plain.NewBlobClient("stripped").SetMetadata(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Geoseal metadata over bytes that are no geoseal header.
	md := map[string]*string{}
	if err := setObjectMetadata(md, 300, &stream.Options{ChunkSize: testChunk}, 0); err != nil {
		t.Fatal(err)
	}
	f.putRaw(t, "broken", randomBytes(300+32), md)
	// Revision D, snapshotted, then rotated to A: the snapshot is a copy D
	// still opens.
	if _, err := withD.Upload(ctx, "revised", strings.NewReader("revision D"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.plain.NewBlobClient("revised").CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := withD.Rewrap(ctx, "revised", a, nil); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []string
	f.wire.Reset()
	resp, err := f.client.Audit(ctx, &AuditOptions{Keys: []keyring.Wrapper{a}, Findings: func(fd Finding) {
		mu.Lock()
		got = append(got, findingKey(fd))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{
		"broken unreadable",
		"cse/odd unknown-encryption",
		"cse/v1 cannot-open",
		"cse/v1 no-integrity",
		"cse/v2 cannot-open",
		"other-key cannot-open",
		"plain/1 not-encrypted",
		"plain/2 not-encrypted",
		"plain/empty not-encrypted",
		"revised@snapshot outside-keys",
		"stripped missing-metadata",
		"two-keys outside-keys",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if resp.Blobs != 14 || resp.Snapshots != 1 || resp.Versions != 0 {
		t.Errorf("%d blobs, %d snapshots, %d versions", resp.Blobs, resp.Snapshots, resp.Versions)
	}
	wantFormats := map[string]int64{FormatGeoseal: 8, FormatCSEv2: 1, FormatCSEv1: 1, FormatNotEncrypted: 3, FormatUnknown: 1}
	if !mapsEqual(resp.ByFormat, wantFormats) {
		t.Errorf("by format: %v, want %v", resp.ByFormat, wantFormats)
	}
	wantKeys := map[string]int64{a.KeyID(): 6, b.KeyID(): 1, c.KeyID(): 1, cse[1].keyID(t): 1, "v1-kek": 1}
	if !mapsEqual(resp.KeyIDs, wantKeys) {
		t.Errorf("key ids: %v, want %v", resp.KeyIDs, wantKeys)
	}
	if len(resp.Keys) != 1 || resp.Keys[0].KeyID != a.KeyID() || resp.Keys[0].Objects != 6 || resp.Keys[0].KeyVault != nil {
		t.Errorf("keys: %+v", resp.Keys)
	}
	if resp.Findings[FindingNotEncrypted] != 3 || resp.Findings[FindingCannotOpen] != 3 {
		t.Errorf("finding counts: %v", resp.Findings)
	}
	if resp.Decision == nil || !resp.Decision.Allowed || resp.GuardError != nil {
		t.Errorf("decision: %+v, %v", resp.Decision, resp.GuardError)
	}
	if resp.FIPS != CurrentFIPSState() || resp.FIPS.ModuleVersion == "" || resp.Finished.Before(resp.Started) {
		t.Errorf("FIPS state %+v, times %v..%v", resp.FIPS, resp.Started, resp.Finished)
	}
	// One listing, a GET per geoseal header (7 with metadata and the
	// snapshot's, then the stripped one's two), 13 bytes of each plain blob
	// of at least 13 bytes, nothing for the rest: 13 requests, no body.
	if n := f.wire.Requests.Load(); n != 1+8+2+2 || f.wire.Puts.Load() != 0 {
		t.Errorf("the audit cost %v", f.wire)
	}
	if r := f.wire.Received.Load(); r > 64<<10 {
		t.Errorf("the audit received %d bytes: it read a body (%v)", r, f.wire)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// keyID is the key id a CSE v2 test blob's metadata names.
func (b cseBlob) keyID(t *testing.T) string {
	ed, err := csev2.ParseEncryptionData([]byte(b.EncryptionData))
	if err != nil {
		t.Fatal(err)
	}
	return ed.WrappedContentKey.KeyID
}

// TestAuditKeyVault audits with a Key Vault key: its type, HSM and
// exportable flags come from the key, its vault's region from the guard.
func TestAuditKeyVault(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	s := kvtest.NewServer(t)
	s.CreateOctHSMKey("hsm")
	kv, err := keyring.NewKeyVault(ctx, s.KeyURL("hsm"), s.Credential(), &keyring.KeyVaultOptions{ClientOptions: s.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	older := kv.KeyID()
	f.upload(t, "under-kv", []byte("x"), nil)
	if _, err := f.client.Rewrap(ctx, "under-kv", kv, nil); err != nil {
		t.Fatal(err)
	}
	// A newer version of the key opens what the older one wrapped.
	s.RotateKey("hsm")
	s.SetExportable("hsm", true)
	kv2, err := keyring.NewKeyVault(ctx, s.KeyURL("hsm"), s.Credential(), &keyring.KeyVaultOptions{ClientOptions: s.ClientOptions()})
	if err != nil || kv2.KeyID() == older {
		t.Fatalf("rotated key: %v", err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), &region.GuardOptions{KeyVaults: []region.Resolver{region.StaticKeyVault("westeurope")}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(f.container, f.kr, guard, nil)
	if err != nil {
		t.Fatal(err)
	}
	var findings []Finding
	resp, err := client.Audit(ctx, &AuditOptions{Keys: []keyring.Wrapper{kv2}, Findings: func(fd Finding) { findings = append(findings, fd) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 0 {
		t.Errorf("findings: %+v", findings)
	}
	k := resp.Keys[0]
	if k.KeyID != kv2.KeyID() || k.Objects != 1 || k.KeyVault == nil || k.KeyVault.KeyType != "oct-HSM" || !k.KeyVault.HSM || !k.KeyVault.Exportable {
		t.Fatalf("the Key Vault key: %+v (%+v)", k, k.KeyVault)
	}
	if k.Vault == nil || k.Vault.Primary != "westeurope" {
		t.Fatalf("the key's vault: %+v", k.Vault)
	}
}

// itarRefusingGuard is a guard that refuses the account: ITAR, with the
// account in southeastasia and eastasia.
func itarRefusingGuard(t testing.TB) *region.Guard {
	t.Helper()
	itar, err := region.LoadPolicy("itar")
	if err != nil {
		t.Fatal(err)
	}
	guard, err := region.NewGuard(itar, region.Static("southeastasia", "eastasia"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return guard
}

// TestAuditRefusedAccount audits an account the guard refuses: the audit
// runs (it writes nothing) and reports the refusal.
func TestAuditRefusedAccount(t *testing.T) {
	f := newFixture(t, nil)
	f.upload(t, "x", []byte("x"), nil)
	guard := itarRefusingGuard(t)
	client, err := NewClient(f.container, f.kr, guard, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Audit(context.Background(), nil)
	var v *region.Violation
	if err != nil || resp.Blobs != 1 || resp.Decision == nil || resp.Decision.Allowed || !errors.As(resp.GuardError, &v) {
		t.Fatalf("audit of a refused account: %+v, %v", resp, err)
	}
}

// TestAuditShards checks that the shards of an audit add up to the whole.
func TestAuditShards(t *testing.T) {
	f := newFixture(t, nil)
	uploadMany(t, f.client, "s/", 30, 16)
	for i := range 5 {
		f.putRaw(t, fmt.Sprintf("p/%d", i), []byte("plain"), nil)
	}
	var blobs, plain int64
	for shard := range 4 {
		resp, err := f.client.Audit(context.Background(), &AuditOptions{Shard: shard, Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		blobs += resp.Blobs
		plain += resp.Findings[FindingNotEncrypted]
	}
	if blobs != 35 || plain != 5 {
		t.Fatalf("4 shards audited %d blobs, %d plain; want 35 and 5", blobs, plain)
	}
}

func TestVaultNamed(t *testing.T) {
	for _, tc := range []struct {
		vault, id string
		want      bool
	}{
		{"https://contoso.vault.azure.net", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/contoso", true},
		{"https://contoso.vault.azure.net", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/CONTOSO", true},
		{"https://h.managedhsm.azure.net", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/managedHSMs/h", true},
		{"https://contoso2.vault.azure.net", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/contoso", false},
		{"https://contoso.vault.azure.net", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/", false},
		{"https://c.vault.azure.net", "contosoc", false},
	} {
		if got := vaultNamed(tc.vault, tc.id); got != tc.want {
			t.Errorf("vaultNamed(%q, %q) = %v", tc.vault, tc.id, got)
		}
	}
}
