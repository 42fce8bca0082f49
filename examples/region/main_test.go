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
	for _, want := range []string{
		"refused: secondary region eastasia is in Hong Kong SAR (China), which ITAR 22 CFR 126.1(d)(1) proscribes",
		"requests sent to the storage service: 0; bytes sent: 0",
		"the container is still empty",
		"allowed: ",
		"REFUSED (where the key lives): key vault (declared): secondary region eastasia is in Hong Kong SAR (China)",
		"REFUSED (deny by default)",
		"region: OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
