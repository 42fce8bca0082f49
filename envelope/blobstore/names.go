package blobstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/geoseal/geoseal/internal/names"
)

// Under ClientOptions.SealNames every public method takes logical names
// and maps them to stored names here; what reads a blob checks that the
// sealed name it carries opens for its stored name, is the name asked
// for, and was sealed with the object the blob holds.

// An uploadTarget or a read's target is the blob a call works on.
type uploadTarget struct {
	logical string      // the name the caller gave
	stored  string      // the blob's name in the container
	keys    *names.Keys // nil: names are not sealed
}

// checkName refuses, before any request, a name the call cannot use:
// under SealNames one that cannot be sealed, otherwise the name key's
// blob, which only the client itself writes or deletes.
func (c *Client) checkName(name string) error {
	if c.opts.SealNames {
		return names.CheckName(name)
	}
	if name == nameKeyBlob {
		return fmt.Errorf("%w: %q holds the container's name key", ErrInvalidName, name)
	}
	return nil
}

// target maps name to its blob: itself, or under SealNames its stored
// name, which needs the container's name key (created by an Upload, when
// create is set and there is none).
func (c *Client) target(ctx context.Context, name string, create bool) (uploadTarget, error) {
	t := uploadTarget{logical: name, stored: name}
	if !c.opts.SealNames {
		return t, nil
	}
	if err := names.CheckName(name); err != nil {
		return t, err
	}
	keys, err := c.nameKeys(ctx, create)
	if err != nil {
		return t, err
	}
	if t.stored, err = keys.StoredName(name); err != nil {
		return t, err
	}
	t.keys = keys
	return t, nil
}

// storedPrefix maps a listing's prefix to the stored prefix: itself, or
// under SealNames the stored names of its whole segments (see
// ListOptions.Prefix), with the keys that open what is listed. ok is false
// when nothing can match: a prefix in a container without a name key. A
// container without one lists, without a prefix, by stored name (nil
// keys).
func (c *Client) storedPrefix(ctx context.Context, prefix string) (stored string, keys *names.Keys, ok bool, err error) {
	if !c.opts.SealNames {
		return prefix, nil, true, nil
	}
	keys, err = c.nameKeys(ctx, false)
	switch {
	case errors.Is(err, ErrNoNameKey):
		return "", nil, prefix == "", nil
	case err != nil:
		return "", nil, false, err
	}
	if stored, err = keys.StoredPrefix(prefix); err != nil {
		return "", nil, false, err
	}
	return stored, keys, true, nil
}

// sealedEntries is what a blob's metadata says, once opened, under
// SealNames: its logical name, its user metadata and the message id of the
// object both were sealed with.
type sealedEntries struct {
	logical   string
	metadata  map[string]*string
	messageID [names.MessageIDSize]byte
}

// openSealed opens the sealed name and metadata of the blob stored, from
// its metadata md. Both must be there, open for this stored name, agree on
// the object, and the name must map to stored: anything else is
// ErrNameTampered. Whether the object is the one they were sealed with is
// the caller's to check, against the authenticated header.
func openSealed(keys *names.Keys, md map[string]*string, stored string) (sealedEntries, error) {
	var e sealedEntries
	sn, ok := metadataValue(md, metaSealedName)
	if !ok {
		return e, fmt.Errorf("%w: the blob carries no sealed name", ErrNameTampered)
	}
	name, id, err := keys.Open(names.Name, sn, stored)
	if err != nil {
		return e, err
	}
	e.logical, e.messageID = string(name), id
	if s, err := keys.StoredName(e.logical); err != nil || s != stored {
		return e, fmt.Errorf("%w: the sealed name is not the one of this blob", ErrNameTampered)
	}
	sm, ok := metadataValue(md, metaSealedMetadata)
	if !ok {
		return e, fmt.Errorf("%w: the blob carries no sealed metadata", ErrNameTampered)
	}
	payload, mid, err := keys.Open(names.Metadata, sm, stored)
	if err != nil {
		return e, err
	}
	if mid != e.messageID {
		return e, fmt.Errorf("%w: the sealed name and metadata were sealed with different objects", ErrNameTampered)
	}
	m, err := names.DecodeMetadata(payload)
	if err != nil {
		return e, err
	}
	e.metadata = make(map[string]*string, len(m))
	for k, v := range m {
		e.metadata[k] = &v
	}
	return e, nil
}

// checkSealedObject checks that the object a blob holds, whose
// authenticated header has the given message id, is the one its sealed
// entries were sealed with (a body swapped under them is refused), and
// that the blob is the one asked for.
func checkSealedObject(e sealedEntries, asked string, messageID [names.MessageIDSize]byte) error {
	if subtle.ConstantTimeCompare([]byte(e.logical), []byte(asked)) != 1 {
		return fmt.Errorf("%w: the blob's sealed name is not the name asked for", ErrNameTampered)
	}
	if e.messageID != messageID {
		return fmt.Errorf("%w: the blob holds another object than its sealed name was sealed with", ErrNameTampered)
	}
	return nil
}

// hasSealedName reports whether a blob's metadata carries a sealed name.
func hasSealedName(md map[string]*string) bool {
	_, ok := metadataValue(md, metaSealedName)
	return ok
}
