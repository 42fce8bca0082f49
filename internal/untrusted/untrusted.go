// Package untrusted formats strings that geoseal does not control (taken from
// object headers, blob metadata or a service's answer) for text a person
// reads: error messages, logs read in a terminal, command output.
//
// Such a string may have been written by an attacker who can write to the
// storage account. Printed raw, it can send terminal escape sequences, start
// a new line that fakes output ("authenticated: yes"), reorder text with
// Unicode bidirectional controls, or flood the output. [Quote] makes it one
// line of printable text that says where it starts and ends. Use it for
// every untrusted string in human output, and only there: JSON output is
// escaped by its encoder, and a string compared or stored keeps its bytes.
package untrusted

import (
	"strconv"
	"unicode/utf8"
)

// MaxLen is how many bytes of an untrusted string Quote shows; the rest is
// cut. Header fields such as key ids may hold a kilobyte, which helps no
// reader of an error message.
const MaxLen = 256

// Quote returns s as a double-quoted Go string literal, as strconv.Quote
// does: control characters (escape, newline, carriage return and the rest),
// invalid UTF-8 and runes that are not printable, the Unicode bidirectional
// and other format controls among them, are escaped. A string longer than
// MaxLen bytes is cut at a rune boundary, and the literal is followed by
// "..." and the length of s, so a cut is never mistaken for the whole.
func Quote(s string) string {
	if len(s) <= MaxLen {
		return strconv.Quote(s)
	}
	cut := MaxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
