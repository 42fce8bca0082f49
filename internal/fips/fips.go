// Package fips is the one place the module decides and reports that an
// algorithm may not run because the process is in FIPS 140-only mode
// (GODEBUG=fips140=only): Enforced says whether it is, and ErrNotApproved
// is the refusal every package wraps.
//
// Each public package exports a sentinel of its own (stream.ErrNotApproved,
// keyring.ErrNotApproved, csev2.ErrNotApproved...), built with
// NotApproved. Each wraps ErrNotApproved, which wraps errors.ErrUnsupported,
// and each matches every other under errors.Is, so a user can recognise any
// refusal with whichever sentinel they imported, or with
// errors.ErrUnsupported.
package fips

import (
	"crypto/fips140"
	"errors"
	"fmt"
)

// ErrNotApproved is the root of every refusal in FIPS 140-only mode. It
// wraps errors.ErrUnsupported.
var ErrNotApproved error = &notApproved{
	msg:  "not approved in FIPS 140-only mode",
	next: fmt.Errorf("fips: %w", errors.ErrUnsupported),
}

// Enforced reports whether only FIPS 140 approved algorithms, implemented
// inside Go's validated module, may run (crypto/fips140.Enforced).
func Enforced() bool { return fips140.Enforced() }

// NotApproved returns a package's sentinel for refusals in FIPS 140-only
// mode, with the message msg. It wraps ErrNotApproved and matches, under
// errors.Is, every other sentinel NotApproved returns.
func NotApproved(msg string) error {
	return &notApproved{msg: msg, next: ErrNotApproved}
}

// notApproved is a refusal in FIPS 140-only mode. All of them are one
// kind: Is matches any other, so errors.Is(err, keyring.ErrNotApproved)
// holds for an error wrapping stream.ErrNotApproved.
type notApproved struct {
	msg  string
	next error
}

func (e *notApproved) Error() string { return e.msg }
func (e *notApproved) Unwrap() error { return e.next }

func (e *notApproved) Is(target error) bool {
	_, ok := target.(*notApproved)
	return ok
}
