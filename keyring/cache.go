package keyring

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Defaults of CacheOptions and ReuseOptions.
const (
	defaultCacheEntries = 1000
	defaultCacheMaxAge  = 5 * time.Minute
	defaultReuseObjects = 100
	defaultReuseMaxAge  = 5 * time.Minute
)

// CacheOptions configures a Cache. The zero value (or nil) caches unwrapped
// data keys with the defaults below and never reuses a data key on encrypt.
type CacheOptions struct {
	// MaxEntries bounds how many unwrapped data keys are kept; beyond it
	// the least recently used is dropped. Zero means 1000.
	MaxEntries int
	// MaxAge is how long an unwrapped data key is kept after the unwrap
	// that produced it. Zero means 5 minutes.
	MaxAge time.Duration
	// MaxUses is how many Unwrap calls one unwrapped data key serves,
	// counting the one that unwrapped it, before it is dropped and the next
	// call unwraps again. Zero means no limit other than MaxAge.
	MaxUses int
	// ReuseDataKey, if not nil, makes GenerateDataKey hand out one data key,
	// with its wrapped keys, for several objects. Nil means a new data key
	// (and one inner Wrap call) per object.
	ReuseDataKey *ReuseOptions
	// MaxWrappedKeys caps how many wrapped keys Unwrap accepts before it
	// looks at any of them. Zero means DefaultMaxWrappedKeys.
	MaxWrappedKeys int
	// MaxAttempts caps how many wrapped keys one Unwrap hands to an inner
	// keyring that is not one of this package's, one at a time (see
	// Unwrap); this package's keyrings apply their own MaxAttempts. Zero
	// means DefaultMaxAttempts.
	MaxAttempts int
	// Logger receives an audit record for every cache hit (op
	// "cache-unwrap") and every reused data key (op "cache-reuse"). The
	// inner keyring logs its own operations with its own logger. Nil means
	// no audit.
	Logger *slog.Logger
}

// ReuseOptions limits how far a Cache reuses one data key on encrypt.
//
// Reuse trades isolation for fewer KMS calls: the objects that share a data
// key are all exposed if it is, though each still has its own content key,
// derived from the data key and the object's random message id.
type ReuseOptions struct {
	// MaxObjects is how many GenerateDataKey calls one data key serves.
	// Zero means 100.
	MaxObjects int
	// MaxAge is how long a data key is handed out after it was drawn. Zero
	// means 5 minutes.
	MaxAge time.Duration
}

// Cache wraps a keyring to save calls to it, which for Key Vault or an HSM
// means round trips, latency and cost:
//
//   - Unwrap remembers the data key each wrapped key yielded, keyed by a
//     SHA-256 digest of the wrapped key (provider, key id, algorithm,
//     ciphertext) and the canonical encryption context, never by the data
//     key. A later Unwrap offering that wrapped key with that context gets
//     the data key without asking the inner keyring, within MaxEntries,
//     MaxAge and MaxUses.
//   - GenerateDataKey (the [DataKeyGenerator] interface, used by the
//     envelope package on encrypt) reuses a data key and its wrapped keys
//     for several objects with the same encryption context, within the
//     ReuseDataKey limits.
//   - Wrap passes through to the inner keyring.
//
// Data keys held by the cache are zeroed when they expire, are evicted or
// are purged; an expired key is dropped at the latest on the first cache
// call a second after it expired. Callers get their own copies, which they
// may zero. The cache never logs key bytes.
//
// A Cache holds data keys in memory, where a process compromise exposes
// them, and it answers from memory: a key disabled or an access revoked in
// Key Vault or the HSM stops a cached data key only when its entry expires.
// Choose MaxAge with that in mind. The inner keyring's access control still
// governs which wrapped keys become cache entries in the first place.
//
// Cache is safe for concurrent use if the inner keyring is.
type Cache struct {
	inner Keyring
	opts  CacheOptions

	mu        sync.Mutex
	unwrapped map[[sha256.Size]byte]*list.Element // of *cacheEntry
	lru       *list.List                          // front = most recently used
	reuse     map[string]*reuseEntry              // by canonical context
	lastSweep time.Time
}

type cacheEntry struct {
	digest   [sha256.Size]byte
	dek      []byte
	provider string
	keyID    string
	alg      string
	created  time.Time
	uses     int
}

type reuseEntry struct {
	ready   chan struct{} // closed once dek, keys or err are set
	dek     []byte
	keys    []WrappedKey
	err     error
	created time.Time
	objects int
}

