package main

// The README's threat model says what the format does not promise. These
// tests hold it to that: each limit it names is shown to be real through
// the binary (so the text must change if the format ever closes one), and
// the text must keep naming them.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/keyring"
)

// stolenDataKey is a recipient turned forger: it hands envelope.Encrypt an
// existing object's data key and wrapped-key records instead of new ones.
type stolenDataKey struct {
	dek  []byte
	keys []keyring.WrappedKey
}

func (s stolenDataKey) Wrap(context.Context, []byte, keyring.Context) ([]keyring.WrappedKey, error) {
	panic("not called: GenerateDataKey is")
}

func (s stolenDataKey) GenerateDataKey(context.Context, keyring.Context) ([]byte, []keyring.WrappedKey, error) {
	return bytes.Clone(s.dek), s.keys, nil
}

// TestThreatModelRecipientForges: an object wrapped for Alice and for Bob
// (an AES key file and an RSA key); Alice, with her own key only, mints
// objects with another body that Bob's geoseal decrypt accepts, and
// relabels them with another context, which Bob's RSA key accepts and his
// AES key file, which binds the context into its wrapped key, refuses.
func TestThreatModelRecipientForges(t *testing.T) {
	dir := t.TempDir()
	alice, bobAES := keygen(t, filepath.Join(dir, "alice")), keygen(t, filepath.Join(dir, "bob"))
	bobRSA, bobPub := rsaPEMs(t, dir)
	in := writeFile(t, filepath.Join(dir, "plain"), []byte("the genuine drawing"))
	genuine := filepath.Join(dir, "genuine")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", genuine, "--key-file", alice, "--key-file", bobAES, "--rsa-public", bobPub,
		"--context", "project=x-57").want(t, 0)

	// Alice unwraps the data key with her key, as any reader does.
	f, err := os.Open(genuine)
	if err != nil {
		t.Fatal(err)
	}
	h, err := envelope.Inspect(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.LoadAESKeyFile(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dek, err := kr.Unwrap(ctx, h.WrappedKeys, h.Context)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(project string) string {
		var forged bytes.Buffer
		w, err := envelope.Encrypt(ctx, &forged, stolenDataKey{dek, h.WrappedKeys}, &envelope.EncryptOptions{Context: keyring.Context{"project": project}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("a forgery"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return writeFile(t, filepath.Join(dir, "forged-"+project), forged.Bytes())
	}

	for _, tc := range []struct {
		name, project string
		key           []string
		accepted      bool
	}{
		{"forged body, Bob's AES key", "x-57", []string{"--key-file", bobAES}, true},
		{"forged body, Bob's RSA key", "x-57", []string{"--rsa-private", bobRSA}, true},
		{"relabelled, Bob's RSA key", "x-99", []string{"--rsa-private", bobRSA}, true},
		{"relabelled, Bob's AES key", "x-99", []string{"--key-file", bobAES}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"decrypt", "--in", forge(tc.project), "--out", "-", "--require-context", "project=" + tc.project}, tc.key...)
			r := geoseal(t, nil, nil, args...)
			switch {
			case tc.accepted && (r.code != 0 || r.stdout != "a forgery"):
				t.Errorf("Bob did not accept the forgery: exit %d, %q, %s", r.code, r.stdout, r.stderr)
			case !tc.accepted && (r.code != 1 || !strings.Contains(r.stderr, "none of the keys given opens this object")):
				t.Errorf("Bob's AES key accepted a relabelled object: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}

// TestThreatModelPublicKeyWrites: whoever holds an RSA public key, and no
// private key, writes an object the key's owner decrypts, with the context
// the owner requires.
func TestThreatModelPublicKeyWrites(t *testing.T) {
	dir := t.TempDir()
	priv, pub := rsaPEMs(t, dir)
	in := writeFile(t, filepath.Join(dir, "plain"), []byte("from a stranger"))
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--rsa-public", pub, "--context", "project=x-57").want(t, 0)
	r := geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", "-", "--rsa-private", priv, "--require-context", "project=x-57").want(t, 0)
	if r.stdout != "from a stranger" {
		t.Errorf("read %q", r.stdout)
	}
}

// TestThreatModelStreamingPrefix: an object cut short after whole chunks
// streams its authentic prefix to stdout before decrypt fails, and leaves
// nothing with --out FILE.
func TestThreatModelStreamingPrefix(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 5*4096)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k, "--chunk-size", "4096").want(t, 0)
	whole := readFile(t, obj)
	cut := writeFile(t, filepath.Join(dir, "cut"), whole[:len(whole)-2*(4096+28)]) // the last two chunks dropped

	r := geoseal(t, nil, nil, "decrypt", "--in", cut, "--out", "-", "--key-file", k).want(t, 1)
	if len(r.stdout) == 0 || !bytes.HasPrefix(plain, []byte(r.stdout)) {
		t.Errorf("stdout got %d bytes, want an authentic prefix of the plaintext", len(r.stdout))
	}
	out := filepath.Join(dir, "out")
	geoseal(t, nil, nil, "decrypt", "--in", cut, "--out", out, "--key-file", k).want(t, 1)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--out FILE left %v", err)
	}
}

// TestREADMEThreatModel: the README says what the format does not
// promise, and why reading Azure CSE v2 is opt-in.
func TestREADMEThreatModel(t *testing.T) {
	readme := string(readFile(t, "../../README.md"))
	_, model, ok := strings.Cut(readme, "\n## Threat model\n")
	if !ok {
		t.Fatal("README has no threat model section")
	}
	model, _, _ = strings.Cut(model, "\n## ")
	for _, want := range []string{
		"### What the format does not promise",
		"Every recipient can forge and relabel",
		"anyone holding the public key can write",
		"Streaming releases authentic chunks before the end is verified",
		"tar x",
		"--out FILE",
		"RequireContext",
		"Give writers symmetric keys",
		"### Why reading Azure CSE v2 is opt-in",
		"--format azure-cse-v2",
		"ErrContextMismatch",
	} {
		if !strings.Contains(model, want) {
			t.Errorf("the threat model does not say %q", want)
		}
	}
}
