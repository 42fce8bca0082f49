package blobstore

import (
	"container/list"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Limits of a Client's open cache.
const (
	openCacheBytes    = 16 << 20 // all entries together
	openCacheEntryMax = 1 << 20  // one entry (a header and a final chunk)
)

// openCache remembers, per blob name, what open fetched of a geoseal
// object (its header and final chunk, as ciphertext) and the ETag they
// belong to, so that opening the blob again while it is unchanged (the
// many Range requests a media player makes to ServeBlob) costs a HEAD
// instead of a HEAD and two GETs. It holds only bytes the storage service
// holds in the clear, and trusts none of them: every open still unwraps
// the data key and authenticates the header and the final chunk. It is
// bounded in bytes, least recently used first out.
type openCache struct {
	mu     sync.Mutex
	lru    list.List // of *openEntry, most recently used at the front
	byName map[string]*list.Element
	bytes  int
}

// openEntry is what open fetched of one blob.
type openEntry struct {
	name   string
	etag   azcore.ETag
	header []byte
	final  []byte
	plan   objectMetadata
	lay    layout
}

func (e *openEntry) size() int { return len(e.name) + len(e.header) + len(e.final) }

// get returns the entry of name if it was fetched at etag.
func (c *openCache) get(name string, etag azcore.ETag) *openEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byName[name]
	if !ok {
		return nil
	}
	e := el.Value.(*openEntry)
	if e.etag != etag {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

// put records e, dropping the least recently used entries beyond the
// bound. The slices of e must not change afterwards.
func (c *openCache) put(e *openEntry) {
	if e.size() > openCacheEntryMax {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName == nil {
		c.byName = map[string]*list.Element{}
	}
	if el, ok := c.byName[e.name]; ok {
		c.remove(el)
	}
	c.byName[e.name] = c.lru.PushFront(e)
	c.bytes += e.size()
	for c.bytes > openCacheBytes {
		c.remove(c.lru.Back())
	}
}

func (c *openCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*openEntry)
	delete(c.byName, e.name)
	c.bytes -= e.size()
}