// NewCache returns a cache in front of kr. opts may be nil.
func NewCache(kr Keyring, opts *CacheOptions) *Cache {
	c := &Cache{inner: kr, unwrapped: make(map[[sha256.Size]byte]*list.Element), lru: list.New(), reuse: make(map[string]*reuseEntry)}
	if opts != nil {
		c.opts = *opts
		if opts.ReuseDataKey != nil {
			r := *opts.ReuseDataKey
			c.opts.ReuseDataKey = &r
		}
	}
	if c.opts.MaxEntries <= 0 {
		c.opts.MaxEntries = defaultCacheEntries
	}
	if c.opts.MaxAge <= 0 {
		c.opts.MaxAge = defaultCacheMaxAge
	}
	if r := c.opts.ReuseDataKey; r != nil {
		if r.MaxObjects <= 0 {
			r.MaxObjects = defaultReuseObjects
		}
		if r.MaxAge <= 0 {
			r.MaxAge = defaultReuseMaxAge
		}
	}
	return c
}

// Wrap passes through to the inner keyring.
func (c *Cache) Wrap(ctx context.Context, dek []byte, ec Context) ([]WrappedKey, error) {
	return c.inner.Wrap(ctx, dek, ec)
}

// cacheDigest identifies a wrapped key and the context it is unwrapped under.
// Every field is length-prefixed so that no two tuples encode alike.
func cacheDigest(wk WrappedKey, ecb []byte) ([sha256.Size]byte, bool) {
	var b cryptobyte.Builder
	for _, s := range []string{wk.Provider, wk.KeyID, wk.Algorithm} {
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
	}
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(wk.Ciphertext) })
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ecb) })
	enc, err := b.Bytes()
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(enc), true
}

// Unwrap returns the data key of the first of keys found in the cache for
// ec. Otherwise it asks the inner keyring, caches the data key under the
// wrapped key that yielded it, and returns it; when the inner keyring
// unwraps none, the *NoMatchError lists every attempt. The returned slice is
// the caller's.
//
// A keyring of this package as the inner keyring is asked once, with every
// wrapped key, and applies its own limits (MaxAttempts and the others), so
// that the cache changes how often a keyring is asked, never what it tries.
// Any other inner keyring is asked about one wrapped key at a time, so that
// the cache learns which one yielded the data key, within MaxAttempts.
//
// With UnwrapChecked, a cached data key is returned only if it passes the
// check; otherwise the inner keyring is asked as on a miss, so that an
// object gets the same answer with or without the cache.
func (c *Cache) Unwrap(ctx context.Context, keys []WrappedKey, ec Context) ([]byte, error) {
	dek, _, err := c.unwrapChecked(ctx, keys, ec, nil)
	return dek, err
}

func (c *Cache) unwrapChecked(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error) ([]byte, int, error) {
	if err := checkCount(keys, c.opts.MaxWrappedKeys); err != nil {
		return nil, -1, err
	}
	ecb, err := ec.MarshalBinary()
	if err != nil {
		return nil, -1, err
	}
	digests := make([][sha256.Size]byte, len(keys))
	valid := make([]bool, len(keys))
	for i, wk := range keys {
		digests[i], valid[i] = cacheDigest(wk, ecb)
	}
	if dek, i := c.lookup(ctx, digests, valid, check); dek != nil {
		return dek, i, nil
	}
	if cu, ok := c.inner.(checkedUnwrapper); ok {
		dek, i, err := cu.unwrapChecked(ctx, keys, ec, check)
		if err == nil && i >= 0 && i < len(keys) && valid[i] {
			c.store(digests[i], keys[i], dek)
		}
		return dek, i, err
	}
	return c.unwrapEach(ctx, keys, ec, check, digests, valid)
}

