package main

// ls, stat and rm against Azurite, through the binary (and ls in-process,
// to count what it asks the service for).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
)

// lsFixture is a container holding one blob of each format ls tells
// apart, and a geoseal object under a "directory".
type lsFixture struct {
	srv             *azurite.Server
	cc              *container.Client
	url             string // the container's URL
	env             []string
	k1, rsa, rsaPub string
	cse             cseVector
}

func newLsFixture(t *testing.T) lsFixture {
	t.Helper()
	f := lsFixture{srv: azurite.ForTest(t)}
	f.cc = newContainer(t, f.srv, "listing")
	f.url = f.srv.BlobEndpoint + "/listing"
	f.env = []string{envConnectionString + "=" + f.srv.ConnectionString(), envPolicy + "=unrestricted", envPrimary + "=eastus"}
	dir := t.TempDir()
	f.k1 = keygen(t, filepath.Join(dir, "k1"))
	f.rsa, f.rsaPub = rsaPEMs(t, dir)
	in := writeFile(t, filepath.Join(dir, "in"), randomBytes(t, 300_000))
	geoseal(t, f.env, nil, "put", in, f.url+"/a.step", "--key-file", f.k1, "--rsa-public", f.rsaPub, "--context", "project=x57").want(t, 0)
	geoseal(t, f.env, nil, "put", in, f.url+"/dir/b.step", "--key-file", f.k1).want(t, 0)
	if _, err := f.cc.NewBlockBlobClient("notes.txt").UploadBuffer(context.Background(), []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	f.cse = csev2Vector(t, "2.1/RSA-OAEP-256/python/r16/50")
	uploadCSEv2(t, f.cc, "old cse", f.cse.ciphertext, f.cse.encryptionData)
	return f
}

func TestBinaryLs(t *testing.T) {
	f := newLsFixture(t)
	r := geoseal(t, f.env, nil, "ls", f.url).want(t, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "SIZE") || !strings.Contains(lines[0], "FORMAT") || !strings.Contains(lines[0], "LAST MODIFIED") || !strings.HasSuffix(lines[0], "NAME") {
		t.Fatalf("ls:\n%s", r.stdout)
	}
	want := map[string][]string{ // name as shown: size, format
		"a.step":     {"300000", "geoseal"},
		"dir/b.step": {"300000", "geoseal"},
		"notes.txt":  {"5", "not-encrypted"},
		`"old cse"`:  {"", "azure-cse-v2"},
	}
	for _, l := range lines[1:5] {
		fields := strings.Fields(l)
		name := strings.Join(fields[3:], " ")
		w, ok := want[name]
		if !ok || (w[0] != "" && fields[0] != w[0]) || fields[1] != w[1] {
			t.Errorf("ls row %q", l)
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("ls left out %v", want)
	}
	if lines[5] != "4 blobs: 2 geoseal, 1 azure-cse-v2, 1 not-encrypted in "+f.url {
		t.Errorf("ls summary %q", lines[5])
	}

	// --json: a line per blob.
	r = geoseal(t, f.env, nil, "ls", f.url, "--json").want(t, 0)
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	got := map[string]lsEntry{}
	for sc.Scan() {
		var e lsEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		got[e.Name] = e
	}
	if len(got) != 4 || got["a.step"].Size == nil || *got["a.step"].Size != 300_000 || got["a.step"].EncryptedSize <= 300_000 ||
		got["notes.txt"].Format != "not-encrypted" || got["old cse"].Format != "azure-cse-v2" || got["a.step"].ETag == "" || got["a.step"].LastModified.IsZero() {
		t.Errorf("ls --json:\n%s", r.stdout)
	}

	// A prefix, from the URL or the flag; not both.
	for _, args := range [][]string{{"ls", f.url + "/dir/"}, {"ls", "--container", "listing", "--prefix", "dir/"}} {
		r := geoseal(t, f.env, nil, args...).want(t, 0)
		if !strings.Contains(r.stdout, "dir/b.step") || strings.Contains(r.stdout, "a.step\n") || !strings.Contains(r.stdout, "1 blobs: 1 geoseal") {
			t.Errorf("%v:\n%s", args, r.stdout)
		}
	}
	r = geoseal(t, f.env, nil, "ls", f.url+"/dir/", "--prefix", "x").want(t, 1)
	if line := errorLine(t, r.stderr); !strings.Contains(line, "not both") {
		t.Errorf("%q", line)
	}
	r = geoseal(t, f.env, nil, "ls", f.srv.BlobEndpoint+"/nope").want(t, 1)
	if line := errorLine(t, r.stderr); line != "geoseal ls: container nope does not exist" {
		t.Errorf("%q", line)
	}
}

// countingTransport counts the requests it carries, by kind.
type countingTransport struct {
	mu    sync.Mutex
	kinds map[string]int
}

func (c *countingTransport) Do(req *http.Request) (*http.Response, error) {
	kind := req.Method
	if comp := req.URL.Query().Get("comp"); comp != "" {
		kind += " comp=" + comp
	}
	c.mu.Lock()
	c.kinds[kind]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestLsReadsNoBlob: ls asks for the listing only, one request per page.
func TestLsReadsNoBlob(t *testing.T) {
	f := newLsFixture(t)
	e := newTestEnv(t)
	ct := &countingTransport{kinds: map[string]int{}}
	e.azure.Transport = ct
	e.vars[envConnectionString] = f.srv.ConnectionString()
	if code, _, stderr := e.run(t, "ls", f.url); code != 0 {
		t.Fatal(stderr)
	}
	if len(ct.kinds) != 1 || ct.kinds["GET comp=list"] != 1 {
		t.Errorf("ls sent %v, want one listing request", ct.kinds)
	}
}

func TestBinaryStat(t *testing.T) {
	f := newLsFixture(t)
	r := geoseal(t, f.env, nil, "stat", f.url+"/a.step", "--rsa-private", f.rsa, "--json").want(t, 0)
	var got statResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	props, err := f.cc.NewBlobClient("a.step").GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != "geoseal" || got.Size != 300_000 || got.EncryptedSize != *props.ContentLength || got.ETag != string(*props.ETag) ||
		got.Context["project"] != "x57" || !got.Authenticated || len(got.WrappedKeys) != 2 ||
		got.WrappedKeys[0].Provider != "local-aes" || got.WrappedKeys[1].Provider != "local-rsa" || got.WrappedKeys[1].Algorithm != "RSA-OAEP-256" ||
		got.URL != f.url+"/a.step" || got.LastModified.IsZero() {
		t.Errorf("stat --json: %s", r.stdout)
	}
	r = geoseal(t, f.env, nil, "stat", f.url+"/a.step", "--key-file", f.k1).want(t, 0)
	for _, want := range []string{"format:", "geoseal", "plaintext:", "300000 bytes", "context:", "project=x57", "wrapped keys (2):", "local-rsa", "authenticated"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stat lacks %q:\n%s", want, r.stdout)
		}
	}
	// A CSE v2 blob, when asked for.
	r = geoseal(t, f.env, nil, "stat", f.url+"/old%20cse", "--format", "azure-cse-v2", "--rsa-private", f.cse.rsaPrivate, "--key-id", f.cse.rsaKeyID, "--json").want(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Format != "azure-cse-v2" || got.Size != int64(len(f.cse.plaintext)) {
		t.Errorf("stat of a CSE v2 blob: %s (%v)", r.stdout, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stat", f.url + "/a.step", "--key-file", keygen(t, filepath.Join(t.TempDir(), "other"))}, "none of the keys given opens this object"},
		{[]string{"stat", f.url + "/a.step", "--key-file", f.k1, "--require-context", "project=x58"}, "lacks a --require-context pair"},
		{[]string{"stat", f.url + "/notes.txt", "--key-file", f.k1}, "not a geoseal object"},
		{[]string{"stat", f.url + "/zzz", "--key-file", f.k1}, "geoseal stat: blob zzz not found in container listing"},
		{[]string{"stat", f.url, "--key-file", f.k1}, "stat needs a blob"},
	} {
		r := geoseal(t, f.env, nil, tc.args...).want(t, 1)
		if line := errorLine(t, r.stderr); !strings.Contains(line, tc.want) {
			t.Errorf("%v: %q, want %q", tc.args[1:], line, tc.want)
		}
	}
}

func TestBinaryRm(t *testing.T) {
	f := newLsFixture(t)
	exists := func(name string) bool {
		_, err := f.cc.NewBlobClient(name).GetProperties(context.Background(), nil)
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	r := geoseal(t, f.env, nil, "rm", f.url+"/a.step").want(t, 0)
	if r.stdout != "deleted "+f.url+"/a.step\n" || exists("a.step") {
		t.Errorf("rm: %q", r.stdout)
	}
	r = geoseal(t, f.env, nil, "rm", f.url+"/a.step").want(t, 1)
	if line := errorLine(t, r.stderr); line != "geoseal rm: blob a.step not found in container listing" {
		t.Errorf("rm of a missing blob: %q", line)
	}
	// A blob with a snapshot stays unless --delete-snapshots.
	if _, err := f.cc.NewBlobClient("notes.txt").CreateSnapshot(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r = geoseal(t, f.env, nil, "rm", f.url+"/notes.txt").want(t, 1)
	if line := errorLine(t, r.stderr); line != "geoseal rm: blob notes.txt in container listing has snapshots; delete them with it with --delete-snapshots" || !exists("notes.txt") {
		t.Errorf("rm with a snapshot: %q", line)
	}
	r = geoseal(t, f.env, nil, "rm", f.url+"/notes.txt", "--delete-snapshots", "--json").want(t, 0)
	var res struct {
		Blob    string `json:"blob"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Blob != "notes.txt" || !res.Deleted || exists("notes.txt") {
		t.Errorf("rm --delete-snapshots --json: %s (%v)", r.stdout, err)
	}
}

// TestBinaryGetRanges: get's ranges, and one past the end, an error.
func TestBinaryGetRanges(t *testing.T) {
	f := newLsFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		size int
	}{
		{[]string{"--offset", "299000"}, 1000},
		{[]string{"--offset", "299000", "--length", "5000"}, 1000},
		{[]string{"--offset", "7", "--length", "0"}, 0},
		{[]string{"--offset", "300000", "--length", "0"}, 0},
	} {
		os.Remove(out)
		r := geoseal(t, f.env, nil, append([]string{"get", f.url + "/a.step", out, "--key-file", f.k1, "--json"}, tc.args...)...).want(t, 0)
		var res getResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Size != int64(tc.size) || len(readFile(t, out)) != tc.size || res.Format != "geoseal" {
			t.Errorf("%v: %s (%v)", tc.args, r.stdout, err)
		}
	}
	for _, rg := range [][]string{{"--offset", "300000"}, {"--offset", "300001", "--length", "1"}, {"--offset", "400000", "--length", "0"}} {
		os.Remove(out)
		r := geoseal(t, f.env, nil, append([]string{"get", f.url + "/a.step", out, "--key-file", f.k1}, rg...)...).want(t, 1)
		if line := errorLine(t, r.stderr); !strings.Contains(line, "past the end of the plaintext (300000 bytes)") {
			t.Errorf("%v: %q", rg, line)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: a range past the end left a file", rg)
		}
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("files left behind: %v", got)
	}
}

// TestRewrapAllProgress: rewrap-all counts the geoseal objects first, so
// that its progress reports against their total.
func TestRewrapAllProgress(t *testing.T) {
	f := newLsFixture(t)
	e := newTestEnv(t)
	e.progress = progressTiming{now: time.Now} // no delay, a line per blob
	for _, kv := range f.env {
		k, v, _ := strings.Cut(kv, "=")
		e.vars[k] = v
	}
	// To k1 alone: a.step drops its RSA recipient, dir/b.step already has
	// k1 alone; both count.
	code, stdout, stderr := e.run(t, "rewrap-all", f.url, "--key-file", f.k1, "--to-key-file", f.k1)
	if code != 0 || !strings.HasPrefix(stdout, "rotated 1 blobs in listing; 1 already rotated; 2 not geoseal objects; 0 failed ("+f.url+")") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	want := "geoseal: rewrapping listing: 1 blobs / 2 blobs (50%, "
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "geoseal: rewrapping listing done: 2 blobs / 2 blobs (100%, in 0:00)") {
		t.Errorf("progress:\n%s\nwant a line starting %q", stderr, want)
	}
}
