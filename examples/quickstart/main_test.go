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
	for _, want := range []string{"policy itar", "encrypted 10485760 bytes", "appears nowhere", "bytes [6000000, 6000080)", "the final chunk (which authenticates the size) and the chunk holding the range", "identical to what was uploaded", "context does not match", "quickstart: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
