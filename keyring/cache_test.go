package keyring

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// countingKeyring counts the calls that reach the keyring behind a cache.
type countingKeyring struct {
	Keyring
	wraps, unwraps atomic.Int64
}

func (c *countingKeyring) Wrap(ctx context.Context, dek []byte, ec Context) ([]WrappedKey, error) {
	c.wraps.Add(1)
	return c.Keyring.Wrap(ctx, dek, ec)
}

func (c *countingKeyring) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	c.unwraps.Add(1)
	return c.Keyring.Unwrap(ctx, keys, ec)
}

func newCounting(t testing.TB) *countingKeyring {
	return &countingKeyring{Keyring: mustNewAES(t, mustAESKey(t), nil)}
}

// cachedDEK returns the cache's own copy of the data key for wk, or nil.
func cachedDEK(t *testing.T, c *Cache, wk WrappedKey, ec Context) []byte {
	t.Helper()
	ecb, err := ec.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := cacheDigest(wk, ecb)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.unwrapped[d]; ok {
		return el.Value.(*cacheEntry).dek
	}
	return nil
}

func mustUnwrap(t *testing.T, u Unwrapper, keys []WrappedKey, ec Context, want []byte) {
	t.Helper()
	got, err := u.Unwrap(context.Background(), keys, ec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("unwrapped a different data key")
	}
}

func TestCacheHit(t *testing.T) {
	ctx := context.Background()
	inner := newCounting(t)
	c := NewCache(inner, nil)
	dek := testDEK(t)
	ec := Context{"p": "1"}
	keys, err := c.Wrap(ctx, dek, ec) // passes through
	if err != nil || inner.wraps.Load() != 1 {
		t.Fatalf("Wrap: %v, %d inner wraps", err, inner.wraps.Load())
	}
	got, err := c.Unwrap(ctx, keys, ec)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatal(err)
	}
	clear(got) // the caller's copy: zeroing it must not touch the cache
	for range 5 {
		mustUnwrap(t, c, keys, ec, dek)
	}
	if n := inner.unwraps.Load(); n != 1 {
		t.Fatalf("%d inner unwraps, want 1", n)
	}
	// Another context is another cache key, and the inner keyring refuses it.
	if _, err := c.Unwrap(ctx, keys, Context{"p": "2"}); err == nil {
		t.Fatal("cache served a data key for another context")
	}
	// A wrapped key that differs in any field misses.
	for _, mutate := range []func(*WrappedKey){
		func(w *WrappedKey) { w.Ciphertext = append(bytes.Clone(w.Ciphertext[:59]), w.Ciphertext[59]^1) },
		func(w *WrappedKey) { w.Algorithm = "A256KW" },
		func(w *WrappedKey) { w.KeyID = string(w.KeyID[0]^1) + w.KeyID[1:] }, // always a different id
		func(w *WrappedKey) { w.Provider = "other" },
	} {
		wk := keys[0]
		mutate(&wk)
		if _, err := c.Unwrap(ctx, []WrappedKey{wk}, ec); err == nil {
			t.Fatalf("altered wrapped key %+v served from the cache", wk)
		}
	}
}

func TestCacheOnlyCachesTheKeyThatUnwrapped(t *testing.T) {
	ctx := context.Background()
	inner := newCounting(t)
	c := NewCache(inner, nil)
	dek := testDEK(t)
	keys, _ := inner.Keyring.Wrap(ctx, dek, nil)
	junk := WrappedKey{Provider: "other", KeyID: "junk", Algorithm: "X", Ciphertext: []byte("junk")}
	mustUnwrap(t, c, []WrappedKey{junk, keys[0]}, nil, dek)
	if cachedDEK(t, c, junk, nil) != nil {
		t.Fatal("a wrapped key that unwrapped nothing was cached")
	}
	if cachedDEK(t, c, keys[0], nil) == nil {
		t.Fatal("the wrapped key that unwrapped was not cached")
	}
	// The cached key serves the same object, even listed differently.
	before := inner.unwraps.Load()
	mustUnwrap(t, c, []WrappedKey{keys[0]}, nil, dek)
	if inner.unwraps.Load() != before {
		t.Fatal("miss")
	}
	// Nothing unwraps: the attempts are aggregated.
	other := mustNewAES(t, mustAESKey(t), nil)
	forged := keys[0]
	forged.KeyID = other.KeyID()
	_, err := NewCache(other, nil).Unwrap(ctx, []WrappedKey{junk, forged}, nil)
	var nm *NoMatchError
	if !errors.As(err, &nm) || len(nm.Tried) != 1 || len(nm.Available) != 2 || !errors.Is(err, errAESOpen) {
		t.Fatalf("no match: %v", err)
	}
	if _, err := c.Unwrap(ctx, make([]WrappedKey, 17), nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("17 keys: %v", err)
	}
	if _, err := NewCache(inner, &CacheOptions{MaxWrappedKeys: 1}).Unwrap(ctx, []WrappedKey{junk, keys[0]}, nil); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("2 keys with a limit of 1: %v", err)
	}
}

func TestCacheExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		inner := newCounting(t)
		c := NewCache(inner, &CacheOptions{MaxAge: time.Minute})
		dek := testDEK(t)
		keys, _ := c.Wrap(ctx, dek, nil)
		mustUnwrap(t, c, keys, nil, dek)
		held := cachedDEK(t, c, keys[0], nil)
		if !bytes.Equal(held, dek) {
			t.Fatal("not cached")
		}
		time.Sleep(59 * time.Second)
		mustUnwrap(t, c, keys, nil, dek)
		if n := inner.unwraps.Load(); n != 1 {
			t.Fatalf("%d inner unwraps before expiry", n)
		}
		time.Sleep(time.Second)
		// Expired: the entry is zeroed and dropped on the next call, which
		// unwraps again.
		mustUnwrap(t, c, keys, nil, dek)
		if n := inner.unwraps.Load(); n != 2 {
			t.Fatalf("%d inner unwraps after expiry, want 2", n)
		}
		if !bytes.Equal(held, make([]byte, 32)) {
			t.Fatal("expired data key was not zeroed")
		}
		// Expired entries are swept by any call, not only by a lookup of
		// the same key.
		held = cachedDEK(t, c, keys[0], nil)
		time.Sleep(2 * time.Minute)
		other, _ := c.Wrap(ctx, testDEK(t), nil)
		if _, err := c.Unwrap(ctx, other, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(held, make([]byte, 32)) || cachedDEK(t, c, keys[0], nil) != nil {
			t.Fatal("expired entry survived a sweep")
		}
	})
}

func TestCacheMaxUses(t *testing.T) {
	inner := newCounting(t)
	c := NewCache(inner, &CacheOptions{MaxUses: 3})
	dek := testDEK(t)
	keys, _ := c.Wrap(context.Background(), dek, nil)
	for range 7 {
		mustUnwrap(t, c, keys, nil, dek)
	}
	// Uses 1-3, 4-6, 7: three unwraps.
	if n := inner.unwraps.Load(); n != 3 {
		t.Fatalf("%d inner unwraps, want 3", n)
	}
	held := cachedDEK(t, c, keys[0], nil)
	mustUnwrap(t, c, keys, nil, dek)
	mustUnwrap(t, c, keys, nil, dek) // third use of this entry: dropped
	if !bytes.Equal(held, make([]byte, 32)) {
		t.Fatal("used-up data key was not zeroed")
	}
	// MaxUses 1 caches nothing.
	inner1 := newCounting(t)
	c1 := NewCache(inner1, &CacheOptions{MaxUses: 1})
	keys1, _ := c1.Wrap(context.Background(), dek, nil)
	for range 3 {
		mustUnwrap(t, c1, keys1, nil, dek)
	}
	if n := inner1.unwraps.Load(); n != 3 {
		t.Fatalf("MaxUses 1: %d inner unwraps, want 3", n)
	}
}

func TestCacheMaxEntries(t *testing.T) {
	ctx := context.Background()
	inner := newCounting(t)
	c := NewCache(inner, &CacheOptions{MaxEntries: 2})
	var deks [3][]byte
	var keys [3][]WrappedKey
	for i := range deks {
		deks[i] = testDEK(t)
		keys[i], _ = c.Wrap(ctx, deks[i], nil)
	}
	mustUnwrap(t, c, keys[0], nil, deks[0])
	mustUnwrap(t, c, keys[1], nil, deks[1])
	mustUnwrap(t, c, keys[0], nil, deks[0]) // 0 is now the most recently used
	held := cachedDEK(t, c, keys[1][0], nil)
	mustUnwrap(t, c, keys[2], nil, deks[2]) // evicts 1, the least recently used
	if n := inner.unwraps.Load(); n != 3 {
		t.Fatalf("%d inner unwraps, want 3", n)
	}
	if !bytes.Equal(held, make([]byte, 32)) {
		t.Fatal("evicted data key was not zeroed")
	}
	mustUnwrap(t, c, keys[0], nil, deks[0])
	mustUnwrap(t, c, keys[2], nil, deks[2])
	if n := inner.unwraps.Load(); n != 3 {
		t.Fatalf("%d inner unwraps after hits, want 3", n)
	}
	mustUnwrap(t, c, keys[1], nil, deks[1])
	if n := inner.unwraps.Load(); n != 4 {
		t.Fatalf("evicted entry served: %d inner unwraps, want 4", n)
	}
	c.mu.Lock()
	n := c.lru.Len()
	c.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	held = cachedDEK(t, c, keys[1][0], nil)
	c.Purge()
	if !bytes.Equal(held, make([]byte, 32)) || cachedDEK(t, c, keys[1][0], nil) != nil {
		t.Fatal("Purge left a data key")
	}
}

func TestCacheReuseDataKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		inner := newCounting(t)
		c := NewCache(inner, &CacheOptions{ReuseDataKey: &ReuseOptions{MaxObjects: 3, MaxAge: time.Minute}})
		ec := Context{"p": "1"}
		var deks [][]byte
		for range 7 {
			dek, keys, err := c.GenerateDataKey(ctx, ec)
			if err != nil {
				t.Fatal(err)
			}
			// Each result unwraps to its data key.
			got, err := inner.Keyring.Unwrap(ctx, keys, ec)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("generated keys do not unwrap: %v", err)
			}
			keys[0].Ciphertext[0] ^= 1 // the caller's copy
			deks = append(deks, bytes.Clone(dek))
			clear(dek)
		}
		if n := inner.wraps.Load(); n != 3 {
			t.Fatalf("%d inner wraps for 7 objects at 3 per key, want 3", n)
		}
		for i, d := range deks {
			same := bytes.Equal(d, deks[i/3*3])
			if !same || (i%3 == 0 && i > 0 && bytes.Equal(d, deks[i-1])) {
				t.Fatalf("object %d: data key reuse is not 3 per key", i)
			}
		}
		// Another context gets its own key.
		d2, _, err := c.GenerateDataKey(ctx, Context{"p": "2"})
		if err != nil || bytes.Equal(d2, deks[6]) || inner.wraps.Load() != 4 {
			t.Fatalf("other context: %v, %d wraps", err, inner.wraps.Load())
		}
		// Object 7's key (1 use so far) expires with age.
		time.Sleep(time.Minute)
		d3, _, err := c.GenerateDataKey(ctx, ec)
		if err != nil || bytes.Equal(d3, deks[6]) || inner.wraps.Load() != 5 {
			t.Fatalf("after MaxAge: %v, %d wraps", err, inner.wraps.Load())
		}
		if _, _, err := c.GenerateDataKey(ctx, Context{"": "x"}); !errors.Is(err, ErrInvalidContext) {
			t.Fatalf("invalid context: %v", err)
		}
	})
}

