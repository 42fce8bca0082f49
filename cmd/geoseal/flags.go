package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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

// flagSet returns a flag set for `geoseal <name>` that reports errors to
// stderr and prints help on -h.
func flagSet(name string, stderr io.Writer, help func(io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet("geoseal "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { help(stderr) }
	return fs
}

// onParse, when set (by tests), sees every flag set before it parses: the
// help test checks that each command's help documents all its flags.
var onParse func(*flag.FlagSet)

// parseArgs parses args into fs, refuses positional arguments and returns
// the exit code to use when parsing failed: 0 for -h (help was printed),
// exitUsage otherwise. ok reports whether the command should go on.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if onParse != nil {
		onParse(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return exitOK, true
}

// helpFor returns a help function that prints text.
func helpFor(text string) func(io.Writer) {
	return func(w io.Writer) { io.WriteString(w, text) }
}

// oneLine makes an error message fit on one line of stderr: decrypt
// promises scripts a one-line reason. Error texts carry strings from
// hostile objects (key ids, providers, blob names), so control and other
// non-printing characters are escaped, Go-style (\x1b, \u202e): none
// reaches the terminal, whatever a package forgot to quote.
func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "; ")
	return strings.Join(strings.Fields(escapeNonPrinting(s)), " ")
}

// quoteUntrusted returns s, a string from an object, a blob or a service,
// as human output may show it: unchanged when it is printable and holds no
// space, quote, backslash or '=', Go-quoted (strconv.Quote) otherwise.
// Quoted, it can neither send terminal escape sequences nor start a line
// of its own ("\nauthenticated: yes"), nor pass for another field of a
// "key=value" pair. JSON output needs none of this: encoding/json escapes.
//
// The keyring package is to gain a shared helper for this (issue 11.5);
// this one stands in until it does.
func quoteUntrusted(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == utf8.RuneError || r == ' ' || r == '"' || r == '\\' || r == '=' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
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

// fail prints "geoseal <cmd>: <reason>" on one line and returns code.
func fail(stderr io.Writer, cmd string, code int, err error) int {
	fmt.Fprintf(stderr, "geoseal %s: %s\n", cmd, oneLine(err))
	return code
}

// usageError prints a usage error on one line and returns exitUsage.
func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "geoseal %s: %s (see geoseal help %s)\n", cmd, fmt.Sprintf(format, args...), strings.Fields(cmd)[0])
	return exitUsage
}
