package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
)

// TestShardOf pins the shard function, which other tools may compute too:
// SHA-256 of the name, the first 8 bytes as a big-endian integer, modulo
// the shard count. The sums below were computed with sha256sum.
func TestShardOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first8 uint64 // of SHA-256(name)
	}{
		{"a", 0xca978112ca1bbdca},                      // printf a | sha256sum
		{"programs/x57/spar.step", 0xe7ea645f457ad54d}, // printf programs/x57/spar.step | sha256sum
	} {
		for _, n := range []int{1, 2, 3, 7, 1000, MaxShards} {
			if got, want := shardOf(tc.name, n), int(tc.first8%uint64(n)); got != want {
				t.Errorf("shardOf(%q, %d) = %d, want %d", tc.name, n, got, want)
			}
		}
	}
}

func TestShards(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const n, shards = 40, 3
	uploadMany(t, f.client, "s/", n, 16)
	newKR := formattest.NewAES(t)
	seen := map[string]int{}
	for shard := range shards {
		var got outcomes
		resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Shard: shard, Shards: shards, Results: got.record})
		if err != nil {
			t.Fatal(err)
		}
		for name := range got.m {
			seen[name]++
			if shardOf(name, shards) != shard {
				t.Errorf("shard %d rotated %s, of shard %d", shard, name, shardOf(name, shards))
			}
		}
		if resp.Rotated != int64(got.n) || got.n == 0 {
			t.Errorf("shard %d: %+v, %d results", shard, resp, got.n)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d shards covered %d of %d blobs", shards, len(seen), n)
	}
	for name, k := range seen {
		if k != 1 {
			t.Errorf("%s rotated %d times", name, k)
		}
	}
	for _, bad := range []RewrapAllOptions{{Shard: 3, Shards: 3}, {Shard: -1, Shards: 3}, {Shard: 1}, {Shards: MaxShards + 1}, {Concurrency: -1}, {Job: "../x"}, {Job: ".hidden"}, {Job: strings.Repeat("j", 65)}, {KMSRate: -1}, {Prefix: ".geoseal/jobs/x"}, {PageSize: -1}, {PageSize: MaxPageSize + 1}} {
		f.wire.Reset()
		if _, err := f.client.RewrapAll(ctx, newKR, &bad); err == nil || f.wire.Requests.Load() != 0 {
			t.Errorf("RewrapAll(%+v): %v after %d requests, want an error before any", bad, err, f.wire.Requests.Load())
		}
	}
}

