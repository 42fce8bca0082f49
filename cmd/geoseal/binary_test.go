package main

// Tests that build the geoseal binary and run it as a user would: exit
// codes, files left (or not) behind, stdout and stderr.

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/softhsm"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// geosealBin builds cmd/geoseal once per test process and returns its path.
func geosealBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "geoseal-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "geoseal")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", binPath, ".")
		// The go command itself must not run under the test's GODEBUG
		// (fips140=only); the binary gets it when it runs.
		cmd.Env = withoutEnv(os.Environ(), "GODEBUG")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// userEnv is the test's environment without the variables geoseal reads
// (a developer's own defaults and credentials), which tests set
// themselves.
func userEnv() []string {
	env := os.Environ()
	for _, v := range []string{envPolicy, envPrimary, envSecondary, envKeyFile, envKeyVault, envPKCS11PIN,
		envConnectionString, envAccount, envAccountKey, envSASToken, "AZURE_TOKEN_CREDENTIALS"} {
		env = withoutEnv(env, v)
	}
	return env
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

type result struct {
	code           int
	stdout, stderr string
}

// geoseal runs the binary with args, extra environment and stdin.
func geoseal(t *testing.T, env []string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(geosealBin(t), args...)
	cmd.Env = append(userEnv(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running geoseal: %v", err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// errorLine checks that stderr is one error line, "geoseal CMD: ...",
// shorter than 200 characters and free of the service's XML, optionally
// followed (for a usage error) by the line pointing to the command's help,
// and returns the error line.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) == 2 && strings.HasPrefix(lines[1], "run 'geoseal") && strings.HasSuffix(lines[1], " --help'") {
		lines = lines[:1]
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "geoseal ") || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one error line: %q", stderr)
		return stderr
	}
	if n := len([]rune(lines[0])); n >= 200 {
		t.Errorf("error line of %d characters: %q", n, lines[0])
	}
	if strings.Contains(lines[0], "<?xml") || strings.Contains(lines[0], "</") {
		t.Errorf("error line holds XML: %q", lines[0])
	}
	return lines[0]
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirEntries lists dir, to check that nothing (no temporary file) was left.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// rsaPEMs writes an RSA key pair: private (PKCS#8, 0600) and public (PKIX).
func rsaPEMs(t *testing.T, dir string) (priv, pub string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv = writeFile(t, filepath.Join(dir, "rsa.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
	pub = writeFile(t, filepath.Join(dir, "rsa.pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}))
	return priv, pub
}

func keygen(t *testing.T, path string) string {
	t.Helper()
	geoseal(t, nil, nil, "keygen", "--out", path).want(t, 0)
	return path
}

func TestBinaryKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	r := geoseal(t, nil, nil, "keygen", "--out", key).want(t, 0)
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	content := readFile(t, key)
	if len(bytes.TrimSpace(content)) != 44 {
		t.Errorf("key file holds %q, want 44 base64 characters", content)
	}
	if !strings.Contains(r.stdout, "wrote AES-256 key ") {
		t.Errorf("stdout: %q", r.stdout)
	}

	// Never overwrite a key.
	r = geoseal(t, nil, nil, "keygen", "--out", key).want(t, 1)
	if !strings.Contains(r.stderr, "file exists") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if !bytes.Equal(readFile(t, key), content) {
		t.Error("keygen changed an existing key file")
	}

	// Two keys differ; --json reports the id.
	r = geoseal(t, nil, nil, "keygen", "--out", filepath.Join(dir, "k2"), "--json").want(t, 0)
	var out struct {
		KeyFile string `json:"key_file"`
		KeyID   string `json:"key_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.KeyID) != 32 {
		t.Errorf("--json: %q (%v)", r.stdout, err)
	}
	if bytes.Equal(readFile(t, filepath.Join(dir, "k2")), content) {
		t.Error("two keygen runs wrote the same key")
	}
	geoseal(t, nil, nil, "keygen").want(t, 1)
	geoseal(t, nil, nil, "keygen", "--out", "-").want(t, 1)
}

func TestBinaryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k1 := keygen(t, filepath.Join(dir, "k1"))
	k2 := keygen(t, filepath.Join(dir, "k2"))
	rsaPriv, rsaPub := rsaPEMs(t, dir)
	plain := randomBytes(t, 300_001)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj := filepath.Join(dir, "obj")

	// Wrapped for a local AES key and an RSA public key, with a context.
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k1, "--rsa-public", rsaPub,
		"--context", "project=x-57", "--context", "eccn=9E003", "--chunk-size", "4096").want(t, 0)
	if fi, err := os.Stat(obj); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("object: %v %v", fi, err)
	}
	if bytes.Contains(readFile(t, obj), plain[:64]) {
		t.Fatal("the object contains plaintext")
	}

	for _, keyArgs := range [][]string{{"--key-file", k1}, {"--rsa-private", rsaPriv}, {"--key-file", k2, "--rsa-private", rsaPriv}} {
		out := filepath.Join(dir, "out")
		os.Remove(out)
		args := append([]string{"decrypt", "--in", obj, "--out", out, "--require-context", "project=x-57"}, keyArgs...)
		geoseal(t, nil, nil, args...).want(t, 0)
		if !bytes.Equal(readFile(t, out), plain) {
			t.Fatalf("decrypt with %v: plaintext differs", keyArgs)
		}
	}

	// A key the object is not wrapped for.
	r := geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", filepath.Join(dir, "no"), "--key-file", k2).want(t, 1)
	if !strings.Contains(r.stderr, "none of the keys given opens this object") {
		t.Errorf("stderr: %q", r.stderr)
	}
	// A public key cannot decrypt.
	geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", filepath.Join(dir, "no"), "--rsa-public", rsaPub).want(t, 1)
	// The wrong context.
	r = geoseal(t, nil, nil, "decrypt", "--in", obj, "--out", filepath.Join(dir, "no"), "--key-file", k1, "--require-context", "project=x-58").want(t, 1)
	if !strings.Contains(r.stderr, "context") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed decrypt left its output: %v", err)
	}

	// Ranges, including past the end and empty.
	for _, rg := range []struct{ off, n, wantOff, wantEnd int }{
		{0, 10, 0, 10}, {4095, 2, 4095, 4097}, {123_456, 100_000, 123_456, 223_456},
		{299_990, -1, 299_990, 300_001}, {299_990, 1000, 299_990, 300_001}, {7, 0, 7, 7}, {300_001, 0, 300_001, 300_001},
	} {
		out := filepath.Join(dir, "range")
		args := []string{"decrypt", "--in", obj, "--out", out, "--key-file", k1, "--offset", itoa(rg.off)}
		if rg.n >= 0 {
			args = append(args, "--length", itoa(rg.n))
		}
		geoseal(t, nil, nil, args...).want(t, 0)
		if got := readFile(t, out); !bytes.Equal(got, plain[rg.wantOff:rg.wantEnd]) {
			t.Errorf("range %+v: got %d bytes", rg, len(got))
		}
	}

	// A range past the end is an error, not an empty file.
	for _, rg := range [][]string{{"--offset", "400000", "--length", "10"}, {"--offset", "300001"}, {"--offset", "300002", "--length", "0"}} {
		out := filepath.Join(dir, "past")
		r := geoseal(t, nil, nil, append([]string{"decrypt", "--in", obj, "--out", out, "--key-file", k1}, rg...)...).want(t, 1)
		if line := errorLine(t, r.stderr); !strings.Contains(line, "past the end of the plaintext (300001 bytes)") {
			t.Errorf("%v: %q", rg, line)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: a range past the end left a file", rg)
		}
	}

	// stdin to stdout, both ways.
	r = geoseal(t, nil, plain, "encrypt", "--in", "-", "--out", "-", "--key-file", k2)
	r.want(t, 0)
	r = geoseal(t, nil, []byte(r.stdout), "decrypt", "--in", "-", "--out", "-", "--key-file", k2).want(t, 0)
	if r.stdout != string(plain) {
		t.Error("stdin/stdout round trip differs")
	}
	// A range needs a file.
	geoseal(t, nil, readFile(t, obj), "decrypt", "--in", "-", "--out", "-", "--key-file", k1, "--offset", "5").want(t, 1)

	// Empty plaintext.
	empty := writeFile(t, filepath.Join(dir, "empty"), nil)
	geoseal(t, nil, nil, "encrypt", "--in", empty, "--out", obj+".empty", "--key-file", k1).want(t, 0)
	geoseal(t, nil, nil, "decrypt", "--in", obj+".empty", "--out", filepath.Join(dir, "empty.out"), "--key-file", k1).want(t, 0)
	if len(readFile(t, filepath.Join(dir, "empty.out"))) != 0 {
		t.Error("empty round trip is not empty")
	}

	// Usage errors.
	for _, args := range [][]string{
		{"encrypt", "--in", in, "--out", obj + ".x"},                                           // no key
		{"encrypt", "--in", in, "--key-file", k1},                                              // no --out
		{"encrypt", "--in", in, "--out", obj + ".x", "--key-file", k1, "--chunk-size", "1000"}, // bad chunk size
		{"encrypt", "--in", in, "--out", obj + ".x", "--key-file", k1, "--context", "novalue"},
		{"encrypt", "--in", in, "--out", obj + ".x", "--key-file", k1, "--key-id", "x"}, // CSE flag without the format
		{"encrypt", "--in", in, "--out", obj + ".x", "--key-file", k1, "--format", "pgp"},
		{"encrypt", "--in", in, "--out", obj + ".x", "--key-file", filepath.Join(dir, "missing")},
		{"decrypt", "--in", obj, "--out", obj + ".x", "--key-file", k1, "stray"},
	} {
		r := geoseal(t, nil, nil, args...)
		if r.code != 1 || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(obj + ".x"); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed encrypt left its output")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestBinaryTamper changes an object in every part and checks that decrypt
// exits 1 with one line on stderr and leaves no output file, not even a
// temporary one.
func TestBinaryTamper(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	plain := randomBytes(t, 50_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k, "--chunk-size", "4096", "--context", "a=b").want(t, 0)
	good := readFile(t, obj)
	r := geoseal(t, nil, nil, "inspect", "--in", obj, "--json").want(t, 0)
	var h struct {
		HeaderSize int `json:"header_size"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}

	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	cases := map[string][]byte{
		"magic":        flip(0),
		"context":      flip(h.HeaderSize - 40),
		"header tag":   flip(h.HeaderSize - 1),
		"first chunk":  flip(h.HeaderSize + 20),
		"middle chunk": flip(len(good) / 2),
		"last byte":    flip(len(good) - 1),
		"truncated":    good[:len(good)-1],
		"cut at chunk": good[:h.HeaderSize+4096+28],
		"extended":     append(bytes.Clone(good), 0),
		"empty":        {},
	}
	for name, obj := range cases {
		t.Run(name, func(t *testing.T) {
			sub := t.TempDir()
			bad := writeFile(t, filepath.Join(sub, "bad"), obj)
			out := filepath.Join(sub, "out")
			r := geoseal(t, nil, nil, "decrypt", "--in", bad, "--out", out, "--key-file", k).want(t, 1)
			if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "geoseal decrypt: ") {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
			if got := dirEntries(t, sub); len(got) != 1 {
				t.Errorf("files left behind: %v", got)
			}
			// On stdout nothing unauthenticated: what was written is a
			// prefix of the plaintext, whole chunks only.
			r = geoseal(t, nil, nil, "decrypt", "--in", bad, "--out", "-", "--key-file", k).want(t, 1)
			if !bytes.HasPrefix(plain, []byte(r.stdout)) || len(r.stdout)%4096 != 0 {
				t.Errorf("stdout got %d bytes that are not authenticated whole chunks of the plaintext", len(r.stdout))
			}
			// A range reading the tampered chunk fails too.
			if name == "middle chunk" {
				geoseal(t, nil, nil, "decrypt", "--in", bad, "--out", out, "--key-file", k, "--offset", "0", "--length", "50000").want(t, 1)
				if got := dirEntries(t, sub); len(got) != 1 {
					t.Errorf("files left behind by the ranged decrypt: %v", got)
				}
			}
		})
	}
	// A failed decrypt does not replace an existing output file.
	out := writeFile(t, filepath.Join(dir, "existing"), []byte("keep me"))
	geoseal(t, nil, nil, "decrypt", "--in", writeFile(t, filepath.Join(dir, "bad"), cases["last byte"]), "--out", out, "--key-file", k).want(t, 1)
	if string(readFile(t, out)) != "keep me" {
		t.Error("a failed decrypt replaced the existing --out file")
	}
}

func TestBinaryInspectJSON(t *testing.T) {
	dir := t.TempDir()
	k := keygen(t, filepath.Join(dir, "k"))
	_, rsaPub := rsaPEMs(t, dir)
	in := writeFile(t, filepath.Join(dir, "plain"), randomBytes(t, 100_000))
	obj := filepath.Join(dir, "obj")
	geoseal(t, nil, nil, "encrypt", "--in", in, "--out", obj, "--key-file", k, "--rsa-public", rsaPub,
		"--context", "project=x-57", "--chunk-size", "16384").want(t, 0)

	for _, src := range []struct {
		args  []string
		stdin []byte
	}{{[]string{"--in", obj}, nil}, {[]string{"--in", "-"}, readFile(t, obj)}} {
		r := geoseal(t, nil, src.stdin, append([]string{"inspect", "--json"}, src.args...)...).want(t, 0)
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		for _, f := range []string{"version", "suite", "chunk_size", "header_size", "object_size", "plaintext_size", "message_id", "context", "wrapped_keys", "authenticated"} {
			if _, ok := raw[f]; !ok {
				t.Errorf("inspect --json lacks %q", f)
			}
		}
		var got struct {
			Version       int               `json:"version"`
			Suite         string            `json:"suite"`
			ChunkSize     int               `json:"chunk_size"`
			HeaderSize    int               `json:"header_size"`
			ObjectSize    int64             `json:"object_size"`
			PlaintextSize int64             `json:"plaintext_size"`
			MessageID     string            `json:"message_id"`
			Context       map[string]string `json:"context"`
			WrappedKeys   []struct {
				Provider, Algorithm string
				KeyID               string `json:"key_id"`
				WrappedSize         int    `json:"wrapped_size"`
			} `json:"wrapped_keys"`
			Authenticated bool `json:"authenticated"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if got.Version != 1 || got.Suite != "AES-256-GCM" || got.ChunkSize != 16384 || got.PlaintextSize != 100_000 ||
			got.ObjectSize != int64(len(readFile(t, obj))) || got.HeaderSize <= 0 || len(got.MessageID) != 64 ||
			got.Context["project"] != "x-57" || got.Authenticated {
			t.Errorf("inspect --json: %s", r.stdout)
		}
		if len(got.WrappedKeys) != 2 || got.WrappedKeys[0].Provider != "local-aes" || got.WrappedKeys[1].Provider != "local-rsa" ||
			got.WrappedKeys[1].Algorithm != "RSA-OAEP-256" || got.WrappedKeys[1].WrappedSize != 256 || len(got.WrappedKeys[0].KeyID) != 32 {
			t.Errorf("wrapped keys: %+v", got.WrappedKeys)
		}
		// The key id inspect shows is the one keygen printed.
		if !strings.Contains(r.stdout, got.WrappedKeys[0].KeyID) {
			t.Error("key id missing")
		}
	}
	// The text form says it is unauthenticated; no key is involved.
	r := geoseal(t, nil, nil, "inspect", "--in", obj).want(t, 0)
	for _, want := range []string{"geoseal v1", "AES-256-GCM", "16384", "project=x-57", "local-rsa", "unauthenticated"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, r.stdout)
		}
	}
	// Not an object.
	geoseal(t, nil, nil, "inspect", "--in", in).want(t, 1)
}

func TestBinaryRegionCheck(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"region", "check", "--policy", "itar", "--primary", "eastus", "--secondary", "westus"}, 0, "ALLOWED"},
		{[]string{"region", "check", "--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia"}, 3, "eastasia is in Hong Kong SAR"},
		{[]string{"region", "check", "--policy", "ear", "--primary", "chinanorth3"}, 3, "REFUSED"},
		{[]string{"region", "check", "--policy", "ear", "--primary", "nowhere"}, 3, "not in the region catalog"},
		{[]string{"region", "check", "--policy", "nope", "--primary", "eastus"}, 1, ""},
		{[]string{"region", "check", "--primary", "eastus"}, 1, ""},
	} {
		r := geoseal(t, nil, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.out) {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
	r := geoseal(t, nil, nil, "region", "check", "--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia", "--json").want(t, 3)
	var d struct {
		Allowed bool
		Rule    string
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Allowed || d.Rule != "denied-country" {
		t.Errorf("--json: %s (%v)", r.stdout, err)
	}
}

// TestBinaryBlob runs put, get, rewrap and rewrap-all against Azurite.
func TestBinaryBlob(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k1 := keygen(t, filepath.Join(dir, "k1"))
	k2 := keygen(t, filepath.Join(dir, "k2"))
	plain := randomBytes(t, 5<<20+123)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	ctx := context.Background()
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "cli", nil)
	if err != nil {
		t.Fatal(err)
	}
	blobExists := func(name string) bool {
		_, err := cc.NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	// Refused by the region guard: exit 3, the explanation, nothing sent
	// (not even the container).
	r := geoseal(t, env, nil, "put", "--container", "cli", "--blob", "a", "--in", in, "--key-file", k1,
		"--policy", "itar", "--primary", "southeastasia", "--secondary", "eastasia", "--create-container").want(t, 3)
	if !strings.Contains(r.stderr, "nothing was sent") || !strings.Contains(r.stderr, "22 CFR 126.1(d)(1)") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if _, err := cc.GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Errorf("a refused put created the container: %v", err)
	}
	// --policy is required; "unrestricted" must be spelled out.
	r = geoseal(t, env, nil, "put", "--container", "cli", "--blob", "a", "--in", in, "--key-file", k1, "--primary", "eastus").want(t, 1)
	if !strings.Contains(r.stderr, "--policy is required") || !strings.Contains(r.stderr, "unrestricted") {
		t.Errorf("stderr: %q", r.stderr)
	}
	geoseal(t, env, nil, "put", "--container", "cli", "--blob", "a", "--in", in, "--key-file", k1, "--policy", "itar").want(t, 1)

	// Allowed.
	r = geoseal(t, env, nil, "put", "--container", "cli", "--blob", "a", "--in", in, "--key-file", k1, "--context", "p=1",
		"--policy", "itar", "--primary", "eastus", "--secondary", "westus", "--create-container", "--json").want(t, 0)
	var up struct {
		Blob          string `json:"blob"`
		Size          int64  `json:"size"`
		EncryptedSize int64  `json:"encrypted_size"`
		Decision      struct {
			Allowed bool
			Policy  string
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &up); err != nil || up.Blob != "a" || up.Size != int64(len(plain)) ||
		up.EncryptedSize <= up.Size || !up.Decision.Allowed || up.Decision.Policy != "itar" {
		t.Errorf("put --json: %s (%v)", r.stdout, err)
	}
	geoseal(t, env, plain[:1000], "put", "--container", "cli", "--blob", "b", "--in", "-", "--key-file", k1, "--policy", "unrestricted").want(t, 1) // no region declared
	geoseal(t, env, plain[:1000], "put", "--container", "cli", "--blob", "b", "--in", "-", "--key-file", k1, "--policy", "unrestricted", "--primary", "eastus").want(t, 0)

	out := filepath.Join(dir, "out")
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k1, "--require-context", "p=1").want(t, 0)
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("get: plaintext differs")
	}
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k1, "--offset", "4194000", "--length", "1000").want(t, 0)
	if !bytes.Equal(readFile(t, out), plain[4194000:4195000]) {
		t.Fatal("get range: plaintext differs")
	}
	r = geoseal(t, env, nil, "get", "--container", "cli", "--blob", "b", "--out", "-", "--key-file", k1).want(t, 0)
	if r.stdout != string(plain[:1000]) {
		t.Fatal("get to stdout differs")
	}
	// Wrong key, missing blob: exit 1, no file.
	os.Remove(out)
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k2).want(t, 1)
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "zzz", "--out", out, "--key-file", k1).want(t, 1)
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed get left its output")
	}

	// Rewrap a to k2: k1 no longer opens it.
	guardArgs := []string{"--policy", "itar", "--primary", "eastus"}
	r = geoseal(t, env, nil, append([]string{"rewrap", "--container", "cli", "--blob", "a", "--key-file", k1, "--to-key-file", k2}, guardArgs...)...).want(t, 0)
	if !strings.Contains(r.stdout, "/devstoreaccount1/cli/a: new ") {
		t.Errorf("rewrap: %q", r.stdout)
	}
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k1).want(t, 1)
	geoseal(t, env, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k2).want(t, 0)
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("after rewrap: plaintext differs")
	}
	// Rewrap refused by the guard.
	geoseal(t, env, nil, "rewrap", "--container", "cli", "--blob", "a", "--key-file", k2, "--to-key-file", k1,
		"--policy", "ear", "--primary", "southeastasia", "--secondary", "eastasia").want(t, 3)

	// rewrap-all: b is under k1, a already under k2, c under a key
	// neither opens; a plain blob is not a geoseal object.
	if _, err := cc.NewBlockBlobClient("plain.txt").UploadBuffer(ctx, []byte("hi"), nil); err != nil {
		t.Fatal(err)
	}
	k3 := keygen(t, filepath.Join(dir, "k3"))
	geoseal(t, env, plain[:10], "put", "--container", "cli", "--blob", "c", "--in", "-", "--key-file", k3, "--policy", "unrestricted", "--primary", "eastus").want(t, 0)
	r = geoseal(t, env, nil, append([]string{"rewrap-all", "--container", "cli", "--key-file", k1, "--to-key-file", k2, "--json"}, guardArgs...)...).want(t, 1)
	type line struct {
		Blob, Outcome, Error string
		Summary              *struct {
			Rotated        int64 `json:"rotated"`
			AlreadyRotated int64 `json:"already_rotated"`
			NotGeoseal     int64 `json:"not_geoseal"`
			Failed         int64 `json:"failed"`
		}
	}
	outcomes := map[string]string{}
	var last line
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		last = line{}
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("rewrap-all --json line %q: %v", l, err)
		}
		if last.Blob != "" {
			outcomes[last.Blob] = last.Outcome
		}
	}
	want := map[string]string{"a": "already-rotated", "b": "rotated", "c": "failed", "plain.txt": "not-geoseal"}
	if !maps.Equal(outcomes, want) || last.Summary == nil || last.Summary.Rotated != 1 || last.Summary.AlreadyRotated != 1 ||
		last.Summary.NotGeoseal != 1 || last.Summary.Failed != 1 {
		t.Errorf("rewrap-all --json: %s", r.stdout)
	}
	geoseal(t, env, nil, append([]string{"rewrap-all", "--container", "cli", "--key-file", k3, "--to-key-file", k2}, guardArgs...)...).want(t, 0)
	r = geoseal(t, env, nil, append([]string{"rewrap-all", "--container", "cli", "--key-file", k2, "--to-key-file", k1}, guardArgs...)...).want(t, 0)
	if !strings.Contains(r.stdout, "rotated 3 blobs in cli; 0 already rotated; 1 not geoseal objects; 0 failed") {
		t.Errorf("rewrap-all: %q", r.stdout)
	}
	for _, b := range []string{"a", "b"} {
		geoseal(t, env, nil, "get", "--container", "cli", "--blob", b, "--out", out, "--key-file", k1).want(t, 0)
	}
	if !blobExists("a") || blobExists("zzz") {
		t.Error("blob listing is off")
	}

	// An Azure CSE v2 blob (a vector of the Python SDK's algorithm), read
	// through the blob client with --format azure-cse-v2 when --key-id
	// names its key (TestBinaryGetCSEv2OptIn tests the refusals).
	v := csev2Vector(t, "2.1/A256KW/java/r100/307")
	vkek := writeFile(t, filepath.Join(dir, "vkek"), v.kek)
	if _, err := cc.NewBlockBlobClient("cse").UploadBuffer(ctx, v.ciphertext, &blockblob.UploadBufferOptions{
		Metadata: map[string]*string{"encryptiondata": &v.encryptionData},
	}); err != nil {
		t.Fatal(err)
	}
	if fips140.Enforced() {
		// A local A256KW key runs outside the validated module: refused.
		r := geoseal(t, env, nil, "get", "--format", "azure-cse-v2", "--container", "cli", "--blob", "cse", "--out", filepath.Join(dir, "cse.fips"), "--key-file", vkek, "--key-id", v.keyID).want(t, 1)
		if !strings.Contains(r.stderr, "not approved") {
			t.Errorf("get of a local-A256KW CSE v2 blob in FIPS 140-only mode: %q", r.stderr)
		}
	} else {
		geoseal(t, env, nil, "get", "--format", "azure-cse-v2", "--container", "cli", "--blob", "cse", "--out", out, "--key-file", vkek, "--key-id", v.keyID).want(t, 0)
		if !bytes.Equal(readFile(t, out), v.plaintext) {
			t.Error("get of a CSE v2 blob differs")
		}
		geoseal(t, env, nil, "get", "--format", "azure-cse-v2", "--container", "cli", "--blob", "cse", "--out", out, "--key-file", vkek, "--key-id", v.keyID, "--offset", "150", "--length", "100").want(t, 0)
		if !bytes.Equal(readFile(t, out), v.plaintext[150:250]) {
			t.Error("ranged get of a CSE v2 blob differs")
		}
	}
	r = geoseal(t, env, nil, "get", "--format", "azure-cse-v2", "--container", "cli", "--blob", "cse", "--out", filepath.Join(dir, "cse.no"), "--key-file", vkek).want(t, 1)
	if !strings.Contains(r.stderr, "--key-id is required") {
		t.Errorf("stderr: %q", r.stderr)
	}

	// No account configured.
	r = geoseal(t, nil, nil, "get", "--container", "cli", "--blob", "a", "--out", out, "--key-file", k1).want(t, 1)
	if !strings.Contains(r.stderr, "AZURE_STORAGE_CONNECTION_STRING") {
		t.Errorf("stderr: %q", r.stderr)
	}
}

// TestBinaryCSEv2 round-trips Azure client-side encryption v2 through
// files, and reads a vector written by the Python SDK's algorithm.
func TestBinaryCSEv2(t *testing.T) {
	dir := t.TempDir()
	kek := writeFile(t, filepath.Join(dir, "kek"), randomBytes(t, 32)) // raw 32 bytes
	rsaPriv, rsaPub := rsaPEMs(t, dir)
	plain := randomBytes(t, 9<<20+5) // three regions
	in := writeFile(t, filepath.Join(dir, "plain"), plain)

	for _, kc := range []struct {
		name     string
		enc, dec []string
	}{
		{"A256KW", []string{"--key-file", kek, "--key-id", "local:kek-1"}, []string{"--key-file", kek, "--key-id", "local:kek-1"}},
		{"RSA-OAEP-256", []string{"--rsa-public", rsaPub, "--key-id", "local:rsa-1"}, []string{"--rsa-private", rsaPriv, "--key-id", "local:rsa-1"}},
	} {
		t.Run(kc.name, func(t *testing.T) {
			blob, md := filepath.Join(dir, kc.name+".blob"), filepath.Join(dir, kc.name+".json")
			r := geoseal(t, nil, nil, append([]string{"encrypt", "--format", "azure-cse-v2", "--in", in, "--out", blob, "--metadata-out", md}, kc.enc...)...)
			if fips140.Enforced() {
				// Counter nonces are not allowed in FIPS 140-only mode.
				r.want(t, 1)
				if !strings.Contains(r.stderr, "not approved") {
					t.Errorf("stderr: %q", r.stderr)
				}
				if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
					t.Error("a refused encrypt left its output")
				}
				return
			}
			r.want(t, 0)
			var ed struct {
				WrappedContentKey struct{ KeyId, Algorithm string }
				EncryptionAgent   struct{ Protocol string }
			}
			if err := json.Unmarshal(readFile(t, md), &ed); err != nil || ed.WrappedContentKey.Algorithm != kc.name || ed.EncryptionAgent.Protocol != "2.0" {
				t.Errorf("metadata: %s (%v)", readFile(t, md), err)
			}
			if got := len(readFile(t, blob)); got != len(plain)+3*28 {
				t.Errorf("blob is %d bytes, want %d", got, len(plain)+3*28)
			}
			out := filepath.Join(dir, kc.name+".out")
			geoseal(t, nil, nil, append([]string{"decrypt", "--format", "azure-cse-v2", "--metadata", md, "--in", blob, "--out", out}, kc.dec...)...).want(t, 0)
			if !bytes.Equal(readFile(t, out), plain) {
				t.Fatal("CSE v2 round trip differs")
			}
			geoseal(t, nil, nil, append([]string{"decrypt", "--format", "azure-cse-v2", "--metadata", md, "--in", blob, "--out", out, "--offset", "4194300", "--length", "4194400"}, kc.dec...)...).want(t, 0)
			if !bytes.Equal(readFile(t, out), plain[4194300:4194300+4194400]) {
				t.Fatal("CSE v2 range differs")
			}
			// Tampered: exit 1, no output.
			b := readFile(t, blob)
			b[5<<20] ^= 1
			bad := writeFile(t, filepath.Join(dir, kc.name+".bad"), b)
			os.Remove(out)
			r = geoseal(t, nil, nil, append([]string{"decrypt", "--format", "azure-cse-v2", "--metadata", md, "--in", bad, "--out", out}, kc.dec...)...).want(t, 1)
			if strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr: %q", r.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Error("a failed decrypt left its output")
			}
			// The wrong key id.
			var wrong []string
			for _, a := range kc.dec {
				wrong = append(wrong, strings.Replace(a, "local:", "other:", 1))
			}
			geoseal(t, nil, nil, append([]string{"decrypt", "--format", "azure-cse-v2", "--metadata", md, "--in", blob, "--out", out}, wrong...)...).want(t, 1)
		})
	}

	// A geoseal key file (base64, from keygen) works as the KEK too.
	if !fips140.Enforced() {
		k := keygen(t, filepath.Join(dir, "kg"))
		geoseal(t, nil, nil, "encrypt", "--format", "azure-cse-v2", "--in", in, "--out", filepath.Join(dir, "kg.blob"), "--metadata-out", filepath.Join(dir, "kg.json"), "--key-file", k, "--key-id", "kid", "--region-length", "65536").want(t, 0)
		geoseal(t, nil, nil, "decrypt", "--format", "azure-cse-v2", "--in", filepath.Join(dir, "kg.blob"), "--metadata", filepath.Join(dir, "kg.json"), "--out", filepath.Join(dir, "kg.out"), "--key-file", k, "--key-id", "kid").want(t, 0)
		if !bytes.Equal(readFile(t, filepath.Join(dir, "kg.out")), plain) {
			t.Error("protocol 2.1 round trip differs")
		}
	}

	// Vectors from the Python SDK's algorithm (envelope/csev2/testdata),
	// read outside FIPS 140-only mode, where their local A256KW key is
	// refused before anything is read. One is valid and one is not, so
	// that both the plaintext and the refusal are checked: csev2Vector
	// fails on a missing vector, and validity counts what is left.
	validity := map[bool]int{}
	for _, name := range []string{"2.1/A256KW/java/r100/307", "invalid/java/swapped-1-2"} {
		v := csev2Vector(t, name)
		validity[v.valid]++
		blob := writeFile(t, filepath.Join(dir, "v.blob"), v.ciphertext)
		md := writeFile(t, filepath.Join(dir, "v.json"), []byte(v.encryptionData))
		vkek := writeFile(t, filepath.Join(dir, "vkek"), v.kek)
		out := filepath.Join(dir, "v.out")
		os.Remove(out)
		r := geoseal(t, nil, nil, "decrypt", "--format", "azure-cse-v2", "--metadata", md, "--in", blob, "--out", out, "--key-file", vkek, "--key-id", v.keyID)
		if fips140.Enforced() {
			r.want(t, 1)
			if !strings.Contains(r.stderr, "not approved") {
				t.Errorf("%s in FIPS 140-only mode: stderr %q", name, r.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused decrypt left its output")
			}
			continue
		}
		if !v.valid {
			r.want(t, 1)
			if !strings.Contains(r.stderr, "out of order") {
				t.Errorf("%s: stderr %q", name, r.stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Error("a failed decrypt left its output")
			}
			continue
		}
		r.want(t, 0)
		if got := readFile(t, out); !bytes.Equal(got, v.plaintext) {
			t.Errorf("%s: plaintext differs", name)
		}
	}
	if validity[true] != 1 || validity[false] != 1 {
		t.Fatalf("the vectors are %d valid and %d invalid, want one of each", validity[true], validity[false])
	}
}

// TestBinaryPKCS11 wraps with a SoftHSM2 key through the --pkcs11-* flags.
func TestBinaryPKCS11(t *testing.T) {
	tok := softhsm.ForTest(t)
	label := "cli-" + hex.EncodeToString(randomBytes(t, 4))
	if err := tok.CreateAESKey(label); err != nil {
		t.Fatal(err)
	}
	env := []string{"SOFTHSM2_CONF=" + filepath.Join(tok.Dir, "softhsm2.conf"), "GEOSEAL_PKCS11_PIN=" + tok.PIN}
	dir := t.TempDir()
	plain := randomBytes(t, 70_000)
	in := writeFile(t, filepath.Join(dir, "plain"), plain)
	obj, out := filepath.Join(dir, "obj"), filepath.Join(dir, "out")
	hsm := []string{"--pkcs11-module", tok.Module, "--pkcs11-token", tok.Label, "--pkcs11-key", label}
	geoseal(t, env, nil, append([]string{"encrypt", "--in", in, "--out", obj}, hsm...)...).want(t, 0)
	r := geoseal(t, env, nil, "inspect", "--in", obj).want(t, 0)
	if !strings.Contains(r.stdout, "pkcs11") || !strings.Contains(r.stdout, tok.Label+"/"+label) {
		t.Errorf("inspect: %s", r.stdout)
	}
	geoseal(t, env, nil, append([]string{"decrypt", "--in", obj, "--out", out}, hsm...)...).want(t, 0)
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("PKCS#11 round trip differs")
	}
	// Without the PIN: a clear usage error.
	r = geoseal(t, env[:1], nil, append([]string{"decrypt", "--in", obj, "--out", out + "2"}, hsm...)...).want(t, 1)
	if !strings.Contains(r.stderr, "GEOSEAL_PKCS11_PIN") {
		t.Errorf("stderr: %q", r.stderr)
	}
	// A wrong PIN never appears in the error.
	r = geoseal(t, []string{env[0], "GEOSEAL_PKCS11_PIN=wrong-pin-9876"}, nil, append([]string{"decrypt", "--in", obj, "--out", out + "2"}, hsm...)...).want(t, 1)
	if strings.Contains(r.stderr, "wrong-pin-9876") {
		t.Errorf("the PIN leaked: %q", r.stderr)
	}
	// Flags in incomplete triples.
	geoseal(t, env, nil, "decrypt", "--in", obj, "--out", out+"2", "--pkcs11-module", tok.Module, "--pkcs11-key", label).want(t, 1)
}

type cseVector struct {
	encryptionData, keyID      string // keyID: the id of kek
	ciphertext, plaintext, kek []byte
	cek                        []byte // the content key the vector's metadata wraps
	rsaPrivate, rsaKeyID       string // the vectors' RSA key: a PEM file (mode 0600) and its id
	valid                      bool
}

// csev2Vector loads a vector generated with the Python SDK's algorithm by
// the csev2 package (envelope/csev2/testdata/gen_vectors.py).
func csev2Vector(t *testing.T, name string) cseVector {
	t.Helper()
	var vf struct {
		AESKEK  string `json:"aes_kek"`
		AESKID  string `json:"aes_kid"`
		RSAKey  string `json:"rsa_key"`
		RSAKID  string `json:"rsa_kid"`
		Vectors []struct {
			Name, Encryptiondata, Ciphertext, Result, CEK string
			PlaintextSize                                 int `json:"plaintext_size"`
		}
	}
	if err := json.Unmarshal(readFile(t, "../../envelope/csev2/testdata/vectors.json"), &vf); err != nil {
		t.Fatal(err)
	}
	kek, err := hex.DecodeString(vf.AESKEK)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vf.Vectors {
		if v.Name != name {
			continue
		}
		ct, err := hex.DecodeString(v.Ciphertext)
		if err != nil || len(ct) == 0 {
			t.Fatalf("vector %s: ciphertext %v", name, err)
		}
		// The generator's plaintext: byte(i*31 + i>>11).
		pt := make([]byte, v.PlaintextSize)
		for i := range pt {
			pt[i] = byte(i*31 + i>>11)
		}
		// A private key file must be private (mode 0600) to be read.
		rsaPEM := writeFile(t, filepath.Join(t.TempDir(), "rsa.pem"), readFile(t, filepath.Join("../../envelope/csev2/testdata", vf.RSAKey)))
		cek, err := hex.DecodeString(v.CEK)
		if err != nil {
			t.Fatalf("vector %s: cek %v", name, err)
		}
		return cseVector{v.Encryptiondata, vf.AESKID, ct, pt, kek, cek, rsaPEM, vf.RSAKID, v.Result == "valid"}
	}
	t.Fatalf("no vector %s", name)
	return cseVector{}
}

// TestBinaryAudit runs geoseal audit against Azurite: the JSON a script
// reads, the HTML page a compliance officer files (hostile blob names
// escaped), and what a person reads.
func TestBinaryAudit(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k1, k2 := keygen(t, filepath.Join(dir, "k1")), keygen(t, filepath.Join(dir, "k2"))
	guard := []string{"--policy", "itar", "--primary", "eastus", "--secondary", "westus"}
	for i, k := range []string{k1, k1, k2} {
		geoseal(t, env, []byte("technical data"), append([]string{"put", "--container", "audited", "--blob", fmt.Sprintf("obj/%d", i), "--in", "-", "--key-file", k, "--create-container"}, guard...)...).want(t, 0)
	}
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "audited", nil)
	if err != nil {
		t.Fatal(err)
	}
	hostile := `<script>alert("x")</script>.txt`
	if _, err := cc.NewBlockBlobClient(hostile).UploadBuffer(context.Background(), []byte("in the clear"), nil); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "audit.html")
	r := geoseal(t, env, nil, append([]string{"audit", "--container", "audited", "--key-file", k1, "--json", "--report", report}, guard...)...).want(t, 0)
	var got struct {
		Blobs    int64            `json:"blobs"`
		ByFormat map[string]int64 `json:"by_format"`
		Findings []struct {
			Blob, Kind string
		} `json:"findings"`
		Keys []struct {
			KeyID   string `json:"key_id"`
			Objects int64  `json:"objects"`
		} `json:"keys"`
		Region struct {
			Judged   bool
			Decision struct{ Allowed bool }
		} `json:"region"`
		FIPS struct {
			ModuleVersion string `json:"module_version"`
		} `json:"fips"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("audit --json is not one JSON object: %v\n%s", err, r.stdout)
	}
	wantFormats := map[string]int64{"geoseal": 3, "azure-cse-v2": 0, "azure-cse-v1": 0, "not-encrypted": 1}
	if got.Blobs != 4 || !maps.Equal(got.ByFormat, wantFormats) || len(got.Keys) != 1 || got.Keys[0].Objects != 2 ||
		!got.Region.Judged || !got.Region.Decision.Allowed || got.FIPS.ModuleVersion == "" {
		t.Errorf("audit --json: %s", r.stdout)
	}
	kinds := map[string]string{}
	for _, f := range got.Findings {
		kinds[f.Blob] = f.Kind
	}
	if !maps.Equal(kinds, map[string]string{hostile: "not-encrypted", "obj/2": "cannot-open"}) {
		t.Errorf("findings: %v", got.Findings)
	}
	page := string(readFile(t, report))
	for _, want := range []string{"<!DOCTYPE html>", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.txt", "Allowed under policy itar", "not-encrypted", "geoseal ", "FIPS 140-3 module"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("the report carries a blob name as markup")
	}
	// For people: a summary and each finding, names quoted.
	r = geoseal(t, env, nil, "audit", "--container", "audited", "--key-file", k1).want(t, 0)
	checkPrintable(t, "audit stdout", r.stdout)
	for _, want := range []string{"4 blobs: 3 geoseal, 0 azure-cse-v2, 0 azure-cse-v1, 1 not-encrypted", "finding: not-encrypted " + strconv.Quote(hostile), "region: not judged", "FIPS 140: module"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit output lacks %q:\n%s", want, r.stdout)
		}
	}
	geoseal(t, env, nil, "audit", "--container", "audited", "--shard", "4/4").want(t, 1)
}
