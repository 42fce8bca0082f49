package benchcmp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/wire"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// BenchmarkWalk measures container-wide work on a container of 20,000
// small geoseal objects and 2,000 plain blobs in Azurite: what each blob
// costs in requests and KMS calls, and the peak heap, for
//
//	rotate    RewrapAll to the other key (every geoseal blob rotated)
//	rerun     RewrapAll to the key the blobs already have, in pages of
//	          5000 and of 1000
//	plain     RewrapAll over the plain blobs (not geoseal objects)
//	audit     Audit of the whole container
//
// Run from this directory:
//
//	go test -run '^$' -bench Walk -benchtime 1x
//
// The container is filled once (parallel uploads) and shared by the
// sub-benchmarks and their iterations; rotate alternates between two keys
// so that every iteration rotates every blob.
func BenchmarkWalk(b *testing.B) {
	w := startWalkBench(b)
	b.Run("rotate", func(b *testing.B) {
		for range b.N {
			w.measure(b, walkObjects, func(ctx context.Context) error {
				to := w.other()
				resp, err := w.client.RewrapAll(ctx, to, &blobstore.RewrapAllOptions{Prefix: "g/"})
				if err == nil && resp.Rotated != walkObjects {
					err = fmt.Errorf("rotated %d of %d", resp.Rotated, walkObjects)
				}
				w.current, w.done = to, err == nil
				return err
			})
		}
	})
	// A rerun over blobs already wrapped for the target, in pages of the
	// service's 5000 and of 1000: the peak heap follows the page, not the
	// container.
	for _, pageSize := range []int{blobstore.MaxPageSize, 1000} {
		b.Run(fmt.Sprintf("rerun/pages-of-%d", pageSize), func(b *testing.B) {
			w.rotated(b)
			for range b.N {
				w.measure(b, walkObjects, func(ctx context.Context) error {
					resp, err := w.client.RewrapAll(ctx, w.current, &blobstore.RewrapAllOptions{Prefix: "g/", PageSize: pageSize})
					if err == nil && resp.AlreadyRotated != walkObjects {
						err = fmt.Errorf("%d of %d already rotated", resp.AlreadyRotated, walkObjects)
					}
					return err
				})
			}
		})
	}
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			w.measure(b, walkPlain, func(ctx context.Context) error {
				resp, err := w.client.RewrapAll(ctx, w.current, &blobstore.RewrapAllOptions{Prefix: "p/"})
				if err == nil && resp.NotGeoseal != walkPlain {
					err = fmt.Errorf("%d of %d not geoseal", resp.NotGeoseal, walkPlain)
				}
				return err
			})
		}
	})
	b.Run("audit", func(b *testing.B) {
		for range b.N {
			w.measure(b, walkObjects+walkPlain, func(ctx context.Context) error {
				resp, err := w.client.Audit(ctx, &blobstore.AuditOptions{Keys: []keyring.Wrapper{w.current}})
				if err == nil && (resp.Blobs != walkObjects+walkPlain || resp.Findings[blobstore.FindingNotEncrypted] != walkPlain) {
					err = fmt.Errorf("audited %d blobs, %v findings", resp.Blobs, resp.Findings)
				}
				return err
			})
		}
	})
}

const (
	walkObjects = 20000
	walkPlain   = 2000
)

// walkBench is the shared container and what counts its costs.
type walkBench struct {
	client      *blobstore.Client
	wire        *wire.Counter
	keys        [2]*countingKeyring
	current     *countingKeyring // the key the objects are wrapped for
	done        bool             // wrapped for current alone: rotated at least once
	unwrapCalls atomic.Int64
}

// rotated makes sure the objects are wrapped for the current key alone
// (the upload wrapped them for both keys), when the rotate benchmark did
// not run.
func (w *walkBench) rotated(b *testing.B) {
	if w.done {
		return
	}
	if _, err := w.client.RewrapAll(context.Background(), w.current, &blobstore.RewrapAllOptions{Prefix: "g/"}); err != nil {
		b.Fatal(err)
	}
	w.done = true
}

