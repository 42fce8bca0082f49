//go:build cgo

package softhsm

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/testenv"
)

//go:embed testdata/counting_module.c
var countingModuleSource string

// A CountingModule is a PKCS#11 module for tests that forwards every call to
// SoftHSM2 and counts the key operations that reach it (C_UnwrapKey,
// C_WrapKey, C_Decrypt, C_Encrypt), so that a test can bound the HSM work an
// input causes, as a counting transport bounds HTTP requests. Give Path to
// the keyring as its module; the token, keys and PIN are the Token's.
//
// It is a small C library, compiled for the test with the C compiler cgo
// uses, against the PKCS#11 headers of the github.com/miekg/pkcs11 module.
// It shares SoftHSM2's state in the process (one library, one
// initialisation, one login: see the package documentation), but the
// keyring sees another module path, hence another module: open a keyring on
// the token's own module first and keep it open while keyrings on the
// counting module come and go, so that closing those never finalises
// SoftHSM2 under the others.
type CountingModule struct {
	// Path is the module's path, for PKCS11Options.Module.
	Path string
	log  string
}

// CountingModule compiles a counting module over the token's module into a
// temporary directory of tb. Without a C compiler or the headers the test
// fails in CI and is skipped loudly elsewhere.
func (t *Token) CountingModule(tb testing.TB) *CountingModule {
	tb.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		testenv.Missing(tb, "a C compiler", err, "apt-get install gcc")
	}
	headers, err := pkcs11Headers()
	if err != nil {
		tb.Fatalf("softhsm: the PKCS#11 headers of github.com/miekg/pkcs11: %v", err)
	}
	dir := tb.TempDir()
	src := filepath.Join(dir, "counting_module.c")
	if err := os.WriteFile(src, []byte(countingModuleSource), 0o600); err != nil {
		tb.Fatal(err)
	}
	m := &CountingModule{Path: filepath.Join(dir, "libcounting.so"), log: filepath.Join(dir, "calls")}
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", m.Path, src, "-I", headers,
		"-DREAL_MODULE="+cString(t.Module), "-DCOUNT_FILE="+cString(m.log), "-ldl")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("softhsm: compiling the counting module: %v\n%s", err, out)
	}
	return m
}

// Count returns how many times function (such as "C_UnwrapKey") was called
// through the module since it was made or last Reset.
func (m *CountingModule) Count(function string) int {
	data, err := os.ReadFile(m.log)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		panic("softhsm: reading the counting module's log: " + err.Error())
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		if strings.TrimSuffix(line, "\n") == function {
			n++
		}
	}
	return n
}

// Reset sets every count to zero.
func (m *CountingModule) Reset() {
	if err := os.Remove(m.log); err != nil && !errors.Is(err, os.ErrNotExist) {
		panic("softhsm: resetting the counting module's log: " + err.Error())
	}
}

// pkcs11Headers returns the directory of the PKCS#11 headers that ship with
// the binding, github.com/miekg/pkcs11, in the module cache.
func pkcs11Headers() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/miekg/pkcs11").Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "pkcs11go.h")); err != nil {
		return "", err
	}
	return dir, nil
}

// cString is s as a C string literal for a -D macro. Paths here are temp
// directories and system library paths, which need no escapes beyond these.
func cString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
