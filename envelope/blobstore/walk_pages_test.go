package blobstore

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/formattest"
)

// listingServer is a Blob service that holds a fixed listing and the
// checkpoint blobs a job writes. Unlike Azurite, whose listing markers are
// blob names (so that a page ending inside a blob's snapshots loses the
// rest of them), its markers are positions, as the service's are: a blob
// and its snapshots can be split across pages.
type listingServer struct {
	items []fakeItem

	mu     sync.Mutex
	blobs  map[string][]byte // checkpoints, by name
	etags  map[string]int
	lists  atomic.Int64
	writes atomic.Int64
}

type fakeItem struct{ name, snapshot string }

func (s *listingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/c/")
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Get("comp") == "list":
		s.lists.Add(1)
		s.list(w, q.Get("marker"), q.Get("maxresults"))
	case r.Method == http.MethodGet:
		s.mu.Lock()
		data, ok := s.blobs[name]
		etag := s.etags[name]
		s.mu.Unlock()
		if !ok {
			w.Header().Set("x-ms-error-code", "BlobNotFound")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, etag))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	case r.Method == http.MethodPut:
		s.writes.Add(1)
		data, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		_, exists := s.blobs[name]
		cur := fmt.Sprintf(`"%d"`, s.etags[name])
		if im := r.Header.Get("If-Match"); im != "" && (!exists || im != cur) || r.Header.Get("If-None-Match") == "*" && exists {
			w.Header().Set("x-ms-error-code", "ConditionNotMet")
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		s.blobs[name] = data
		s.etags[name]++
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, s.etags[name]))
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *listingServer) list(w http.ResponseWriter, marker, maxResults string) {
	start, _ := strconv.Atoi(strings.TrimPrefix(marker, "pos-"))
	n, _ := strconv.Atoi(maxResults)
	if n <= 0 {
		n = 5000
	}
	end := min(start+n, len(s.items))
	type props struct {
		LastModified  string `xml:"Last-Modified"`
		ETag          string `xml:"Etag"`
		ContentLength int64  `xml:"Content-Length"`
		BlobType      string `xml:"BlobType"`
	}
	type item struct {
		Name       string `xml:"Name"`
		Snapshot   string `xml:"Snapshot,omitempty"`
		Properties props  `xml:"Properties"`
	}
	type result struct {
		XMLName    xml.Name `xml:"EnumerationResults"`
		Marker     string   `xml:"Marker"`
		Blobs      []item   `xml:"Blobs>Blob"`
		NextMarker string   `xml:"NextMarker"`
	}
	res := result{Marker: marker}
	for _, it := range s.items[start:end] {
		res.Blobs = append(res.Blobs, item{Name: it.name, Snapshot: it.snapshot, Properties: props{
			LastModified: "Tue, 01 Dec 2026 00:00:00 GMT", ETag: "0x1", ContentLength: 0, BlobType: "BlockBlob",
		}})
	}
	if end < len(s.items) {
		res.NextMarker = "pos-" + strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(res)
}

// newListingServer makes a listing of blobs b00, b01... where blob i has
// i%4 snapshots, listed before it, and starts a server for it.
func newListingServer(t *testing.T, blobs int) (*listingServer, *Client) {
	t.Helper()
	s := &listingServer{blobs: map[string][]byte{}, etags: map[string]int{}}
	for i := range blobs {
		name := fmt.Sprintf("b%02d", i)
		for j := range i % 4 {
			s.items = append(s.items, fakeItem{name, fmt.Sprintf("2026-12-01T00:00:0%d.0000000Z", j)})
		}
		s.items = append(s.items, fakeItem{name: name})
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cc, err := container.NewClientWithNoCredential(srv.URL+"/c", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cc, formattest.NewAES(t), unrestrictedGuard(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// groupRecorder is a visit function that records the groups it sees.
type groupRecorder struct {
	mu     sync.Mutex
	seen   map[string][]int // sizes of each visit of a group
	visits int
	stopAt int // cancel after this many visits (0: never)
	cancel context.CancelFunc
}

func (g *groupRecorder) visit(_ context.Context, grp *blobGroup, report func(WalkResult)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	size := len(grp.copies)
	if grp.base != nil {
		size++
	}
	g.seen[grp.name] = append(g.seen[grp.name], size)
	g.visits++
	report(WalkResult{Blob: grp.name, Outcome: OutcomeAudited})
	if g.visits == g.stopAt {
		g.cancel()
	}
}

// TestWalkGroupsAcrossPages checks that every blob is visited once, with
// all its snapshots, whatever page boundaries fall inside its group, and
// that an interrupted job resumes without losing or double-counting one.
func TestWalkGroupsAcrossPages(t *testing.T) {
	const blobs = 40
	for _, pageSize := range []int{1, 2, 3, 5, 7, 100} {
		t.Run(fmt.Sprintf("pages of %d", pageSize), func(t *testing.T) {
			s, c := newListingServer(t, blobs)
			rec := &groupRecorder{seen: map[string][]int{}}
			spec := &walkSpec{op: "test", concurrency: 3, pageSize: pageSize, visit: rec.visit}
			sum, err := c.walk(context.Background(), spec)
			if err != nil || !sum.done || sum.counts[OutcomeAudited] != blobs {
				t.Fatalf("walk: %+v, %v", sum, err)
			}
			for i := range blobs {
				name := fmt.Sprintf("b%02d", i)
				if v := rec.seen[name]; len(v) != 1 || v[0] != i%4+1 {
					t.Fatalf("%s visited with %v items, want once with %d", name, v, i%4+1)
				}
			}
			if want := (int64(len(s.items)) + int64(pageSize) - 1) / int64(pageSize); s.lists.Load() != want {
				t.Errorf("%d list requests for %d items in pages of %d", s.lists.Load(), len(s.items), pageSize)
			}

			// A job interrupted after some groups, then resumed, for the
			// whole container and for each of 3 shards.
			for _, shards := range []int{1, 3} {
				for shard := range shards {
					mine := 0
					for i := range blobs {
						if shardOf(fmt.Sprintf("b%02d", i), shards) == shard {
							mine++
						}
					}
					for _, stop := range []int{1, mine / 2, mine} {
						ctx, cancel := context.WithCancel(context.Background())
						rec := &groupRecorder{seen: map[string][]int{}, stopAt: stop, cancel: cancel}
						job := fmt.Sprintf("j%d-%d-%d", shards, shard, stop)
						spec := walkSpec{op: "test", job: job, shard: shard, shards: shards, concurrency: 1, pageSize: pageSize, visit: rec.visit}
						_, err := c.walk(ctx, &spec)
						cancel()
						if !errors.Is(err, context.Canceled) {
							t.Fatalf("shard %d of %d (%d groups), stopped after %d: %v", shard, shards, mine, stop, err)
						}
						first := rec.visits
						rec.stopAt = 0
						spec.concurrency = 3
						sum, err := c.walk(context.Background(), &spec)
						if err != nil || !sum.done || !sum.resumed {
							t.Fatalf("resumed walk: %+v, %v", sum, err)
						}
						for i := range blobs {
							name := fmt.Sprintf("b%02d", i)
							v := rec.seen[name]
							if shardOf(name, shards) != shard {
								if len(v) != 0 {
									t.Fatalf("shard %d of %d visited %s", shard, shards, name)
								}
								continue
							}
							if len(v) == 0 {
								t.Fatalf("shard %d of %d, stopped after %d: %s never visited", shard, shards, stop, name)
							}
							for _, size := range v {
								if size != i%4+1 {
									t.Fatalf("shard %d of %d, stopped after %d: %s visited with %d of its %d items", shard, shards, stop, name, size, i%4+1)
								}
							}
						}
						// Each group is counted once: those a resume visits
						// again were not counted in the checkpoint.
						if sum.counts[OutcomeAudited] != int64(mine) {
							t.Fatalf("shard %d of %d, stopped after %d (%d visits, then %d): counted %d groups, want %d",
								shard, shards, stop, first, rec.visits-first, sum.counts[OutcomeAudited], mine)
						}
					}
				}
			}
		})
	}
}
