package fips_test

import (
	"crypto/fips140"
	"errors"
	"fmt"
	"testing"

	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/fips"
	"github.com/geoseal/geoseal/internal/keywrap"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// TestPackageSentinels checks that the ErrNotApproved of every package
// matches every other's, the root and errors.ErrUnsupported, so that a user
// can match a refusal from any of them with whichever they imported.
func TestPackageSentinels(t *testing.T) {
	sentinels := map[string]error{
		"stream":  stream.ErrNotApproved,
		"keyring": keyring.ErrNotApproved,
		"csev2":   csev2.ErrNotApproved,
		"keywrap": keywrap.ErrNotApproved,
	}
	for name, err := range sentinels {
		wrapped := fmt.Errorf("some operation: %w: some algorithm", err)
		for other, target := range sentinels {
			if !errors.Is(wrapped, target) {
				t.Errorf("a %s refusal does not match %s.ErrNotApproved", name, other)
			}
		}
		for _, target := range []error{fips.ErrNotApproved, errors.ErrUnsupported} {
			if !errors.Is(wrapped, target) {
				t.Errorf("a %s refusal does not match %v", name, target)
			}
		}
	}
}

func TestSentinelsMatchEachOther(t *testing.T) {
	a := fips.NotApproved("a: not approved")
	b := fips.NotApproved("b: not approved")
	wrapped := fmt.Errorf("doing x: %w: XChaCha20-Poly1305", a)
	for _, tt := range []struct {
		err, target error
	}{
		{a, b}, {b, a}, {wrapped, b}, {wrapped, a},
		{a, fips.ErrNotApproved}, {wrapped, fips.ErrNotApproved}, {fips.ErrNotApproved, a},
		{a, errors.ErrUnsupported}, {wrapped, errors.ErrUnsupported}, {fips.ErrNotApproved, errors.ErrUnsupported},
	} {
		if !errors.Is(tt.err, tt.target) {
			t.Errorf("errors.Is(%q, %q) = false", tt.err, tt.target)
		}
	}
	for _, other := range []error{errors.New("a: not approved"), fmt.Errorf("x: %w", errors.ErrUnsupported)} {
		if errors.Is(other, a) || errors.Is(other, fips.ErrNotApproved) {
			t.Errorf("%q matches a FIPS refusal", other)
		}
	}
	if a.Error() != "a: not approved" {
		t.Errorf("message %q", a.Error())
	}
}

func TestEnforced(t *testing.T) {
	if fips.Enforced() != fips140.Enforced() {
		t.Error("Enforced disagrees with crypto/fips140")
	}
}
