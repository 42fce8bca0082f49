// Command geoseal is the command-line tool over the geoseal packages:
// the same encryption, keyrings and region guard a Go service embeds, for
// scripts and people.
//
//	geoseal keygen       write a new local AES-256 key file (mode 0600)
//	geoseal encrypt      encrypt a file into a geoseal object (or Azure CSE v2)
//	geoseal decrypt      decrypt one, whole or a range; nothing is left on failure
//	geoseal inspect      show an object's header without a key
//	geoseal put, get     upload (after the region guard allows the account) and download blobs
//	geoseal rewrap       rotate a blob's keys without re-encrypting it
//	geoseal rewrap-all   the same for a whole container: sharded, resumable, paced
//	geoseal audit        what a container holds, for a compliance officer
//	geoseal migrate      convert a container's Azure CSE v1/v2 blobs into geoseal objects in place
//	geoseal region       check an account location against EAR, ITAR or your policy
//
// Keys come from files (--key-file, --rsa-public, --rsa-private), Azure Key
// Vault (--keyvault) or a PKCS#11 HSM (--pkcs11-*); several at once wrap
// each object's data key for each of them. `geoseal help COMMAND` documents
// every flag.
//
// Usage:
//
//	geoseal <command> [arguments]
//	geoseal help [command]
//
// Each command lives in its own file and registers itself in init with
// register; main.go only dispatches. Commands take their arguments and
// streams explicitly (run's signature), so tests drive them in-process.
//
// Exit codes shared by all commands: 0 success, 1 usage or data error;
// commands document any others (region check: 3 = refused by policy).
package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// command is one `geoseal <name>` subcommand.
type command struct {
	name    string
	summary string // one line for `geoseal help`
	// run executes the command with the arguments after its name and
	// returns the process exit code.
	run func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
	// help prints the command's full help to w.
	help func(w io.Writer)
}

// Exit codes.
const (
	exitOK    = 0
	exitUsage = 1 // usage or data error
)

var commands = map[string]command{}

// register adds a subcommand; call it from an init function in the file
// that implements the command.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("geoseal: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches args (without the program name) and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "geoseal help: unknown command %q\n\n", args[1])
				usage(stderr)
				return exitUsage
			}
			c.help(stdout)
			return exitOK
		}
		usage(stdout)
		return exitOK
	default:
		c, ok := commands[name]
		if !ok {
			fmt.Fprintf(stderr, "geoseal: unknown command %q\n\n", name)
			usage(stderr)
			return exitUsage
		}
		return c.run(args[1:], stdin, stdout, stderr)
	}
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("geoseal: client-side encryption and storage-region control for export-controlled data in Azure Blob Storage.\n\n")
	b.WriteString("Usage:\n\n\tgeoseal <command> [arguments]\n\nCommands:\n\n")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(&b, "\t%-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintf(&b, "\t%-10s %s\n", "help", "show this help, or a command's help: geoseal help <command>")
	b.WriteString(`
Getting started:

	geoseal keygen --out my.key
	geoseal encrypt --in drawing.step --out drawing.step.gs --key-file my.key --context project=x-57
	geoseal inspect --in drawing.step.gs
	geoseal decrypt --in drawing.step.gs --out drawing.step --key-file my.key
	geoseal region check --policy itar --primary southeastasia --secondary eastasia
	geoseal put --container designs --in drawing.step --key-file my.key --policy itar --primary eastus --secondary westus

Environment:

	AZURE_STORAGE_CONNECTION_STRING  the storage account of put, get, rewrap, rewrap-all
	                                 (unless --account-url is given)
	GEOSEAL_PKCS11_PIN               the PKCS#11 user PIN (--pkcs11-* flags)
	AZURE_CLIENT_ID, AZURE_TENANT_ID, ...  azidentity's default credential chain
	                                 (--keyvault, --account-url, --arm-account)
	GODEBUG=fips140=on|only          FIPS 140-3 mode; "only" refuses what is not approved

Exit codes: 0 success, 1 usage or data error, 3 refused by the region policy
(region check, put, rewrap, rewrap-all).
`)
	io.WriteString(w, b.String())
}