func startWalkBench(b *testing.B) *walkBench {
	b.Helper()
	srv := azurite.ForTest(b)
	ctx := context.Background()
	w := &walkBench{wire: &wire.Counter{}}
	for i := range w.keys {
		kr, err := keyring.NewAES(bytes.Repeat([]byte{byte(i + 1)}, 32), nil)
		if err != nil {
			b.Fatal(err)
		}
		w.keys[i] = &countingKeyring{Keyring: kr}
	}
	w.current = w.keys[0]
	t := &http.Transport{MaxIdleConnsPerHost: 128}
	b.Cleanup(t.CloseIdleConnections)
	cc, err := container.NewClientWithSharedKeyCredential(srv.BlobEndpoint+"/walk", srv.Credential(),
		&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: wire.NewTransport(w.wire, t)}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		b.Fatal(err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		b.Fatal(err)
	}
	// The client unwraps with either key; each rotation wraps with one.
	if w.client, err = blobstore.NewClient(cc, &countingKeyring{Keyring: keyring.NewMulti(w.keys[0], w.keys[1]), calls: &w.unwrapCalls}, guard, nil); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fill(b, func(i int) error {
		_, err := w.client.Upload(ctx, fmt.Sprintf("g/%06d", i), bytes.NewReader([]byte(fmt.Sprintf("telemetry record %d", i))), nil)
		return err
	}, walkObjects)
	fill(b, func(i int) error {
		_, err := cc.NewBlockBlobClient(fmt.Sprintf("p/%06d", i)).UploadBuffer(ctx, []byte("a plain blob, no geoseal"), nil)
		return err
	}, walkPlain)
	fmt.Printf("BenchmarkWalk: %d geoseal objects and %d plain blobs uploaded in %v (%v)\n", walkObjects, walkPlain, time.Since(start).Round(time.Second), w.wire)
	return w
}

// fill runs put for 0..n-1, 64 at a time.
func fill(b *testing.B, put func(int) error, n int) {
	b.Helper()
	var wg sync.WaitGroup
	var failed atomic.Value
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := put(i); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

func (w *walkBench) other() *countingKeyring {
	if w.current == w.keys[0] {
		return w.keys[1]
	}
	return w.keys[0]
}

// measure runs op once over blobs blobs and reports, per blob, the
// requests (by method), the bytes received and the keyring calls, and the
// peak heap above what was live before.
func (w *walkBench) measure(b *testing.B, blobs int, op func(context.Context) error) {
	b.Helper()
	runtime.GC()
	w.wire.Reset()
	w.unwrapCalls.Store(0)
	wraps := w.keys[0].wrapCalls.Load() + w.keys[1].wrapCalls.Load()
	base := heapBytes()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	})
	// Time each kind of request, to tell the emulator's share of the
	// wall time from the walker's.
	var lat requestLatency
	w.wire.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		t0 := time.Now()
		resp, err := send(req)
		lat.add(req, time.Since(t0))
		return resp, err
	})
	start := time.Now()
	err := op(context.Background())
	elapsed := time.Since(start)
	w.wire.Intercept(nil)
	close(stop)
	sampler.Wait()
	lat.report(b)
	if err != nil {
		b.Fatal(err)
	}
	n := float64(blobs)
	b.ReportMetric(float64(w.wire.Requests.Load())/n, "req/blob")
	b.ReportMetric(float64(w.wire.Gets.Load())/n, "GET/blob")
	b.ReportMetric(float64(w.wire.Puts.Load())/n, "PUT/blob")
	b.ReportMetric(float64(w.wire.Received.Load())/n, "B-recv/blob")
	b.ReportMetric(float64(w.unwrapCalls.Load()+w.keys[0].wrapCalls.Load()+w.keys[1].wrapCalls.Load()-wraps)/n, "kms/blob")
	b.ReportMetric(n/elapsed.Seconds(), "blobs/s")
	b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak-heap-MiB")
}

// heapBytes is the heap in use by objects, live or not yet swept.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// countingKeyring counts a keyring's calls: the ones a KMS would see.
type countingKeyring struct {
	keyring.Keyring
	calls     *atomic.Int64 // unwraps (and wraps) of a client keyring
	wrapCalls atomic.Int64
}

func (k *countingKeyring) Wrap(ctx context.Context, dek []byte, ec keyring.Context) ([]keyring.WrappedKey, error) {
	k.wrapCalls.Add(1)
	return k.Keyring.Wrap(ctx, dek, ec)
}

func (k *countingKeyring) Unwrap(ctx context.Context, keys []keyring.WrappedKey, ec keyring.Context) ([]byte, error) {
	if k.calls != nil {
		k.calls.Add(1)
	}
	return k.Keyring.Unwrap(ctx, keys, ec)
}

func (k *countingKeyring) KeyIDs() []string { return keyring.KeyIDs(k.Keyring) }

// requestLatency sums the time to the response headers of each kind of
// request.
type requestLatency struct {
	mu    sync.Mutex
	total map[string]time.Duration
	n     map[string]int
}

func (l *requestLatency) add(req *http.Request, d time.Duration) {
	kind := req.Method
	if c := req.URL.Query().Get("comp"); c != "" {
		kind += "-" + c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total == nil {
		l.total, l.n = map[string]time.Duration{}, map[string]int{}
	}
	l.total[kind] += d
	l.n[kind]++
}

func (l *requestLatency) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for kind, d := range l.total {
		b.ReportMetric(float64(d.Microseconds())/1000/float64(l.n[kind]), "ms/"+kind)
	}
}
