package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/keyfile"
	"github.com/geoseal/geoseal/internal/pysdk"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// migrateLineJSON is a line of migrate --json: a blob's outcome, or the
// summary.
type migrateLineJSON struct {
	Blob     string   `json:"blob"`
	Snapshot string   `json:"snapshot"`
	Outcome  string   `json:"outcome"`
	Format   string   `json:"format"`
	KeyIDs   []string `json:"key_ids"`
	Error    string   `json:"error"`
	Warning  string   `json:"warning"`
	Summary  *struct {
		Migrated     int64  `json:"migrated"`
		NotMigrated  int64  `json:"not_migrated"`
		Failed       int64  `json:"failed"`
		WouldMigrate int64  `json:"would_migrate"`
		Resumed      bool   `json:"resumed"`
		Done         bool   `json:"done"`
		FromV1       int64  `json:"migrated_from_v1"`
		Warning      string `json:"warning"`
	} `json:"summary"`
}

func parseMigrateLines(t *testing.T, out string) (lines []migrateLineJSON, summary migrateLineJSON) {
	t.Helper()
	for l := range strings.Lines(out) {
		var m migrateLineJSON
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("migrate --json line %q: %v", l, err)
		}
		if m.Summary != nil {
			summary = m
			continue
		}
		lines = append(lines, m)
	}
	if summary.Summary == nil {
		t.Fatalf("migrate --json printed no summary:\n%s", out)
	}
	return lines, summary
}

