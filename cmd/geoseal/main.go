// Command geoseal is the command-line tool over the geoseal packages:
// the same encryption, keyrings and region guard a Go service embeds, for
// scripts and people.
//
//	geoseal keygen       write a new local AES-256 key file (mode 0600)
//	geoseal encrypt      encrypt a file into a geoseal object (or Azure CSE v2)
//	geoseal decrypt      decrypt one, whole or a range; nothing is left on failure
//	geoseal inspect      show an object's header without a key
//	geoseal put, get     upload (after the region guard allows the account) and download blobs
//	geoseal ls, stat, rm list a container, show a blob's authenticated properties, delete a blob
//	geoseal rewrap       rotate a blob's keys without re-encrypting it
//	geoseal rewrap-all   the same for a whole container: sharded, resumable, paced
//	geoseal audit        what a container holds, for a compliance officer
//	geoseal migrate      convert a container's Azure CSE v1/v2 blobs into geoseal objects in place
//	geoseal region       check an account location against EAR, ITAR or your policy
//	geoseal version      the versions and FIPS 140 state of the running binary
//	geoseal completion   shell completion for bash, zsh and fish
//
// Blobs are addressed as azcopy addresses them, by URL (host-style,
// https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB, or path-style as the
// emulator serves them, http://127.0.0.1:10000/ACCOUNT/CONTAINER/BLOB),
// optionally carrying a SAS; credentials are found in the order the Azure
// CLI uses. Keys come from files (--key-file, --rsa-public, --rsa-private),
// Azure Key Vault (--keyvault) or a PKCS#11 HSM (--pkcs11-*); several at
// once wrap each object's data key for each of them. `geoseal help COMMAND`
// documents every flag.
//
// # Shape of the code
//
// commands.go holds the command table: one row per command, naming the file
// (one per command) whose runner type defines the command's flags and its
// run method. A run method gets what it needs from the world through an
// environment (env.go: streams, environment variables, credentials and
// client options), so tests build their own and drive commands in-process;
// it returns an error, and errors.go maps errors to messages and exit
// codes, in one place.
//
// Exit codes shared by all commands: 0 success, 1 usage or data error,
// 3 refused by the region policy, 130 interrupted (Ctrl-C).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := interruptible(context.Background())
	code := run(ctx, systemEnvironment(), os.Args[1:])
	stop()
	os.Exit(code)
}

// interruptible returns a context that the first SIGINT (Ctrl-C) or
// SIGTERM cancels, with an *interrupted cause, so that the command stops
// cleanly: uploads commit nothing, outputs are removed, and exitCode
// returns 128 + the signal. A second signal kills the process as the
// default action does, for a user who will not wait.
func interruptible(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			cancel(&interrupted{s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}
