package untrusted

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "local-aes", `"local-aes"`},
		{"empty", "", `""`},
		{"escape sequence", "\x1b[2J\x1b[31mred", `"\x1b[2J\x1b[31mred"`},
		{"fake line", "k\nauthenticated: yes", `"k\nauthenticated: yes"`},
		{"carriage return", "ok\rforged", `"ok\rforged"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"bidi override", "abc\u202edcb", `"abc\u202edcb"`},
		{"bidi isolate", "x\u2066y\u2069", `"x\u2066y\u2069"`},
		{"zero width", "a\u200bb", `"a\u200bb"`},
		{"invalid utf-8", "a\xffb", `"a\xffb"`},
		{"printable unicode", "Zürich 東京", `"Zürich 東京"`},
		{"nul and del", "a\x00b\x7f", `"a\x00b\x7f"`},
		{"c1 control", "a\u009bb", `"a\u009bb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Quote(tc.in)
			if got != tc.want {
				t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
			}
			checkSafe(t, got)
			if back, err := strconv.Unquote(got); err != nil || back != tc.in {
				t.Errorf("Quote(%q) does not unquote to the input: %q, %v", tc.in, back, err)
			}
		})
	}
}

func TestQuoteLong(t *testing.T) {
	s := strings.Repeat("a", MaxLen-1) + "é" + "\n" + strings.Repeat("b", 1000) // é straddles the cut
	got := Quote(s)
	checkSafe(t, got)
	lit, rest, ok := strings.Cut(got, `"...`)
	if !ok || rest != " (1258 bytes)" {
		t.Fatalf("Quote of %d bytes = %s: no cut marker with the length", len(s), got)
	}
	shown, err := strconv.Unquote(lit + `"`)
	if err != nil || shown != strings.Repeat("a", MaxLen-1) {
		t.Fatalf("shown part %q, %v: want the first %d bytes, cut before a split rune", shown, err, MaxLen-1)
	}
	if exact := strings.Repeat("x", MaxLen); Quote(exact) != strconv.Quote(exact) {
		t.Fatal("a string of exactly MaxLen bytes was cut")
	}
}

// checkSafe fails if s holds anything but printable characters on one line.
func checkSafe(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\u202e' {
			t.Fatalf("output %q holds the non-printable rune %U", s, r)
		}
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("local-aes")
	f.Add("\x1b]8;;http://x\x07link\x1b]8;;\x07")
	f.Add(strings.Repeat("\u202e", 200))
	f.Add("a\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		got := Quote(s)
		checkSafe(t, got)
		if len(s) <= MaxLen {
			if back, err := strconv.Unquote(got); err != nil || back != s {
				t.Fatalf("Quote(%q) = %s does not round-trip", s, got)
			}
		} else if !strings.HasSuffix(got, " bytes)") {
			t.Fatalf("long input not marked as cut: %s", got)
		}
	})
}
