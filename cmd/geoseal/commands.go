package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// A command is one row of the command table: `geoseal NAME`.
type command struct {
	name    string
	summary string // one line, for `geoseal --help`
	help    string // the full help, for `geoseal NAME --help`
	// new returns a fresh runner for one invocation. Nil for a command
	// that only groups subcommands.
	new func() runner
	// subcommands are `geoseal NAME SUB` (region check, region list).
	subcommands []command
}

// A runner is one invocation of a command. flags defines the command's
// flags on fs, bound to the runner's fields; once they are parsed, run does
// the work with the positional arguments that are left.
//
// A new command is a file holding its runner type and help text, and one
// row in commands.
type runner interface {
	flags(fs *flag.FlagSet)
	run(ctx context.Context, env *environment, args []string) error
}

// commands is the command table, in the order `geoseal --help` lists it.
var commands = []command{
	{name: "keygen", summary: "write a new local AES-256 key-encryption key to a file (mode 0600)", help: keygenHelp, new: func() runner { return new(keygenCmd) }},
	{name: "encrypt", summary: "encrypt a file into a geoseal object (or Azure CSE v2 with --format azure-cse-v2)", help: encryptHelp, new: func() runner { return new(encryptCmd) }},
	{name: "decrypt", summary: "decrypt a geoseal object (or an Azure CSE v2 blob with --format azure-cse-v2)", help: decryptHelp, new: func() runner { return new(decryptCmd) }},
	{name: "inspect", summary: "show a geoseal object's header (format, context, wrapped keys) without any key", help: inspectHelp, new: func() runner { return new(inspectCmd) }},
	{name: "put", summary: "encrypt a file and upload it to a blob, after the region guard allows the account", help: putHelp, new: func() runner { return new(putCmd) }},
	{name: "get", summary: "download and decrypt a blob (whole or a range)", help: getHelp, new: func() runner { return new(getCmd) }},
	{name: "ls", summary: "list a container's blobs with their format and plaintext size, from metadata alone", help: lsHelp, new: func() runner { return new(lsCmd) }},
	{name: "stat", summary: "show a blob's authenticated properties (size, context, wrapped keys) without downloading it", help: statHelp, new: func() runner { return new(statCmd) }},
	{name: "rm", summary: "delete a blob (and, on request, its snapshots)", help: rmHelp, new: func() runner { return new(rmCmd) }},
	{name: "rewrap", summary: "rotate the keys of one blob without re-encrypting it", help: rewrapHelp, new: func() runner { return new(rewrapCmd) }},
	{name: "rewrap-all", summary: "rotate the keys of every geoseal blob in a container: sharded, resumable, paced", help: rewrapAllHelp, new: func() runner { return new(rewrapAllCmd) }},
	{name: "audit", summary: "report what a container holds, for a compliance officer (formats, keys, findings, region, FIPS)", help: auditHelp, new: func() runner { return new(auditCmd) }},
	{name: "migrate", summary: "convert a container's Azure client-side encrypted blobs (CSE v1, v2) into geoseal objects in place", help: migrateHelp, new: func() runner { return new(migrateCmd) }},
	{name: "region", summary: "check an account location against an export-control policy; list the region catalog", help: regionHelp, subcommands: []command{
		{name: "check", summary: "decide whether an account's regions may hold data under a policy", help: regionHelp, new: func() runner { return new(regionCheckCmd) }},
		{name: "list", summary: "list the region catalog, with a policy's verdicts", help: regionHelp, new: func() runner { return new(regionListCmd) }},
	}},
	{name: "completion", summary: "print shell completion for bash, zsh or fish", help: completionHelp, new: func() runner { return new(completionCmd) }},
	{name: "version", summary: "print the version, the Go version and the FIPS 140-3 state of this binary", help: versionHelp, new: func() runner { return new(versionCmd) }},
}

// commonFlags are the flags every command takes.
type commonFlags struct {
	timeout    time.Duration
	tryTimeout time.Duration
	quiet      bool
	verbose    bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.timeout, "timeout", 0, "bound the whole command (0: none)")
	fs.DurationVar(&c.tryTimeout, "try-timeout", defaultTryTimeout, "bound each try of each request")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress, retry notices or result line on stderr")
	fs.BoolVar(&c.verbose, "verbose", false, "errors in full: the service's status, code and request id")
}

// commonHelp ends every command's help.
const commonHelp = `
Flags every command takes:

	--timeout DURATION      stop the command after DURATION (e.g. 30s, 5m):
	                        it fails as a whole, leaving nothing half written
	--try-timeout DURATION  bound each try of each request to Azure (default 1m;
	                        raise it for very slow links, or for a large Azure
	                        CSE v2 blob, which get reads in one request); a
	                        request that fails or times out is tried again up to
	                        3 times, saying so on stderr
	--quiet                 no progress reports or retry notices on stderr
	--verbose               errors in full (the service's status, error code
	                        and request id) instead of one short line
	--help                  this help
`

