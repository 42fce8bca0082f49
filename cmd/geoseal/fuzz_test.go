package main

import (
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/geoseal/geoseal/internal/untrusted"
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
		if line := oneLine(s); strings.ContainsAny(line, "\r\n") {
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
		if q != s && len(s) <= untrusted.MaxLen {
			if back, err := strconv.Unquote(q); err != nil || back != s {
				t.Errorf("quoteUntrusted(%q) = %q, which unquotes to %q (%v)", s, q, back, err)
			}
		} else if q != s {
			if len(q) > 4*untrusted.MaxLen+64 {
				t.Errorf("quoteUntrusted of %d bytes is %d bytes long", len(s), len(q))
			}
		} else if strings.ContainsAny(s, " \"=\\") {
			t.Errorf("quoteUntrusted(%q) left it unquoted", s)
		}
	})
}

// FuzzParseBlobURL feeds arbitrary text to the URL parser of put, get, ls
// and the rest: it never panics; what it accepts prints back (blobURL) to
// a URL it parses to the same account, container and blob; and what it
// refuses is said without the SAS signature the text may hold.
func FuzzParseBlobURL(f *testing.F) {
	for _, s := range []string{
		"https://acct.blob.core.windows.net/designs/part.step",
		"https://acct.blob.core.windows.net/designs/dir/sub/part%20one.step?sv=2024-08-04&sr=c&sp=rl&sig=abc%2Bdef%3D",
		"http://127.0.0.1:10000/devstoreaccount1/c/b",
		"http://[::1]:10000/devstoreaccount1/c",
		"http://localhost:10000/devstoreaccount1",
		"https://acct.blob.core.windows.net/c/b?snapshot=x",
		"https://acct.blob.core.windows.net/c/a#b",
		"https://u:p@acct.blob.core.windows.net/c",
		"https://acct.blob.core.windows.net/c/b?sig=SECRETSECRET&x=%zz",
		"ftp://x/y", "", "://", "https://", "http://127.0.0.1:1//c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := parseBlobURL(s)
		if err != nil {
			if sig := sasSignature.FindString(s); len(sig) > len("sig=")+8 && strings.Contains(err.Error(), sig) {
				t.Errorf("parseBlobURL(%q) error shows the signature: %v", s, err)
			}
			return
		}
		if loc.container == "" || loc.blob == "" {
			return
		}
		again, err := parseBlobURL(loc.blobURL(loc.blob))
		if err != nil {
			t.Fatalf("parseBlobURL(%q) = %+v, whose blobURL %q does not parse: %v", s, loc, loc.blobURL(loc.blob), err)
		}
		if again.account != loc.account || again.container != loc.container || again.blob != loc.blob || again.service != loc.service {
			t.Errorf("parseBlobURL(%q) = %+v, but its blobURL parses to %+v", s, loc, again)
		}
	})
}
