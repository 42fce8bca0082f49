package blobstore

import (
	"fmt"
	"testing"
)

func TestOpenCacheBounds(t *testing.T) {
	var c openCache
	entry := func(name string, etag string, n int) *openEntry {
		return &openEntry{name: name, etag: azETag(etag), header: make([]byte, 100), final: make([]byte, n)}
	}
	c.put(entry("a", "1", 1000))
	if c.get("a", azETag("1")) == nil {
		t.Fatal("entry not found")
	}
	if c.get("a", azETag("2")) != nil || c.get("a", azETag("1")) != nil {
		t.Fatal("an entry of another ETag was returned, or kept")
	}
	c.put(entry("big", "1", openCacheEntryMax))
	if c.get("big", azETag("1")) != nil {
		t.Fatal("an entry over the per-entry bound was cached")
	}
	// Fill past the byte bound: the least recently used go first.
	per := openCacheEntryMax / 2
	n := openCacheBytes/per + 3
	for i := range n {
		c.put(entry(fmt.Sprint(i), "1", per))
		c.get("0", azETag("1")) // keep 0 recent
	}
	if c.bytes > openCacheBytes {
		t.Fatalf("%d bytes cached, bound %d", c.bytes, openCacheBytes)
	}
	if c.get("0", azETag("1")) == nil || c.get("1", azETag("1")) != nil || c.get(fmt.Sprint(n-1), azETag("1")) == nil {
		t.Fatal("eviction is not least recently used first")
	}
	if len(c.byName) != c.lru.Len() {
		t.Fatalf("%d names for %d entries", len(c.byName), c.lru.Len())
	}
}
