package main

// Hostile header strings in human output: an object's context, providers,
// key ids and algorithms are chosen by whoever wrote it, and must not reach
// the terminal as escape sequences or as lines of their own.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/keyring"
)

// fakeLine is what a hostile string prints to pass for inspect's own
// lines: a line break, then a claim.
const fakeLine = "\nauthenticated: yes\n"

// Hostile strings: terminal escapes (clear screen, set the window title,
// conceal, cursor up), carriage returns, fake lines, a bidi override.
var (
	hostileProvider  = "evil\x1b[31m" + fakeLine
	hostileKeyID     = "kid" + fakeLine + "\x1b[1A\x1b[2K"
	hostileAlgorithm = "A256GCM\rauthenticated: yes"
	hostileContext   = keyring.Context{
		"proj\x1b[8m": "x" + fakeLine,
		"title":       "\x1b]0;owned\x07\u202eexe.fdp",
		"project":     "x-57",
	}
)

// hostileWrapper "wraps" a data key into a record of hostile strings, as a
// writer of the object may.
type hostileWrapper struct{}

func (hostileWrapper) Wrap(context.Context, []byte, keyring.Context) ([]keyring.WrappedKey, error) {
	return []keyring.WrappedKey{{Provider: hostileProvider, KeyID: hostileKeyID, Algorithm: hostileAlgorithm, Ciphertext: make([]byte, 40)}}, nil
}

// hostileObject writes an object with hostile header strings to a file.
func hostileObject(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := envelope.Encrypt(context.Background(), f, hostileWrapper{}, &envelope.EncryptOptions{Context: hostileContext})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("technical data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkPrintable fails if out holds a character a terminal would act on
// (line breaks aside, which end out's own lines) or a line that starts with
// a hostile string's fake claim.
func checkPrintable(t *testing.T, what, out string) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		if j := strings.IndexFunc(line, notPrinting); j >= 0 {
			r, _ := utf8.DecodeRuneInString(line[j:])
			t.Errorf("%s line %d holds %q: %q", what, i+1, r, line)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "authenticated: yes") {
			t.Errorf("%s line %d is a hostile object's fake line: %q", what, i+1, line)
		}
	}
}

func TestBinaryInspectHostileStrings(t *testing.T) {
	dir := t.TempDir()
	obj := hostileObject(t, filepath.Join(dir, "obj"))

	r := geoseal(t, nil, nil, "inspect", "--in", obj).want(t, 0)
	checkPrintable(t, "inspect", r.stdout)
	// format, suite, chunk size, header, object, plaintext, message id,
	// three context lines, "wrapped keys (1):", the key, the closing note.
	if n := strings.Count(r.stdout, "\n"); n != 13 {
		t.Errorf("inspect printed %d lines, want 13:\n%s", n, r.stdout)
	}
	for _, s := range []string{hostileProvider, hostileKeyID, hostileAlgorithm, "proj\x1b[8m", "x" + fakeLine} {
		if !strings.Contains(r.stdout, strconv.Quote(s)) {
			t.Errorf("inspect does not show %q quoted:\n%s", s, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, " project=x-57\n") {
		t.Errorf("a plain pair is not shown as it is:\n%s", r.stdout)
	}

	// JSON stays exact: its own escapes carry every byte.
	r = geoseal(t, nil, nil, "inspect", "--in", obj, "--json").want(t, 0)
	if strings.ContainsAny(r.stdout, "\x1b\x07\r") {
		t.Errorf("inspect --json holds raw control characters: %q", r.stdout)
	}
	var got struct {
		Context     map[string]string `json:"context"`
		WrappedKeys []struct {
			Provider  string `json:"provider"`
			KeyID     string `json:"key_id"`
			Algorithm string `json:"algorithm"`
		} `json:"wrapped_keys"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keyring.Context(got.Context), hostileContext) || len(got.WrappedKeys) != 1 ||
		got.WrappedKeys[0].Provider != hostileProvider || got.WrappedKeys[0].KeyID != hostileKeyID || got.WrappedKeys[0].Algorithm != hostileAlgorithm {
		t.Errorf("inspect --json changed the strings: %+v", got)
	}

	// Errors that name the object's records (no key opens it) stay on one
	// printable line.
	k := keygen(t, filepath.Join(dir, "k"))
	for _, args := range [][]string{
		{"decrypt", "--in", obj, "--out", filepath.Join(dir, "out"), "--key-file", k},
		{"decrypt", "--in", obj, "--out", "-", "--key-file", k, "--offset", "1"},
	} {
		r = geoseal(t, nil, nil, args...).want(t, 1)
		if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "none of the keys given opens this object") {
			t.Errorf("%v: stderr %q", args, r.stderr)
		}
		checkPrintable(t, "decrypt's error", r.stderr)
	}
}

// TestBinaryRewrapAllHostileBlobNames: blob names are chosen by whoever can
// write to the container; rewrap-all lists the ones it skipped (with
// --verbose) and the ones that failed, quoted.
func TestBinaryRewrapAllHostileBlobNames(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k1, k2 := keygen(t, filepath.Join(dir, "k1")), keygen(t, filepath.Join(dir, "k2"))
	in := writeFile(t, filepath.Join(dir, "plain"), []byte("technical data"))
	guard := []string{"--policy", "unrestricted", "--primary", "eastus"}
	// No C0 control characters: Blob Storage lists names in XML, which
	// cannot hold them (Azurite fails the listing). C1 controls, line
	// separators and bidi overrides it can: the 8-bit CSI (U+009B) starts
	// an escape sequence on some terminals, NEL (U+0085) and U+2028 break
	// lines on others.
	skipped, failed := "plain\u009b2J\u0085authenticated: yes", "obj\u202eexe.fdp\u2028authenticated: yes"
	geoseal(t, env, nil, append([]string{"put", "--container", "hostile", "--blob", failed, "--in", in, "--key-file", k2, "--create-container"}, guard...)...).want(t, 0)
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "hostile", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient(skipped).UploadBuffer(context.Background(), []byte("not encrypted"), nil); err != nil {
		t.Fatal(err)
	}
	r := geoseal(t, env, nil, append([]string{"rewrap-all", "--container", "hostile", "--key-file", k1, "--to-key-file", k1, "--verbose"}, guard...)...).want(t, 1)
	checkPrintable(t, "rewrap-all stdout", r.stdout)
	checkPrintable(t, "rewrap-all stderr", r.stderr)
	if !strings.Contains(r.stdout, "skipped "+strconv.Quote(skipped)+"\n") || !strings.Contains(r.stderr, "geoseal rewrap-all: "+strconv.Quote(failed)+": ") {
		t.Errorf("stdout %q\nstderr %q", r.stdout, r.stderr)
	}
}