func TestCacheNoReuseByDefault(t *testing.T) {
	inner := newCounting(t)
	c := NewCache(inner, nil)
	a, _, err := c.GenerateDataKey(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.GenerateDataKey(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) || inner.wraps.Load() != 2 || len(a) != 32 {
		t.Fatalf("without ReuseDataKey: equal keys %v, %d wraps", bytes.Equal(a, b), inner.wraps.Load())
	}
	var _ DataKeyGenerator = c
	// A failing inner Wrap is reported and nothing is reused.
	cd := NewCache(downKeyring{}, &CacheOptions{ReuseDataKey: &ReuseOptions{}})
	for range 2 {
		if _, _, err := cd.GenerateDataKey(context.Background(), nil); !errors.Is(err, errServiceDown) {
			t.Fatalf("failing inner: %v", err)
		}
	}
}

// TestCacheManyObjects mirrors the Key Vault benchmark's claim with a local
// keyring: 1000 objects written with reuse of 100 objects per data key, read
// back through a cache with MaxUses 100, make 10 wraps and at most 10
// unwraps.
func TestCacheManyObjects(t *testing.T) {
	ctx := context.Background()
	inner := newCounting(t)
	enc := NewCache(inner, &CacheOptions{ReuseDataKey: &ReuseOptions{MaxObjects: 100}})
	type object struct {
		dek  []byte
		keys []WrappedKey
	}
	objects := make([]object, 1000)
	for i := range objects {
		dek, keys, err := enc.GenerateDataKey(ctx, Context{"bucket": "b"})
		if err != nil {
			t.Fatal(err)
		}
		objects[i] = object{dek, keys}
	}
	dec := NewCache(inner, &CacheOptions{MaxUses: 100})
	for _, o := range objects {
		mustUnwrap(t, dec, o.keys, Context{"bucket": "b"}, o.dek)
	}
	if w, u := inner.wraps.Load(), inner.unwraps.Load(); w != 10 || u > 10 {
		t.Fatalf("%d wraps and %d unwraps, want 10 and at most 10", w, u)
	}
}

func TestCacheConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	inner := newCounting(t)
	c := NewCache(inner, &CacheOptions{MaxEntries: 4, MaxUses: 5, ReuseDataKey: &ReuseOptions{MaxObjects: 10}})
	const goroutines, perG = 10, 20
	type result struct {
		dek  []byte
		keys []WrappedKey
	}
	results := make([][]result, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range perG {
				dek, keys, err := c.GenerateDataKey(ctx, Context{"g": "shared"})
				if err != nil {
					t.Error(err)
					return
				}
				results[g] = append(results[g], result{dek, keys})
				got, err := c.Unwrap(ctx, keys, Context{"g": "shared"})
				if err != nil || !bytes.Equal(got, dek) {
					t.Errorf("concurrent unwrap: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Concurrent misses wait for a single draw: every data key serves
	// exactly MaxObjects objects.
	if n := inner.wraps.Load(); n != goroutines*perG/10 {
		t.Fatalf("%d inner wraps, want %d", n, goroutines*perG/10)
	}
	uses := map[string]int{}
	for _, rs := range results {
		for _, r := range rs {
			uses[string(r.dek)]++
		}
	}
	for _, n := range uses {
		if n != 10 {
			t.Fatalf("a data key served %d objects, want 10", n)
		}
	}
}

func TestCacheGenerateCanceledWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t)
	started := make(chan struct{}, 1)
	c := NewCache(blockingKeyring{started}, &CacheOptions{ReuseDataKey: &ReuseOptions{}})
	ctx1, cancel1 := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { _, _, err := c.GenerateDataKey(ctx1, nil); errc <- err }()
	<-started // the first caller is drawing
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _, _, err := c.GenerateDataKey(ctx2, nil); errc <- err }()
	cancel2() // the waiter gives up on its own context
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v", err)
	}
	cancel1()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("drawer: %v", err)
	}
	c.mu.Lock()
	n := len(c.reuse)
	c.mu.Unlock()
	if n != 0 {
		t.Fatal("a failed draw stayed in the cache")
	}
}

func TestCacheAudit(t *testing.T) {
	ctx := context.Background()
	audit, logger := newCapturedAudit()
	kek := mustAESKey(t)
	innerLog, innerLogger := newCapturedAudit()
	inner := mustNewAES(t, kek, &AESOptions{Logger: innerLogger})
	c := NewCache(inner, &CacheOptions{Logger: logger, ReuseDataKey: &ReuseOptions{MaxObjects: 2}})
	dek, keys, err := c.GenerateDataKey(ctx, nil) // draw: the inner wrap logs
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GenerateDataKey(ctx, nil); err != nil { // reuse
		t.Fatal(err)
	}
	mustUnwrap(t, c, keys, nil, dek) // miss: the inner unwrap logs
	mustUnwrap(t, c, keys, nil, dek) // hit
	recs := audit.records(t)
	if len(recs) != 2 {
		t.Fatalf("%d cache records:\n%s", len(recs), audit.output())
	}
	checkRecord(t, recs[0], "cache-reuse", ProviderAES, inner.KeyID(), AlgorithmAES, "ok")
	checkRecord(t, recs[1], "cache-unwrap", ProviderAES, inner.KeyID(), AlgorithmAES, "ok")
	irecs := innerLog.records(t)
	if len(irecs) != 2 {
		t.Fatalf("%d inner records:\n%s", len(irecs), innerLog.output())
	}
	checkRecord(t, irecs[0], "wrap", ProviderAES, inner.KeyID(), AlgorithmAES, "ok")
	checkRecord(t, irecs[1], "unwrap", ProviderAES, inner.KeyID(), AlgorithmAES, "ok")
	audit.assertNoSecrets(t, dek, kek)
	innerLog.assertNoSecrets(t, dek, kek)
}

func BenchmarkCacheUnwrapHit(b *testing.B) {
	ctx := context.Background()
	c := NewCache(mustNewAES(b, mustAESKey(b), nil), nil)
	keys, err := c.Wrap(ctx, testDEK(b), Context{"bucket": "b"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Unwrap(ctx, keys, Context{"bucket": "b"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGenerateDataKeyReuse(b *testing.B) {
	ctx := context.Background()
	c := NewCache(mustNewAES(b, mustAESKey(b), nil), &CacheOptions{ReuseDataKey: &ReuseOptions{MaxObjects: 100}})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.GenerateDataKey(ctx, Context{"bucket": "b"}); err != nil {
			b.Fatal(err)
		}
	}
}
