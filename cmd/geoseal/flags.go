package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

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
// promises scripts a one-line reason.
func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
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
