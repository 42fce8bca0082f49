package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

const inspectHelp = `Usage:

	geoseal inspect --in FILE [--json]

inspect prints what can be known about a geoseal object without a key: the
format version, the cipher suite, the chunk size, the header, object and
plaintext sizes, the message id, the encryption context, and for each
wrapped data key its provider (local-aes, local-rsa, azure-keyvault,
pkcs11...), key id and algorithm: who can open the object.

None of it is authenticated until a key opens the object (geoseal decrypt
checks the header tag): fit for audit and troubleshooting, not for
decisions. The plaintext size is computed from the object's size, so it is
shown only for a complete file (not for stdin if it cannot be measured).
A context key or value, provider, key id or algorithm that holds a space,
a quote, a backslash, '=' or a character that does not print (a terminal
escape, a line break) is shown Go-quoted ("a b", "\x1b[2J").

Flags:

	--in FILE  the object, or - for stdin
	--json     print JSON: version, suite, chunk_size, header_size,
	           object_size, plaintext_size, message_id, context,
	           wrapped_keys [{provider, key_id, algorithm, wrapped_size}],
	           authenticated (always false)

Exit status: 0, or 1 if the input is not a readable geoseal header.
`

// inspectOutput is `geoseal inspect --json`.
type inspectOutput struct {
	Version       int               `json:"version"`
	Suite         string            `json:"suite"`
	ChunkSize     int               `json:"chunk_size"`
	HeaderSize    int               `json:"header_size"`
	ObjectSize    int64             `json:"object_size"`
	PlaintextSize *int64            `json:"plaintext_size"`
	MessageID     string            `json:"message_id"`
	Context       map[string]string `json:"context"`
	WrappedKeys   []wrappedKeyInfo  `json:"wrapped_keys"`
	Authenticated bool              `json:"authenticated"`
	SizeError     string            `json:"size_error,omitempty"`
}

// wrappedKeyInfo is a wrapped data key as --json output shows it: who can
// open the object.
type wrappedKeyInfo struct {
	Provider    string `json:"provider"`
	KeyID       string `json:"key_id"`
	Algorithm   string `json:"algorithm"`
	WrappedSize int    `json:"wrapped_size"`
}

func wrappedKeyInfos(keys []keyring.WrappedKey) []wrappedKeyInfo {
	out := []wrappedKeyInfo{}
	for _, k := range keys {
		out = append(out, wrappedKeyInfo{k.Provider, k.KeyID, k.Algorithm, len(k.Ciphertext)})
	}
	return out
}

// writeWrappedKeys lists keys for a person, its strings quoted: they come
// from the object.
func writeWrappedKeys(w io.Writer, keys []wrappedKeyInfo) {
	fmt.Fprintf(w, "wrapped keys (%d):\n", len(keys))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, k := range keys {
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\t%d bytes\n", i+1, quoteUntrusted(k.Provider), quoteUntrusted(k.KeyID), quoteUntrusted(k.Algorithm), k.WrappedSize)
	}
	tw.Flush()
}

type inspectCmd struct {
	in   string
	json bool
}

func (c *inspectCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.in, "in", "", "object file, or - for stdin")
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

func (c *inspectCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	src, _, closeIn, err := openInput(ctx, c.in, env.stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	h, err := envelope.Inspect(src)
	if err != nil {
		return err
	}
	// Inspect leaves src at the body: count it rather than trust Stat, so
	// stdin works too.
	body, err := io.Copy(io.Discard, src)
	if err != nil {
		return err
	}
	out := inspectOutput{
		Version:     h.Version,
		Suite:       h.Suite.String(),
		ChunkSize:   h.ChunkSize,
		HeaderSize:  h.Size,
		ObjectSize:  int64(h.Size) + body,
		MessageID:   hex.EncodeToString(h.MessageID[:]),
		Context:     map[string]string(h.Context),
		WrappedKeys: wrappedKeyInfos(h.WrappedKeys),
	}
	if out.Context == nil {
		out.Context = map[string]string{}
	}
	if n, err := stream.PlaintextSize(body, &stream.Options{ChunkSize: h.ChunkSize, Suite: h.Suite}); err == nil {
		out.PlaintextSize = &n
	} else {
		out.SizeError = "body size matches no complete object: truncated or extended"
	}
	if c.json {
		return printJSON(env.stdout, out)
	}
	stdout := env.stdout
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "format:\tgeoseal v%d\n", out.Version)
	fmt.Fprintf(tw, "suite:\t%s\n", out.Suite)
	fmt.Fprintf(tw, "chunk size:\t%d bytes\n", out.ChunkSize)
	fmt.Fprintf(tw, "header:\t%d bytes\n", out.HeaderSize)
	fmt.Fprintf(tw, "object:\t%d bytes\n", out.ObjectSize)
	if out.PlaintextSize != nil {
		fmt.Fprintf(tw, "plaintext:\t%d bytes\n", *out.PlaintextSize)
	} else {
		fmt.Fprintf(tw, "plaintext:\tunknown (%s)\n", out.SizeError)
	}
	fmt.Fprintf(tw, "message id:\t%s\n", out.MessageID)
	if len(out.Context) == 0 {
		fmt.Fprintf(tw, "context:\t(none)\n")
	}
	// Every string below comes from the unauthenticated header: quoted
	// where it could otherwise draw on the terminal or fake a line.
	for _, k := range slices.Sorted(maps.Keys(out.Context)) {
		fmt.Fprintf(tw, "context:\t%s=%s\n", quoteUntrusted(k), quoteUntrusted(out.Context[k]))
	}
	tw.Flush()
	writeWrappedKeys(stdout, out.WrappedKeys)
	fmt.Fprintln(stdout, "(unauthenticated: no key was used; geoseal decrypt verifies the header)")
	return nil
}
