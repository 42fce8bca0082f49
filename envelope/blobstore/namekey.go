package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/internal/names"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// A container's name key is a geoseal object like any other, so the
// client's keyring wraps it, Rewrap rotates it and envelope.Decrypt opens
// a downloaded copy; its plaintext is the 32-byte key, and its encryption
// context says what it is, so that no other object can pass for it.
const (
	// nameKeyBlob is where a container keeps its name key.
	nameKeyBlob = ".geoseal/names.key"

	// nameKeyContextKey and nameKeyContextValue make the name key's
	// encryption context; a read of the key requires it.
	nameKeyContextKey   = "geoseal"
	nameKeyContextValue = "container-name-key/v1"

	// nameKeyReads bounds the reads of a name key another writer has just
	// created: on a service whose reads are not atomic with a commit (the
	// emulator), the first may see the blob half committed.
	nameKeyReads = 3
)

func nameKeyContext() keyring.Context {
	return keyring.Context{nameKeyContextKey: nameKeyContextValue}
}

// nameKeyCache holds a Client's name keys once unwrapped: the container's
// name key is read (one unwrap) at most once per Client, by whichever call
// needs it first while the others wait, and a failed read is not cached.
type nameKeyCache struct {
	keys atomic.Pointer[names.Keys]
	lock chan struct{} // holds one token while a load runs
}

func newNameKeyCache() nameKeyCache {
	return nameKeyCache{lock: make(chan struct{}, 1)}
}

// nameKeys returns the keys derived from the container's name key. With
// create, a container without one gets one: a random key, wrapped by the
// client's keyring and uploaded with If-None-Match *, so that of two
// clients creating it at once one wins and the other reads the winner's.
// Only Upload creates, after the region guard allowed the write.
//
// Without a name key (and without create) it fails with ErrNoNameKey; when
// the keyring cannot unwrap the key, with the keyring's
// *keyring.NoMatchError.
func (c *Client) nameKeys(ctx context.Context, create bool) (*names.Keys, error) {
	if k := c.names.keys.Load(); k != nil {
		return k, nil
	}
	select {
	case c.names.lock <- struct{}{}:
		defer func() { <-c.names.lock }()
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if k := c.names.keys.Load(); k != nil {
		return k, nil
	}
	key, err := c.readNameKey(ctx)
	if isNotFound(err) && create {
		key, err = c.createNameKey(ctx)
		if errors.Is(err, ErrBlobChanged) {
			// Another client created it first: use theirs.
			key, err = c.readNameKey(ctx)
		}
	}
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: %w", ErrNoNameKey, err)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: the container's name key (%s): %w", nameKeyBlob, err)
	}
	defer clear(key)
	k, err := names.New(key)
	if err != nil {
		return nil, err
	}
	c.names.keys.Store(k)
	return k, nil
}

// readNameKey reads and unwraps the container's name key.
func (c *Client) readNameKey(ctx context.Context) ([]byte, error) {
	var err error
	for range nameKeyReads {
		var key []byte
		if key, err = c.readNameKeyOnce(ctx); !errors.Is(err, ErrBlobChanged) {
			return key, err
		}
	}
	return nil, err
}

func (c *Client) readNameKeyOnce(ctx context.Context) ([]byte, error) {
	b, err := c.open(ctx, nameKeyBlob, openRequest{own: true, require: nameKeyContext(), checkKey: true})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if b.Size() != names.KeySize {
		return nil, fmt.Errorf("%w: the name key object holds %d bytes, want %d", ErrNameTampered, b.Size(), names.KeySize)
	}
	key := make([]byte, names.KeySize)
	if _, err := io.ReadFull(b, key); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// createNameKey uploads a new name key, if the container has none. It
// fails with ErrBlobChanged when another writer created one first.
func (c *Client) createNameKey(ctx context.Context) ([]byte, error) {
	key := make([]byte, names.KeySize)
	rand.Read(key)
	opts := &UploadOptions{
		Context:   nameKeyContext(),
		ChunkSize: stream.MinChunkSize,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: new(azcore.ETagAny),
		}},
	}
	r := bytes.NewReader(key)
	plan, err := c.planUpload(r, opts)
	if err == nil {
		_, err = c.put(ctx, uploadTarget{stored: nameKeyBlob}, r, opts, plan)
	}
	if err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}