// shardOf is the walker's shard of a blob, as the documentation gives it:
// the first 8 bytes of SHA-256 of the name, big-endian, modulo N.
func shardOf(name string, n int) int {
	sum := sha256.Sum256([]byte(name))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// cseContainer is a container the Python SDK filled with CSE v1 and v2
// blobs under one RSA key-encryption key, and plain blobs.
type cseContainer struct {
	cc          *container.Client
	name        string
	env         []string
	blobs       map[string]pysdk.Blob
	kek         pysdk.KEK
	plainBefore map[string]azcore.ETag
}

func newCSEContainer(t *testing.T, bulk int) *cseContainer {
	t.Helper()
	pysdk.Require(t)
	srv := azurite.ForTest(t)
	c := &cseContainer{name: "legacy", env: []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}, blobs: map[string]pysdk.Blob{}}
	var err error
	if c.cc, err = container.NewClientFromConnectionString(srv.ConnectionString(), c.name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// RSA-OAEP-256 unwraps in FIPS 140-only mode too; RSA-OAEP (SHA-1) only
	// outside it.
	c.kek = pysdk.RSAKEK(t, "local:legacy-rsa", "RSA-OAEP-256", priv)
	sha1KEK := pysdk.RSAKEK(t, "local:legacy-rsa", "RSA-OAEP", priv)
	add := func(b pysdk.Blob) { c.blobs[b.Name] = b }
	dirs := map[string]string{pysdk.V1: "v1", pysdk.V2: "v2"}
	for _, v := range []string{pysdk.V1, pysdk.V2} {
		for _, n := range []int{0, 1, 15, 16, 17, 1000, 100000} {
			add(pysdk.Blob{Name: fmt.Sprintf("%s/single/%d", dirs[v], n), Version: v, KEK: c.kek, Plaintext: randomBytes(t, n)})
		}
		for _, n := range []int{100000, 4<<20 + 999} {
			add(pysdk.Blob{Name: fmt.Sprintf("%s/chunked/%d", dirs[v], n), Version: v, KEK: c.kek, Chunked: true, Plaintext: randomBytes(t, n),
				Metadata: map[string]string{"owner": "cad", "Drawing": "x57"}, Tags: map[string]string{"program": "p7"}})
		}
		if !fips140.Enforced() {
			add(pysdk.Blob{Name: fmt.Sprintf("%s/sha1/1000", dirs[v]), Version: v, KEK: sha1KEK, Plaintext: randomBytes(t, 1000)})
		}
	}
	for i := range bulk {
		v := []string{pysdk.V1, pysdk.V2}[i%2]
		add(pysdk.Blob{Name: fmt.Sprintf("bulk/%03d", i), Version: v, KEK: c.kek, Plaintext: randomBytes(t, 2000+i)})
	}
	for _, name := range []string{"plain/readme", "plain/empty", "plain/data"} {
		add(pysdk.Blob{Name: name, Plaintext: randomBytes(t, len(name)*100), Metadata: map[string]string{"kind": "plain"}})
	}
	all := slices.Collect(func(yield func(pysdk.Blob) bool) {
		for _, b := range c.blobs {
			if !yield(b) {
				return
			}
		}
	})
	pysdk.Upload(t, srv.ConnectionString(), c.name, all)
	c.plainBefore = map[string]azcore.ETag{}
	for name, b := range c.blobs {
		if b.Version == "" {
			p, err := c.cc.NewBlobClient(name).GetProperties(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			c.plainBefore[name] = *p.ETag
		}
	}
	return c
}

// args are the arguments of a migrate of the whole container with new
// keys from keyFile.
func (c *cseContainer) args(keyFile string, extra ...string) []string {
	return append([]string{"migrate", "--container", c.name, "--from", "azure-cse-v1,azure-cse-v2", "--to", "geoseal",
		"--rsa-private", c.kek.File(), "--key-id", c.kek.KeyID(), "--to-key-file", keyFile,
		"--policy", "itar", "--primary", "eastus", "--secondary", "westus", "--json"}, extra...)
}

// checkMigrated checks the container after a migration: every former CSE
// blob opens, with the new key only, as a geoseal object with its
// plaintext, its metadata and tags and without "encryptiondata"; the plain
// blobs are untouched.
func (c *cseContainer) checkMigrated(t *testing.T, keyFile string) {
	t.Helper()
	ctx := context.Background()
	key, err := keyfile.ReadAESKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := blobstore.NewClient(c.cc, kr, guard, nil) // reads geoseal objects only
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range c.blobs {
		props, err := c.cc.NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b.Version == "" {
			if *props.ETag != c.plainBefore[name] {
				t.Errorf("plain blob %s was changed", name)
			}
			continue
		}
		for k := range props.Metadata {
			if strings.EqualFold(k, "encryptiondata") {
				t.Errorf("%s keeps its %s entry", name, k)
			}
		}
		dl, err := reader.Download(ctx, name, nil)
		if err != nil {
			t.Errorf("%s does not open as a geoseal object: %v", name, err)
			continue
		}
		pt, err := io.ReadAll(dl.Body)
		dl.Body.Close()
		if err != nil || !bytes.Equal(pt, b.Plaintext) || dl.Properties.Format != blobstore.FormatGeoseal {
			t.Errorf("%s: %v, %d bytes of %d, format %s", name, err, len(pt), len(b.Plaintext), dl.Properties.Format)
		}
		for k, v := range b.Metadata {
			if got, ok := props.Metadata[strings.ToUpper(k[:1])+strings.ToLower(k[1:])]; !ok || *got != v {
				t.Errorf("%s: metadata %s lost (%v)", name, k, props.Metadata)
			}
		}
		if len(b.Tags) > 0 {
			tags, err := c.cc.NewBlobClient(name).GetTags(ctx, nil)
			if err != nil || len(tags.BlobTagSet) != len(b.Tags) || *tags.BlobTagSet[0].Value != b.Tags[*tags.BlobTagSet[0].Key] {
				t.Errorf("%s: tags %v, want %v (%v)", name, tags.BlobTagSet, b.Tags, err)
			}
		}
	}
}

// TestBinaryMigrateShards is the end-to-end migration: the Python SDK's CSE
// v1 and v2 blobs (single put and chunked) and plain blobs, migrated by two
// geoseal processes, each on its shard of one job; one is killed (SIGKILL)
// mid-run and started again, and resumes after its last checkpoint.
// Afterwards every former CSE blob opens as a geoseal object with its
// plaintext, without "encryptiondata", each converted exactly once; the
// plain blobs are untouched; a rerun converts nothing.
func TestBinaryMigrateShards(t *testing.T) {
	c := newCSEContainer(t, 24)
	dir := t.TempDir()
	newKey := keygen(t, filepath.Join(dir, "new.key"))
	shard := map[int][]string{}
	for name := range c.blobs {
		shard[shardOf(name, 2)] = append(shard[shardOf(name, 2)], name)
	}
	if len(shard[0]) < 12 || len(shard[1]) < 12 {
		t.Fatalf("shards of %d and %d blobs", len(shard[0]), len(shard[1]))
	}

	// Shard 0 at 4 key calls a second (2 blobs a second: an unwrap and a
	// wrap each), one blob at a time, checkpointed every 4 blobs, so that
	// it is killed in the middle.
	slow := exec.Command(geosealBin(t), c.args(newKey, "--shard", "0/2", "--job", "J", "--concurrency", "1", "--page-size", "4", "--kms-rate", "4")...)
	slow.Env = append(withoutEnv(os.Environ(), "AZURE_STORAGE_CONNECTION_STRING"), c.env...)
	stdout, err := slow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var slowErr bytes.Buffer
	slow.Stderr = &slowErr
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	// Shard 1 meanwhile, in one go.
	other := geoseal(t, c.env, nil, c.args(newKey, "--shard", "1/2", "--job", "J", "--page-size", "4")...).want(t, 0)

	var beforeKill []migrateLineJSON
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var m migrateLineJSON
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Summary != nil {
			t.Fatalf("shard 0 finished or printed %q before it was killed (%v)", sc.Text(), err)
		}
		beforeKill = append(beforeKill, m)
		// 6 blobs of the shard span at least two pages of 4: the first
		// page is checkpointed.
		if len(beforeKill) == 6 {
			break
		}
	}
	if err := slow.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	slow.Wait()
	if len(beforeKill) != 6 {
		t.Fatalf("shard 0 printed %d lines, then: %v\n%s", len(beforeKill), sc.Err(), slowErr.String())
	}
	var cp struct {
		Marker string
		Done   bool
	}
	resp, err := c.cc.NewBlobClient(".geoseal/jobs/J/shard-0-of-2").DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("the killed shard's checkpoint: %v", err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&cp); err != nil || cp.Done || cp.Marker == "" {
		t.Fatalf("the killed shard's checkpoint: %+v, %v; want a marker past the first page, not done", cp, err)
	}
	resp.Body.Close()

	resumed := geoseal(t, c.env, nil, c.args(newKey, "--shard", "0/2", "--job", "J", "--page-size", "4")...).want(t, 0)
	resumedLines, sum := parseMigrateLines(t, resumed.stdout)
	if !sum.Summary.Resumed || !sum.Summary.Done || sum.Summary.Failed != 0 {
		t.Fatalf("resumed shard 0: %+v", *sum.Summary)
	}
	if len(resumedLines) >= len(shard[0]) {
		t.Errorf("the resumed shard looked at %d of its %d blobs again: it did not resume after its checkpoint", len(resumedLines), len(shard[0]))
	}
	otherLines, otherSum := parseMigrateLines(t, other.stdout)
	if !otherSum.Summary.Done || otherSum.Summary.Failed != 0 || otherSum.Summary.FromV1 == 0 || otherSum.Summary.Warning == "" {
		t.Errorf("shard 1: %+v", *otherSum.Summary)
	}

	// Every blob of each shard was looked at, by that shard's worker only,
	// and every CSE blob converted exactly once.
	migrated := map[string]int{}
	seen := map[string]int{}
	for i, lines := range [][]migrateLineJSON{beforeKill, resumedLines, otherLines} {
		for _, l := range lines {
			want := 0
			if i == 2 {
				want = 1
			}
			if shardOf(l.Blob, 2) != want {
				t.Errorf("%s (shard %d) reported by the worker of shard %d", l.Blob, shardOf(l.Blob, 2), want)
			}
			seen[l.Blob]++
			b := c.blobs[l.Blob]
			switch {
			case l.Outcome == blobstore.OutcomeMigrated:
				migrated[l.Blob]++
				if wantFormat := map[string]string{pysdk.V1: "azure-cse-v1", pysdk.V2: "azure-cse-v2"}[b.Version]; l.Format != wantFormat {
					t.Errorf("%s migrated from %s, want %s", l.Blob, l.Format, wantFormat)
				}
				if (b.Version == pysdk.V1) != strings.Contains(l.Warning, "no integrity protection") {
					t.Errorf("%s (%s): warning %q", l.Blob, b.Version, l.Warning)
				}
			case l.Outcome == blobstore.OutcomeNotMigrated && (b.Version == "" && l.Format == "not-encrypted" || l.Format == "geoseal"):
			default:
				t.Errorf("%s: %+v", l.Blob, l)
			}
		}
	}
	inFlight := 0
	for name, b := range c.blobs {
		switch {
		case seen[name] == 0:
			t.Errorf("%s was never looked at", name)
		case b.Version != "" && migrated[name] == 0:
			// Committed when the worker was killed, before it said so:
			// the resumed worker found a geoseal object.
			inFlight++
		case migrated[name] > 1:
			t.Errorf("%s converted %d times", name, migrated[name])
		}
	}
	if inFlight > 1 {
		t.Errorf("%d blobs converted without being reported; one at most was in flight", inFlight)
	}
	t.Logf("shard 0: %d blobs, %d reported before SIGKILL, %d looked at again after resuming from its checkpoint (%d in flight at the kill); shard 1: %d blobs",
		len(shard[0]), len(beforeKill), len(resumedLines), inFlight, len(shard[1]))
	c.checkMigrated(t, newKey)

	// Rerun: the job is done; without a job everything is a geoseal object
	// or plain, and nothing is converted.
	for s := range 2 {
		r := geoseal(t, c.env, nil, c.args(newKey, "--shard", fmt.Sprintf("%d/2", s), "--job", "J")...).want(t, 0)
		if lines, sum := parseMigrateLines(t, r.stdout); len(lines) != 0 || !sum.Summary.Done {
			t.Errorf("rerun of the finished job, shard %d: %d lines, %+v", s, len(lines), *sum.Summary)
		}
	}
	r := geoseal(t, c.env, nil, c.args(newKey)...).want(t, 0)
	if _, sum := parseMigrateLines(t, r.stdout); sum.Summary.Migrated != 0 || sum.Summary.NotMigrated != int64(len(c.blobs)) {
		t.Errorf("rerun: %+v", *sum.Summary)
	}
}

// TestBinaryMigrate: the dry run changes nothing and says what it would
// convert; the region guard refuses before anything is read or written;
// a blob whose key does not unwrap is reported and left as it was; the
// usage errors.
func TestBinaryMigrate(t *testing.T) {
	c := newCSEContainer(t, 0)
	dir := t.TempDir()
	newKey := keygen(t, filepath.Join(dir, "new.key"))
	etags := func() map[string]azcore.ETag {
		m := map[string]azcore.ETag{}
		pager := c.cc.NewListBlobsFlatPager(nil)
		for pager.More() {
			page, err := pager.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Segment.BlobItems {
				m[*it.Name] = *it.Properties.ETag
			}
		}
		return m
	}
	before := etags()

	// Dry run: what would be converted, nothing changed.
	r := geoseal(t, c.env, nil, append(c.args(newKey), "--dry-run")...).want(t, 0)
	lines, sum := parseMigrateLines(t, r.stdout)
	cse := 0
	for _, b := range c.blobs {
		if b.Version != "" {
			cse++
		}
	}
	if sum.Summary.WouldMigrate != int64(cse) || sum.Summary.Migrated != 0 || len(lines) != len(c.blobs) {
		t.Errorf("dry run: %+v, %d lines", *sum.Summary, len(lines))
	}
	for _, l := range lines {
		if v := c.blobs[l.Blob].Version; (v != "") != (l.Outcome == blobstore.OutcomeWouldMigrate) || (v == pysdk.V1) != (l.Warning != "") {
			t.Errorf("dry run: %+v", l)
		}
	}
	r = geoseal(t, c.env, nil, slices.DeleteFunc(append(c.args(newKey), "--dry-run"), func(s string) bool { return s == "--json" })...).want(t, 0)
	if !strings.Contains(r.stdout, "  would migrate v1/single/17 (azure-cse-v1, no integrity protection)") ||
		!strings.Contains(r.stdout, fmt.Sprintf("would migrate %d blobs in legacy to geoseal (dry run: nothing was read or written)", cse)) {
		t.Errorf("dry run for people:\n%s", r.stdout)
	}
	if !maps.Equal(etags(), before) {
		t.Fatal("the dry run changed the container")
	}

	// Refused by the guard: exit 3, nothing changed.
	r = geoseal(t, c.env, nil, append(slices.Clone(c.args(newKey)[:len(c.args(newKey))-7]), "--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia")...).want(t, 3)
	if !strings.Contains(r.stderr, "nothing was sent") || !maps.Equal(etags(), before) {
		t.Errorf("refused migrate: %q", r.stderr)
	}

	// The wrong key for the old blobs: each fails and stays as it was.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrong := pysdk.RSAKEK(t, c.kek.KeyID(), "RSA-OAEP-256", other)
	args := c.args(newKey)
	args[slices.Index(args, c.kek.File())] = wrong.File()
	r = geoseal(t, c.env, nil, args...).want(t, 1)
	if _, sum := parseMigrateLines(t, r.stdout); sum.Summary.Failed != int64(cse) || sum.Summary.Migrated != 0 {
		t.Errorf("with the wrong key: %+v", *sum.Summary)
	}
	if !strings.Contains(r.stdout, "cannot unwrap the content key") || !maps.Equal(etags(), before) {
		t.Errorf("with the wrong key:\n%s", r.stdout)
	}

	// Usage errors, before any request.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--container", "legacy", "--to", "geoseal"}, "--from is required"},
		{[]string{"migrate", "--container", "legacy", "--from", "azure-cse-v3", "--to", "geoseal"}, "is not a format migrate converts"},
		{[]string{"migrate", "--container", "legacy", "--from", "azure-cse-v2"}, "--to geoseal is required"},
		{append(c.args(newKey), "--dry-run", "--job", "J"), "takes no --job"},
		{c.args(newKey)[:len(c.args(newKey))-7], "--policy is required"},
	} {
		r := geoseal(t, c.env, nil, tc.args...).want(t, 1)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	if !maps.Equal(etags(), before) {
		t.Fatal("a failed migrate changed the container")
	}

	// The real run, for people: the v1 warning on stderr and in the summary.
	r = geoseal(t, c.env, nil, slices.DeleteFunc(c.args(newKey), func(s string) bool { return s == "--json" })...).want(t, 0)
	if !strings.Contains(r.stderr, "warning: Azure client-side encryption v1 has no integrity protection") ||
		!strings.Contains(r.stdout, fmt.Sprintf("migrated %d blobs in legacy to geoseal", cse)) || !strings.Contains(r.stdout, "warning: ") {
		t.Errorf("migrate for people:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	c.checkMigrated(t, newKey)
}

// TestBinaryGetCSEv1: get reads a CSE v1 blob the Python SDK wrote only
// with --format azure-cse-v1, and then says on stderr that nothing
// authenticated it; --require-context refuses it.
func TestBinaryGetCSEv1(t *testing.T) {
	c := newCSEContainer(t, 0)
	out := filepath.Join(t.TempDir(), "out")
	const blobName = "v1/chunked/100000"
	b := c.blobs[blobName]
	key := []string{"--rsa-private", c.kek.File(), "--key-id", c.kek.KeyID()}
	get := append([]string{"get", "--container", c.name, "--blob", blobName, "--out", out}, key...)

	r := geoseal(t, c.env, nil, "get", "--container", c.name, "--blob", blobName, "--out", out, "--rsa-private", c.kek.File()).want(t, 1)
	if !strings.Contains(r.stderr, "--format azure-cse-v1") || !strings.Contains(r.stderr, "no integrity protection") {
		t.Errorf("get without --format azure-cse-v1: %q", r.stderr)
	}
	r = geoseal(t, c.env, nil, append(get, "--format", "azure-cse-v2")...).want(t, 1)
	if !strings.Contains(r.stderr, "--format azure-cse-v1") {
		t.Errorf("get --format azure-cse-v2 of a v1 blob: %q", r.stderr)
	}
	r = geoseal(t, c.env, nil, append(get, "--format", "azure-cse-v1", "--require-context", "p=1")...).want(t, 1)
	if !strings.Contains(r.stderr, "no encryption context") {
		t.Errorf("get --require-context of a v1 blob: %q", r.stderr)
	}
	r = geoseal(t, c.env, nil, append(get, "--format", "azure-cse-v1", "--quiet")...).want(t, 0)
	if !bytes.Equal(readFile(t, out), b.Plaintext) {
		t.Fatal("get --format azure-cse-v1: wrong plaintext")
	}
	if !strings.Contains(r.stderr, "warning: "+blobName+" is Azure client-side encryption v1 (AES-CBC), which has no integrity protection") {
		t.Errorf("get --format azure-cse-v1 said nothing of the missing integrity: %q", r.stderr)
	}
	// stat reads the last block for the size, and says nothing
	// authenticated it.
	r = geoseal(t, c.env, nil, "stat", "--container", c.name, "--blob", blobName, "--format", "azure-cse-v1", key[0], key[1], key[2], key[3], "--json").want(t, 0)
	var st struct {
		Format        string
		Size          int64
		Authenticated bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Format != "azure-cse-v1" || st.Size != int64(len(b.Plaintext)) || st.Authenticated ||
		!strings.Contains(r.stderr, "no integrity protection") {
		t.Errorf("stat --format azure-cse-v1: %s (%v), stderr %q", r.stdout, err, r.stderr)
	}
	// A range, and a v2 blob with the same flag.
	r = geoseal(t, c.env, nil, append(get, "--format", "azure-cse-v1", "--offset", "65530", "--length", "20")...).want(t, 0)
	if !bytes.Equal(readFile(t, out), b.Plaintext[65530:65550]) {
		t.Fatal("get --format azure-cse-v1 --offset --length: wrong plaintext")
	}
	v2 := c.blobs["v2/single/1000"]
	r = geoseal(t, c.env, nil, "get", "--container", c.name, "--blob", v2.Name, "--out", out, "--format", "azure-cse-v1", key[0], key[1], key[2], key[3]).want(t, 0)
	if !bytes.Equal(readFile(t, out), v2.Plaintext) || strings.Contains(r.stderr, "warning") {
		t.Errorf("get --format azure-cse-v1 of a v2 blob: %q", r.stderr)
	}

	// A broken padding: the one v1 error, and no output file.
	raw, err := c.cc.NewBlobClient(blobName).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	data[len(data)-17] ^= 0x80
	md := raw.Metadata
	if _, err := c.cc.NewBlockBlobClient("broken").UploadBuffer(context.Background(), data, &blockblob.UploadBufferOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "out2")
	r = geoseal(t, c.env, nil, "get", "--container", c.name, "--blob", "broken", "--out", out2, "--format", "azure-cse-v1", key[0], key[1], key[2], key[3]).want(t, 1)
	if _, err := os.Stat(out2); !strings.Contains(r.stderr, "CSE v1 ciphertext does not decrypt") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("get of a broken v1 padding: %q (output: %v)", r.stderr, err)
	}
}
