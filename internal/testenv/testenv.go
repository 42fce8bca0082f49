// Package testenv decides what a test does when a real component it needs
// (Azurite, SoftHSM2, the Azure SDK for Python) is missing.
//
// In CI (the CI environment variable is set, as .ci/run runs) a missing
// component is a failure: the CI script must install it, and a skipped test
// would hide that it did not. Locally the test is skipped, loudly, with the
// reason and the command that installs what is missing.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may skip.
func InCI() bool { return os.Getenv("CI") != "" }

// Missing reports that component is unavailable because of err. In CI the
// test fails; elsewhere it is skipped with a message naming the component,
// the reason and how to install it (hint, e.g. "make deps").
func Missing(t testing.TB, component string, err error, hint string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available: %v (install it with %s)", component, err, hint)
	if InCI() {
		t.Fatalf("CI requires every component: %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n!!! SKIPPING %s: %s\n\n", t.Name(), msg)
	t.Skipf("SKIPPED LOUDLY: %s", msg)
}
