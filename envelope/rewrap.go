package envelope

import (
	"context"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
)

// Rewrap returns a new header for the object whose complete header is
// given, with the object's data key unwrapped by u and wrapped again by w.
// The body is unchanged and decrypts under the new header: rotating or
// revoking a key-encryption key costs one header, not a re-encryption.
//
// The new header lists only the keys w returns; the old wrapped keys are
// gone from it, so a key-encryption key that is not in w no longer opens
// the object once the new header replaces the old one (copies of the old
// header still do). The message id, suite, chunk size, encryption context
// and key commitment are kept; the header tag is recomputed.
//
// header must be exactly the object's header (Header.Size bytes, as Inspect
// reports). Rewrap verifies it as Decrypt does before it wraps anything.
func Rewrap(ctx context.Context, header []byte, u keyring.Unwrapper, w keyring.Wrapper) ([]byte, error) {
	return format.Rewrap(ctx, header, u, w)
}
