package envelope

import (
	"io"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// Limits of the format (FORMAT.md section 2).
const (
	// MaxHeaderSize bounds the encoded header, so a reader never allocates
	// more than this for a header whatever it claims.
	MaxHeaderSize = format.MaxHeaderSize

	// MaxWrappedKeys is the hard limit on the wrapped keys one header can
	// list. DecryptOptions.MaxWrappedKeys lowers it (keyring.
	// DefaultMaxWrappedKeys by default).
	MaxWrappedKeys = format.MaxWrappedKeys
)

// A Header describes a geoseal object: everything before the encrypted body.
//
// Inspect returns a Header without any key, so its fields are unauthenticated
// there: fit for display and audit, not for decisions. Decrypt trusts them
// only after the commitment and the header tag have been verified.
type Header struct {
	// Version is the format version, 1.
	Version int
	// Suite is the AEAD that seals the body's chunks.
	Suite stream.Suite
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize int
	// MessageID is the object's random 256-bit identifier, the HKDF salt
	// of its keys.
	MessageID [32]byte
	// Context is the encryption context, authenticated by the header tag.
	Context keyring.Context
	// WrappedKeys are the object's data key, wrapped for each recipient.
	WrappedKeys []keyring.WrappedKey
	// Commitment is the HKDF commitment to the data key.
	Commitment [32]byte
	// Size is the length of the encoded header in bytes: the body starts
	// at this offset.
	Size int
}

// publicHeader returns the Header users see of a decoded header.
func publicHeader(h *format.Header) *Header {
	return &Header{
		Version:     format.Version,
		Suite:       h.Suite,
		ChunkSize:   h.ChunkSize,
		MessageID:   h.MessageID,
		Context:     h.Context,
		WrappedKeys: h.WrappedKeys,
		Commitment:  h.Commitment,
		Size:        h.Size,
	}
}

// Inspect reads the header of the object in src and returns it without
// unwrapping anything: what a human or an auditor may see of an object
// without its keys. The fields are NOT authenticated (see Header). On
// success src is positioned at the first byte of the body.
func Inspect(src io.Reader) (*Header, error) {
	raw, err := format.ReadHeader(src)
	if err != nil {
		return nil, err
	}
	h, err := format.Parse(raw)
	if err != nil {
		return nil, err
	}
	return publicHeader(h), nil
}
