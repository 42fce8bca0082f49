package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/examples/internal/exenv"
	"github.com/geoseal/geoseal/internal/testenv"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out)
	if errors.Is(err, exenv.ErrAzuriteMissing) {
		testenv.Missing(t, "Azurite", err, "make deps")
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"vault calls during the upload: wrapkey 0, unwrapkey 0", "vault unwrapkey calls: 1", "wrapped with the old version still opens", "keyvault: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
