// Package formattest holds the fixtures of the tests of internal/format and
// of the packages over it (envelope, the blob client): a local AES keyring,
// and what it takes to craft objects no honest writer makes: a keyring
// whose wrapping the test controls completely, headers that commit to one
// data key and are tagged with another, and a name for the typed error a
// failure matches, so a test can insist that every failure is typed.
package formattest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// NewAES returns a local AES keyring with a fresh key: the AES fixture of
// the tests of the object format, whichever package they are in.
func NewAES(t testing.TB) *keyring.AES {
	t.Helper()
	key, err := keyring.GenerateAESKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// PlainKeyring "wraps" a data key by storing it as it is, under provider
// "test-plain" and key id ID, and unwraps only records with that id. It
// authenticates nothing, so a test can build headers with any data key,
// any commitment and any number of records, and the format's own checks
// (commitment, tag) are all that stand between them and a reader.
type PlainKeyring struct{ ID string }

// Wrap returns one record holding dek in the clear.
func (p PlainKeyring) Wrap(_ context.Context, dek []byte, _ keyring.Context) ([]keyring.WrappedKey, error) {
	return []keyring.WrappedKey{{Provider: "test-plain", KeyID: p.ID, Algorithm: "none", Ciphertext: bytes.Clone(dek)}}, nil
}

// Unwrap returns the ciphertext of the first record with p's id.
func (p PlainKeyring) Unwrap(_ context.Context, keys []keyring.WrappedKey, _ keyring.Context) ([]byte, error) {
	for _, k := range keys {
		if k.Provider == "test-plain" && k.KeyID == p.ID {
			return bytes.Clone(k.Ciphertext), nil
		}
	}
	return nil, &keyring.NoMatchError{Available: keys}
}

// Craft encodes h with the commitment of commitDEK and the tag of tagDEK,
// neither of which need be a data key that h.WrappedKeys hold.
func Craft(t testing.TB, h *format.Header, commitDEK, tagDEK []byte) []byte {
	t.Helper()
	kc, err := format.DeriveKeys(commitDEK, h.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := format.DeriveKeys(tagDEK, h.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	crafted := *h
	copy(crafted.Commitment[:], kc.Commitment)
	raw, err := format.Build(&crafted, kt.Header)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Classify names the typed error err matches, or returns "other".
func Classify(err error) string {
	var nm *keyring.NoMatchError
	switch {
	case errors.Is(err, format.ErrNotGeoseal):
		return "not geoseal"
	case errors.Is(err, format.ErrUnsupportedVersion):
		return "version"
	case errors.Is(err, format.ErrUnsupportedSuite):
		return "suite"
	case errors.Is(err, stream.ErrNotApproved):
		return "not approved"
	case errors.Is(err, format.ErrInvalidHeader):
		return "invalid"
	case errors.Is(err, keyring.ErrTooManyKeys):
		return "too many keys"
	case errors.As(err, &nm):
		return "no match"
	case errors.Is(err, format.ErrCommitment):
		return "commitment"
	case errors.Is(err, format.ErrHeaderTampered):
		return "tampered"
	case errors.Is(err, format.ErrContextMismatch):
		return "context"
	case errors.Is(err, format.ErrBodyTampered):
		return "body"
	}
	return "other"
}