// readJob reads a job's checkpoint with plain azblob.
func (f *fixture) readJob(t *testing.T, job string, shard, shards int) (checkpointState, bool) {
	t.Helper()
	resp, err := f.plain.NewBlobClient(checkpointName(job, shard, shards)).DownloadStream(context.Background(), nil)
	if isNotFound(err) {
		return checkpointState{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var st checkpointState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("checkpoint %s: %v", data, err)
	}
	return st, true
}

// TestRewrapAllJob interrupts a job, resumes it, and reruns it: the
// resumed run starts at the last checkpoint, every blob is rotated once,
// and a finished job costs one request.
func TestRewrapAllJob(t *testing.T) {
	f := newFixture(t, nil)
	const n = 30
	uploadMany(t, f.client, "j/", n, 16)
	newKR := formattest.NewAES(t)

	// Stop after 10 blobs, in pages of 4.
	ctx, cancel := context.WithCancel(context.Background())
	var first outcomes
	resp, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Job: "rot-1", Concurrency: 2, PageSize: 4, Results: func(r WalkResult) {
		first.record(r)
		if first.n == 10 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) || resp.Done || resp.Failed != 0 {
		t.Fatalf("interrupted job: %+v, %v", resp, err)
	}
	st, ok := f.readJob(t, "rot-1", 0, 1)
	if !ok || st.Done || st.Marker == "" || st.Operation != "rewrap-all" || st.Counts[OutcomeRotated] == 0 || st.Counts[OutcomeRotated] > 10 {
		t.Fatalf("checkpoint after the interruption: %+v", st)
	}
	settled := st.Counts[OutcomeRotated]

	// Resume: only what follows the checkpoint is listed and read.
	f.wire.Reset()
	var second outcomes
	resp, err = f.client.RewrapAll(context.Background(), newKR, &RewrapAllOptions{Job: "rot-1", PageSize: 4, Results: second.record})
	if err != nil || !resp.Resumed || !resp.Done || resp.Rotated+resp.AlreadyRotated != n || resp.Failed != 0 {
		t.Fatalf("resumed job: %+v, %v", resp, err)
	}
	if int64(second.n) != n-settled {
		t.Errorf("the resumed run handled %d blobs; %d were settled before, of %d", second.n, settled, n)
	}
	for name := range first.m {
		if r, again := second.m[name]; again && r.Outcome != OutcomeAlreadyRotated {
			t.Errorf("%s rotated in both runs", name)
		}
	}
	for i := range n {
		if ids := f.headerKeys(t, fmt.Sprintf("j/%04d", i)); !slices.Equal(ids, []string{newKR.KeyID()}) {
			t.Fatalf("j/%04d is wrapped for %q", i, ids)
		}
	}
	if st, _ := f.readJob(t, "rot-1", 0, 1); !st.Done || st.Counts[OutcomeRotated]+st.Counts[OutcomeAlreadyRotated] != n {
		t.Fatalf("checkpoint of the finished job: %+v", st)
	}

	// A finished job reads its checkpoint and stops.
	f.wire.Reset()
	var third outcomes
	resp, err = f.client.RewrapAll(context.Background(), newKR, &RewrapAllOptions{Job: "rot-1", PageSize: 4, Results: third.record})
	if err != nil || !resp.Done || !resp.Resumed || third.n != 0 || f.wire.Requests.Load() != 1 {
		t.Fatalf("rerun of a finished job: %+v, %v, %d results, %v", resp, err, third.n, f.wire)
	}
	// The checkpoints are not data: a walk does not see them.
	var all outcomes
	if _, err := f.client.RewrapAll(context.Background(), newKR, &RewrapAllOptions{Results: all.record}); err != nil || all.n != n {
		t.Fatalf("a walk over the container saw %d items (%v), want the %d blobs", all.n, err, n)
	}
}

// TestCheckpointConflict gives two workers the same job and shard: the
// one that started first finds its checkpoint advanced by the other and
// stops with ErrCheckpointConflict.
func TestCheckpointConflict(t *testing.T) {
	f := newFixture(t, nil)
	uploadMany(t, f.client, "c/", 8, 8)
	newKR := formattest.NewAES(t)
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var errA error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errA = f.client.RewrapAll(context.Background(), newKR, &RewrapAllOptions{Job: "same", Concurrency: 1, PageSize: 2, Results: func(WalkResult) {
			once.Do(func() { close(hold); <-release })
		}})
	})
	<-hold
	respB, errB := f.client.RewrapAll(context.Background(), newKR, &RewrapAllOptions{Job: "same", PageSize: 2})
	close(release)
	wg.Wait()
	if errB != nil || !respB.Done || !respB.Resumed {
		t.Fatalf("the second worker: %+v, %v", respB, errB)
	}
	if !errors.Is(errA, ErrCheckpointConflict) {
		t.Fatalf("the first worker: %v, want ErrCheckpointConflict", errA)
	}
	if st, _ := f.readJob(t, "same", 0, 1); !st.Done || st.Counts[OutcomeRotated]+st.Counts[OutcomeAlreadyRotated] != 8 {
		t.Fatalf("the second worker's checkpoint does not stand: %+v", st)
	}
}

