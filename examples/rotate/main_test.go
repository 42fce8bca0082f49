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
	for _, want := range []string{"rotated 3 objects, skipped specs/README", "headers and block lists only", "no wrapped key could be unwrapped", "identical", "rotate: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
