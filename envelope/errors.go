package envelope

import "github.com/geoseal/geoseal/internal/format"

// The errors below are matched with errors.Is. Errors from a keyring pass
// through unchanged in the chain: when no wrapped key of an object can be
// unwrapped, errors.As finds the keyring's *keyring.NoMatchError; when an
// object lists more wrapped keys than DecryptOptions.MaxWrappedKeys,
// errors.Is matches keyring.ErrTooManyKeys. An object whose suite is not
// approved in FIPS 140-only mode fails with an error matching
// stream.ErrNotApproved, which matches keyring.ErrNotApproved and
// errors.ErrUnsupported too: any refusal in that mode matches whichever
// ErrNotApproved the caller imported.
var (
	// ErrNotGeoseal means the input does not start with the geoseal magic
	// bytes: it is not a geoseal object (or not one at all).
	ErrNotGeoseal = format.ErrNotGeoseal

	// ErrUnsupportedVersion means the object is a geoseal object of a format
	// version this package does not read. It also matches
	// errors.ErrUnsupported.
	ErrUnsupportedVersion = format.ErrUnsupportedVersion

	// ErrUnsupportedSuite means the header names a body cipher suite this
	// package does not know. It also matches errors.ErrUnsupported.
	ErrUnsupportedSuite = format.ErrUnsupportedSuite

	// ErrInvalidHeader means the header of a geoseal object is malformed:
	// truncated, a length or count out of bounds, a field that does not
	// decode, bytes left over. Nothing was unwrapped.
	ErrInvalidHeader = format.ErrInvalidHeader

	// ErrCommitment means the data key unwrapped from the header is not the
	// one the header commits to. The object was crafted so that different
	// recipients would recover different keys, or its wrapped key was
	// replaced; either way it must not be read.
	ErrCommitment = format.ErrCommitment

	// ErrHeaderTampered means the header tag does not verify under the
	// object's key: a header field (the context, the chunk size, the
	// suite...) was changed after the object was written.
	ErrHeaderTampered = format.ErrHeaderTampered

	// ErrBodyTampered means a chunk of the body failed authentication, or
	// the body was truncated, reordered or extended. No byte of a failing
	// chunk is returned.
	ErrBodyTampered = format.ErrBodyTampered

	// ErrContextMismatch means the object's encryption context does not
	// contain every pair of DecryptOptions.RequireContext.
	ErrContextMismatch = format.ErrContextMismatch
)
