package blobstore

import (
	"testing"

	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
)

// testKeyring is the walker tests' name for formattest.NewAES, which the
// blobstore branch switched the package's tests to; it goes when the
// walker's tests use formattest.NewAES themselves.
func testKeyring(t testing.TB) *keyring.AES { return formattest.NewAES(t) }