// run dispatches args (without the program name) and returns the exit
// code: it parses the command line, runs the command under the
// invocation's context and reports its error.
func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 {
		writeTopHelp(env.stderr)
		return exitFailure
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return runHelp(env, args[1:])
	}
	c, path, rest, err := lookup(args)
	if err != nil {
		return report(ctx, env, path, err)
	}
	if c.new == nil {
		return runGroup(ctx, env, c, path, rest)
	}
	r := c.new()
	fs := flag.NewFlagSet("geoseal "+path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as usage errors, help as requested
	r.flags(fs)
	inv := *env
	inv.common.register(fs)
	positional, err := parseArgs(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(env.stdout, c.help+commonHelp)
		return exitOK
	}
	if err != nil {
		return report(ctx, env, path, flagError(fs, err))
	}
	if inv.common.timeout < 0 || inv.common.tryTimeout < 0 {
		return report(ctx, env, path, usageErrorf("--timeout and --try-timeout must not be negative"))
	}
	cmdCtx, cancel := withTimeout(ctx, inv.common.timeout)
	defer cancel()
	return report(cmdCtx, &inv, path, r.run(cmdCtx, &inv, positional))
}

// lookup finds the command args name, descending into a group's
// subcommand when the next argument names one. path is the command's name
// as messages show it ("region check").
func lookup(args []string) (c command, path string, rest []string, err error) {
	cs, rest := commands, args
	for len(rest) > 0 {
		i := indexCommand(cs, rest[0])
		if i < 0 {
			if path != "" {
				break // a group's help, or a mistake run reports
			}
			return c, "", nil, usageErrorf("unknown command %s%s", quoteUntrusted(rest[0]), didYouMean(rest[0], commandNames(cs)))
		}
		c, path, rest = cs[i], strings.TrimSpace(path+" "+rest[0]), rest[1:]
		if c.subcommands == nil {
			break
		}
		cs = c.subcommands
	}
	return c, path, rest, nil
}

// runGroup handles a command group named without one of its subcommands:
// its help when asked for, a usage error otherwise.
func runGroup(ctx context.Context, env *environment, c command, path string, rest []string) int {
	switch {
	case len(rest) == 0:
		return report(ctx, env, path, usageErrorf("missing subcommand (%s)", subcommandNames(c)))
	case isHelpFlag(rest[0]) || rest[0] == "help":
		io.WriteString(env.stdout, c.help+commonHelp)
		return exitOK
	}
	return report(ctx, env, path, usageErrorf("unknown subcommand %s (want %s)%s", quoteUntrusted(rest[0]), subcommandNames(c), didYouMean(rest[0], commandNames(c.subcommands))))
}

func indexCommand(cs []command, name string) int {
	for i := range cs {
		if cs[i].name == name {
			return i
		}
	}
	return -1
}

func commandNames(cs []command) []string {
	names := make([]string, len(cs))
	for i := range cs {
		names[i] = cs[i].name
	}
	return names
}

func subcommandNames(c command) string { return strings.Join(commandNames(c.subcommands), " or ") }

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "--h" }

// runHelp is `geoseal help [COMMAND [SUBCOMMAND]]`: requested help, on
// stdout.
func runHelp(env *environment, args []string) int {
	if len(args) == 0 || isHelpFlag(args[0]) {
		writeTopHelp(env.stdout)
		return exitOK
	}
	c, path, rest, err := lookup(args)
	if err != nil {
		return report(context.Background(), env, "help", err)
	}
	if c.new == nil && len(rest) > 0 {
		return runGroup(context.Background(), env, c, path, rest)
	}
	if len(rest) > 0 {
		return report(context.Background(), env, "help", usageErrorf("unexpected argument %s after %s", quoteUntrusted(rest[0]), path))
	}
	io.WriteString(env.stdout, c.help+commonHelp)
	return exitOK
}

// writeTopHelp writes `geoseal --help`: the commands, a start, the
// environment variables and the exit codes.
func writeTopHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString("geoseal: client-side encryption and storage-region control for export-controlled data in Azure Blob Storage.\n\n")
	b.WriteString("Usage:\n\n\tgeoseal <command> [arguments]\n\nCommands:\n\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "\t%-10s %s\n", "help", "show this help, or a command's help: geoseal help <command>")
	b.WriteString(`
Getting started:

	geoseal keygen --out my.key
	geoseal encrypt --in drawing.step --out drawing.step.gs --key-file my.key --context project=x-57
	geoseal inspect --in drawing.step.gs
	geoseal decrypt --in drawing.step.gs --out drawing.step --key-file my.key
	geoseal region check --policy itar --primary southeastasia --secondary eastasia
	geoseal put drawing.step https://ACCOUNT.blob.core.windows.net/designs/drawing.step \
	        --key-file my.key --policy itar --primary eastus --secondary westus
	geoseal ls https://ACCOUNT.blob.core.windows.net/designs
	geoseal get https://ACCOUNT.blob.core.windows.net/designs/drawing.step copy.step --key-file my.key

	A blob URL may carry a SAS (?sv=...&sig=...); the emulator's are path-style:
	http://127.0.0.1:10000/devstoreaccount1/CONTAINER/BLOB.

Environment:

`)
	for _, e := range envHelp {
		lines := strings.Split(e.text, "\n")
		fmt.Fprintf(&b, "\t%s\n", e.name)
		for _, l := range lines {
			fmt.Fprintf(&b, "\t        %s\n", l)
		}
	}
	b.WriteString(`
Exit codes: 0 success, 1 usage or data error, 3 refused by the region policy
(region check, put, rewrap, rewrap-all, migrate), 130 interrupted (Ctrl-C).
`)
	io.WriteString(w, b.String())
}