// TestJobMismatch checks that a job name stands for one piece of work.
func TestJobMismatch(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.upload(t, "a/1", []byte("x"), nil)
	newKR := formattest.NewAES(t)
	if _, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Job: "j", Prefix: "a/"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		to   *RewrapAllOptions
		kr   func() *countingKeyring
	}{
		{"another prefix", &RewrapAllOptions{Job: "j", Prefix: "b/"}, nil},
		{"another target", &RewrapAllOptions{Job: "j", Prefix: "a/"}, func() *countingKeyring { return counting(formattest.NewAES(t)) }},
	} {
		var kr keyring.Keyring = newKR
		if tc.kr != nil {
			kr = tc.kr()
		}
		if _, err := f.client.RewrapAll(ctx, kr, tc.to); !errors.Is(err, ErrJobMismatch) {
			t.Errorf("%s: %v, want ErrJobMismatch", tc.name, err)
		}
	}
	// A blob that is not a checkpoint where one should be.
	f.putRaw(t, checkpointName("k", 0, 1), []byte("{}"), nil)
	if _, err := f.client.RewrapAll(ctx, newKR, &RewrapAllOptions{Job: "k"}); !errors.Is(err, ErrJobMismatch) {
		t.Errorf("a foreign checkpoint blob: %v, want ErrJobMismatch", err)
	}
	if _, err := f.plain.NewBlobClient(checkpointName("j", 0, 1)).GetProperties(ctx, &blob.GetPropertiesOptions{}); err != nil {
		t.Errorf("the first job's checkpoint: %v", err)
	}
}

// TestWalkItemVersions checks how listed items become a blob and its
// copies: the current version (or the blob, without versioning) is the
// base, snapshots and previous versions are copies, and each is read
// through its own client. Azurite has no versioning, so this is the one
// test of versions.
func TestWalkItemVersions(t *testing.T) {
	f := newFixture(t, nil)
	item := func(snapshot, version string, current *bool) walkItem {
		it := &container.BlobItem{Name: to.Ptr("doc"), Properties: &container.BlobProperties{}}
		if snapshot != "" {
			it.Snapshot = &snapshot
		}
		if version != "" {
			it.VersionID = &version
		}
		it.IsCurrentVersion = current
		return walkItemOf(it)
	}
	yes, no := to.Ptr(true), to.Ptr(false)
	for _, tc := range []struct {
		name    string
		it      walkItem
		current bool
		query   string // of the item's blob URL
		version string // WalkResult.VersionID
	}{
		{"blob", item("", "", nil), true, "", ""},
		{"snapshot", item("2026-12-01T00:00:00.0000000Z", "", nil), false, "snapshot=2026-12-01T00:00:00.0000000Z", ""},
		{"current version", item("", "v2", yes), true, "", ""},
		{"previous version", item("", "v1", no), false, "versionid=v1", "v1"},
	} {
		b, err := tc.it.client(f.client)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(b.URL())
		if tc.it.current != tc.current || u.RawQuery != tc.query || tc.it.result(OutcomeAudited).VersionID != tc.version {
			t.Errorf("%s: current %v, URL %s, result %+v", tc.name, tc.it.current, b.URL(), tc.it.result(OutcomeAudited))
		}
	}
	g := &blobGroup{name: "doc"}
	for _, it := range []walkItem{item("", "v1", no), item("s", "", nil), item("", "v2", yes)} {
		g.add(it)
	}
	if g.base == nil || g.base.versionID != "v2" || len(g.copies) != 2 {
		t.Fatalf("group: base %+v, %d copies", g.base, len(g.copies))
	}
}

// TestExplicitTier: only a tier set on the blob is kept; one the service
// infers from the account's default is not, nor a missing one.
func TestExplicitTier(t *testing.T) {
	cool := string(blob.AccessTierCool)
	for _, tc := range []struct {
		tier     *string
		inferred *bool
		want     *blob.AccessTier
	}{
		{nil, nil, nil},
		{nil, to.Ptr(false), nil},
		{&cool, nil, to.Ptr(blob.AccessTierCool)},
		{&cool, to.Ptr(false), to.Ptr(blob.AccessTierCool)},
		{&cool, to.Ptr(true), nil},
	} {
		got := explicitTier(tc.tier, tc.inferred)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("explicitTier(%v, %v) = %v, want %v", tc.tier, tc.inferred, got, tc.want)
		}
	}
	// The listing's type, as walkItemOf passes it.
	if got := explicitTier(to.Ptr(blob.AccessTierArchive), to.Ptr(false)); got == nil || *got != blob.AccessTierArchive {
		t.Errorf("explicitTier of a listed archive tier = %v", got)
	}
}