// lookup returns a copy of the first cached data key for the digests that
// passes check (nil: any), counting its use, and its index.
func (c *Cache) lookup(ctx context.Context, digests [][sha256.Size]byte, valid []bool, check func([]byte) error) ([]byte, int) {
	type hit struct {
		i   int
		dek []byte
		e   *cacheEntry
	}
	now := time.Now()
	var hits []hit
	c.mu.Lock()
	c.sweepLocked(now)
	for i, d := range digests {
		if !valid[i] || slices.Contains(digests[:i], d) {
			continue
		}
		el := c.liveLocked(d, now)
		if el == nil {
			continue
		}
		if check == nil {
			e := el.Value.(*cacheEntry)
			dek := bytes.Clone(e.dek)
			c.useLocked(el)
			c.mu.Unlock()
			audit(ctx, c.opts.Logger, "cache-unwrap", e.provider, e.keyID, e.alg, now, nil)
			return dek, i
		}
		// The check is the caller's code: run it without the lock.
		hits = append(hits, hit{i, bytes.Clone(el.Value.(*cacheEntry).dek), el.Value.(*cacheEntry)})
	}
	c.mu.Unlock()
	var found *hit
	for j := range hits {
		if found == nil && check(hits[j].dek) == nil {
			found = &hits[j]
			continue
		}
		clear(hits[j].dek)
	}
	if found == nil {
		return nil, -1
	}
	c.mu.Lock()
	if el, ok := c.unwrapped[found.e.digest]; ok && el.Value.(*cacheEntry) == found.e {
		c.useLocked(el)
	}
	c.mu.Unlock()
	audit(ctx, c.opts.Logger, "cache-unwrap", found.e.provider, found.e.keyID, found.e.alg, now, nil)
	return found.dek, found.i
}

// unwrapEach asks an inner keyring that is not one of this package's about
// one wrapped key at a time, so that only the wrapped key that yielded the
// data key is cached. Calls about wrapped keys the inner keyring does not
// own (a *NoMatchError that tried nothing) do not count against
// MaxAttempts; a call that fails otherwise ends the search, as the
// keyrings of this package stop at a failing service.
func (c *Cache) unwrapEach(ctx context.Context, keys []WrappedKey, ec Context, check func([]byte) error, digests [][sha256.Size]byte, valid []bool) ([]byte, int, error) {
	limit := c.opts.MaxAttempts
	if limit <= 0 {
		limit = DefaultMaxAttempts
	}
	var tried []Attempt
	attempts, skipped := 0, 0
	for i, wk := range keys {
		if listedBefore(keys[:i], wk) {
			continue
		}
		if attempts >= limit {
			skipped++
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, -1, err
		}
		dek, _, err := unwrapWith(ctx, c.inner, keys[i:i+1], ec, check)
		if err == nil {
			if valid[i] {
				c.store(digests[i], wk, dek)
			}
			return dek, i, nil
		}
		if ctx.Err() != nil {
			return nil, -1, err
		}
		var nm *NoMatchError
		if errors.As(err, &nm) {
			if len(nm.Tried) > 0 {
				attempts++
			}
			tried = append(tried, nm.Tried...)
			continue
		}
		tried = append(tried, Attempt{Provider: wk.Provider, KeyID: wk.KeyID, Algorithm: wk.Algorithm, Err: err})
		attempts = limit // a failing keyring: the rest would fail too
	}
	return nil, -1, &NoMatchError{Tried: tried, Skipped: skipped, Available: append([]WrappedKey(nil), keys...)}
}

// liveLocked returns the element of the cached data key for digest, or nil
// if there is none or it has expired (and is dropped).
func (c *Cache) liveLocked(digest [sha256.Size]byte, now time.Time) *list.Element {
	el, ok := c.unwrapped[digest]
	if !ok {
		return nil
	}
	if now.Sub(el.Value.(*cacheEntry).created) >= c.opts.MaxAge {
		c.dropLocked(el)
		return nil
	}
	return el
}

// useLocked counts one use of a cached data key, dropping it at MaxUses.
func (c *Cache) useLocked(el *list.Element) {
	e := el.Value.(*cacheEntry)
	e.uses++
	if c.opts.MaxUses > 0 && e.uses >= c.opts.MaxUses {
		c.dropLocked(el)
	} else {
		c.lru.MoveToFront(el)
	}
}

// store caches a copy of dek for the wrapped key, counting the unwrap that
// produced it as its first use.
func (c *Cache) store(digest [sha256.Size]byte, wk WrappedKey, dek []byte) {
	if c.opts.MaxUses == 1 {
		return // it would be dropped on its next use anyway
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.unwrapped[digest]; ok {
		return // a concurrent miss stored it first; keep that entry
	}
	e := &cacheEntry{digest: digest, dek: bytes.Clone(dek), provider: wk.Provider, keyID: wk.KeyID, alg: wk.Algorithm, created: now, uses: 1}
	c.unwrapped[digest] = c.lru.PushFront(e)
	for c.lru.Len() > c.opts.MaxEntries {
		c.dropLocked(c.lru.Back())
	}
}

func (c *Cache) dropLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	clear(e.dek)
	delete(c.unwrapped, e.digest)
}

