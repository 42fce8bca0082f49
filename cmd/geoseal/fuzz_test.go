package main

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// notPrinting reports a character a terminal would act on rather than
// show (space aside).
func notPrinting(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }

// FuzzFlagParsers feeds arbitrary text to the CLI's own parsers and
// printers: the KEY=VALUE context flag, the one-line error formatting
// decrypt promises scripts, and the quoting of untrusted strings. None may
// panic; a context flag either yields exactly the pair or an error; an
// error message never spans lines and, like a quoted string, holds no
// character that does not print.
func FuzzFlagParsers(f *testing.F) {
	for _, s := range []string{"project=x-57", "a=", "=b", "novalue", "k=v=w", "", "a=b\nc", "\r\n\t",
		"x\x1b[2J\x1b]0;owned\x07", "id\nauthenticated: yes", "\u202egnp.exe", "\xff\xfe", "a\tb"} {
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
		} else if i := strings.IndexFunc(line, notPrinting); i >= 0 {
			t.Errorf("oneLine(%q) = %q holds a non-printing character at %d", s, line, i)
		}
		// A quoted untrusted string prints as itself or as a Go string
		// literal that reads back to it, and holds nothing that does not
		// print, nor a space, quote or '=' outside the quotes.
		q := quoteUntrusted(s)
		if i := strings.IndexFunc(q, notPrinting); i >= 0 {
			t.Errorf("quoteUntrusted(%q) = %q holds a non-printing character at %d", s, q, i)
		}
		if q != s {
			if back, err := strconv.Unquote(q); err != nil || back != s {
				t.Errorf("quoteUntrusted(%q) = %q, which unquotes to %q (%v)", s, q, back, err)
			}
		} else if strings.ContainsAny(s, " \"=\\") {
			t.Errorf("quoteUntrusted(%q) left it unquoted", s)
		}
	})
}
