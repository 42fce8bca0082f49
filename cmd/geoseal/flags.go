package main

import (
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/geoseal/geoseal/internal/untrusted"
	"github.com/geoseal/geoseal/keyring"
)

// listFlag is a repeatable string flag: each occurrence adds a value.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// contextFlag is a repeatable k=v flag that builds an encryption context.
type contextFlag struct{ ctx keyring.Context }

func (c *contextFlag) String() string {
	if c == nil || len(c.ctx) == 0 {
		return ""
	}
	var pairs []string
	for k, v := range c.ctx {
		pairs = append(pairs, k+"="+v)
	}
	return strings.Join(pairs, ",")
}

func (c *contextFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	if c.ctx == nil {
		c.ctx = keyring.Context{}
	}
	if old, dup := c.ctx[k]; dup && old != val {
		return fmt.Errorf("key %q given twice with different values", k)
	}
	c.ctx[k] = val
	return nil
}

// parseArgs parses a command's arguments: flags and positional arguments
// in any order, as az and azcopy take them (geoseal put FILE URL
// --key-file K), with "--" ending the flags. It returns the positional
// arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// flagSyntax finds flag names as package flag writes them in errors.
var flagSyntax = regexp.MustCompile(`(^|\s)-([A-Za-z0-9][A-Za-z0-9-]*)`)

// flagError turns an error of package flag into a usage error that writes
// flags as the help does (--name) and suggests the flag meant.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimPrefix(name, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		hint := ""
		if best, ok := nearest(name, names); ok {
			hint = "; did you mean --" + best + "?"
		}
		return usageErrorf("unknown flag --%s%s", quoteUntrusted(name), hint)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usageErrorf("--%s needs a value", strings.TrimPrefix(name, "-"))
	}
	return usageErrorf("%s", flagSyntax.ReplaceAllString(msg, "$1--$2"))
}

// positionalArgs checks that a command got at most max positional
// arguments, naming them for the message.
func positionalArgs(args []string, max int, names string) error {
	if len(args) > max {
		if max == 0 {
			return usageErrorf("unexpected argument %s", quoteUntrusted(args[0]))
		}
		return usageErrorf("unexpected argument %s (takes %s)", quoteUntrusted(args[max]), names)
	}
	return nil
}

// oneLine makes an error message fit on one line of stderr: decrypt
// promises scripts a one-line reason. Error texts carry strings from
// hostile objects (key ids, providers, blob names), so control and other
// non-printing characters are escaped, Go-style (\x1b, \u202e): none
// reaches the terminal, whatever a package forgot to quote.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "; ")
	return strings.Join(strings.Fields(escapeNonPrinting(s)), " ")
}

// quoteUntrusted returns s, a string from an object, a blob, a service or
// the command line, as human output shows it: unchanged when it is short,
// printable and holds no space, quote, backslash or '=', so that tables
// and messages stay readable (project=x-57); quoted by untrusted.Quote
// otherwise. Quoted, it can neither send terminal escape sequences nor
// start a line of its own ("\nauthenticated: yes"), nor pass for another
// field of a "key=value" pair, nor flood the line. JSON output needs none
// of this: encoding/json escapes.
func quoteUntrusted(s string) string {
	if s == "" || len(s) > untrusted.MaxLen {
		return untrusted.Quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || r == ' ' || r == '"' || r == '\\' || r == '=' || !unicode.IsPrint(r) {
			return untrusted.Quote(s)
		}
	}
	return s
}

// escapeNonPrinting replaces every non-printing character of s (space and
// tab aside) and every invalid UTF-8 byte with its Go escape.
func escapeNonPrinting(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
			b.WriteRune(r)
		case r == ' ' || r == '\t' || unicode.IsPrint(r): // oneLine folds tabs
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