// sweepLocked zeroes and drops expired entries, at most once a second so
// that the hot path stays O(1).
func (c *Cache) sweepLocked(now time.Time) {
	if now.Sub(c.lastSweep) < time.Second {
		return
	}
	c.lastSweep = now
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		if now.Sub(el.Value.(*cacheEntry).created) >= c.opts.MaxAge {
			c.dropLocked(el)
		}
		el = prev
	}
	if r := c.opts.ReuseDataKey; r != nil {
		for k, e := range c.reuse {
			if isReady(e) && e.err == nil && now.Sub(e.created) >= r.MaxAge {
				clear(e.dek)
				delete(c.reuse, k)
			}
		}
	}
}

func isReady(e *reuseEntry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

// Purge zeroes and drops every data key the cache holds. Data keys being
// drawn at the time are not affected.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.dropLocked(c.lru.Back())
	}
	for k, e := range c.reuse {
		if isReady(e) {
			clear(e.dek)
			delete(c.reuse, k)
		}
	}
}

// GenerateDataKey returns a data key for a new object with context ec, and
// its wrapped keys. With ReuseDataKey set, it hands out the same data key
// for up to MaxObjects calls with the same context within MaxAge, and draws
// a new one (calling the inner Wrap) after that; concurrent callers wait
// for a single draw. Without it, every call draws a new key.
//
// The returned data key and wrapped keys are the caller's copies.
func (c *Cache) GenerateDataKey(ctx context.Context, ec Context) ([]byte, []WrappedKey, error) {
	ecb, err := ec.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	r := c.opts.ReuseDataKey
	if r == nil {
		return c.draw(ctx, ec)
	}
	id := string(ecb)
	for {
		now := time.Now()
		c.mu.Lock()
		c.sweepLocked(now)
		e, ok := c.reuse[id]
		if !ok {
			// Draw a new key; others asking meanwhile wait for it.
			e = &reuseEntry{ready: make(chan struct{})}
			c.reuse[id] = e
			c.mu.Unlock()
			dek, keys, err := c.draw(ctx, ec)
			c.mu.Lock()
			e.dek, e.keys, e.err, e.created = dek, keys, err, time.Now()
			if err != nil {
				delete(c.reuse, id)
			} else {
				dek = bytes.Clone(dek)
				keys = cloneWrappedKeys(keys)
				c.countLocked(id, e)
			}
			close(e.ready)
			c.mu.Unlock()
			return dek, keys, err
		}
		if !isReady(e) {
			c.mu.Unlock()
			select {
			case <-e.ready:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		if e.err != nil || now.Sub(e.created) >= r.MaxAge || e.objects >= r.MaxObjects {
			// Failed draws are not in the map; this one is stale.
			if c.reuse[id] == e {
				delete(c.reuse, id)
				clear(e.dek)
			}
			c.mu.Unlock()
			continue
		}
		dek, keys := bytes.Clone(e.dek), cloneWrappedKeys(e.keys)
		c.countLocked(id, e)
		c.mu.Unlock()
		for _, k := range keys {
			audit(ctx, c.opts.Logger, "cache-reuse", k.Provider, k.KeyID, k.Algorithm, now, nil)
		}
		return dek, keys, nil
	}
}

// countLocked counts one object for e and retires it at its limit.
func (c *Cache) countLocked(id string, e *reuseEntry) {
	e.objects++
	if e.objects >= c.opts.ReuseDataKey.MaxObjects {
		delete(c.reuse, id)
		clear(e.dek)
	}
}

// draw makes a new random data key and wraps it with the inner keyring.
func (c *Cache) draw(ctx context.Context, ec Context) ([]byte, []WrappedKey, error) {
	dek := make([]byte, dataKeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, err
	}
	keys, err := c.inner.Wrap(ctx, dek, ec)
	if err != nil {
		clear(dek)
		return nil, nil, err
	}
	return dek, keys, nil
}

func cloneWrappedKeys(keys []WrappedKey) []WrappedKey {
	out := make([]WrappedKey, len(keys))
	for i, k := range keys {
		out[i] = k
		out[i].Ciphertext = bytes.Clone(k.Ciphertext)
	}
	return out
}
