package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzFlagParsers feeds arbitrary text to the CLI's own parsers: the
// KEY=VALUE context flag and the one-line error formatting decrypt promises
// scripts. Neither may panic; a context flag either yields exactly the pair
// or an error; an error message never spans lines.
func FuzzFlagParsers(f *testing.F) {
	for _, s := range []string{"project=x-57", "a=", "=b", "novalue", "k=v=w", "", "a=b\nc", "\r\n\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c contextFlag
		err := c.Set(s)
		k, v, ok := strings.Cut(s, "=")
		switch {
		case !ok || k == "":
			if err == nil {
				t.Errorf("Set(%q) accepted a pair without a key", s)
			}
		case err != nil:
			t.Errorf("Set(%q): %v", s, err)
		case len(c.ctx) != 1 || c.ctx[k] != v:
			t.Errorf("Set(%q) = %v", s, c.ctx)
		}
		if line := oneLine(errors.New(s)); strings.ContainsAny(line, "\r\n") {
			t.Errorf("oneLine(%q) = %q spans lines", s, line)
		}
	})
}
