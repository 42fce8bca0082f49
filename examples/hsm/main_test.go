package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/internal/softhsm"
	"github.com/geoseal/geoseal/internal/testenv"
)

// SoftHSM2 reads its configuration once per process, and run makes a token
// of its own, so run runs once per test binary (go test -count=N repeats
// TestRun against that one run's report).
var (
	runOnce sync.Once
	runOut  bytes.Buffer
	runErr  error
)

func TestRun(t *testing.T) {
	runOnce.Do(func() { runErr = run(context.Background(), &runOut) })
	out, err := &runOut, runErr
	if errors.Is(err, exenv.ErrAzuriteMissing) {
		testenv.Missing(t, "Azurite", err, "make deps")
	}
	if errors.Is(err, softhsm.ErrMissing) {
		testenv.Missing(t, "SoftHSM2", err, "make deps")
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`keyring pkcs11 geoseal-demo/kek-2026 logged in`,
		"wrapped for pkcs11 geoseal-demo/kek-2026",
		"identical",
		"no wrapped key could be unwrapped",
		"hsm: OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
