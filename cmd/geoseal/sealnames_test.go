package main

// --seal-names against Azurite, through the binary: put, ls, stat, get,
// rewrap, rewrap-all and rm by logical name, and what a plain azblob
// client sees meanwhile.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
)

const sealedPart = "programs/x57/wing-spar-rev-C.step"

// storedStrings returns every string a plain azblob client reads of the
// container: names, metadata, tags and HTTP headers.
func storedStrings(t *testing.T, cc *container.Client) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true, Tags: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			out = append(out, *it.Name)
			for k, v := range it.Metadata {
				out = append(out, k, *v)
			}
			if it.BlobTags != nil {
				for _, tag := range it.BlobTags.BlobTagSet {
					out = append(out, *tag.Key, *tag.Value)
				}
			}
			p, err := cc.NewBlobClient(*it.Name).GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []*string{p.ContentType, p.ContentEncoding, p.ContentLanguage, p.ContentDisposition, p.CacheControl} {
				if h != nil {
					out = append(out, *h)
				}
			}
		}
	}
	return out
}

// newNamesContainer makes the container name on a fresh Azurite and
// returns its client, its URL and the environment of the commands.
func newNamesContainer(t *testing.T, name string) (*container.Client, string, []string) {
	t.Helper()
	srv := azurite.ForTest(t)
	env := []string{envConnectionString + "=" + srv.ConnectionString(), envPolicy + "=unrestricted", envPrimary + "=eastus"}
	return newContainer(t, srv, name), srv.BlobEndpoint + "/" + name, env
}

func TestBinarySealNames(t *testing.T) {
	cc, url, env := newNamesContainer(t, "sealed")
	dir := t.TempDir()
	k1, k2 := keygen(t, filepath.Join(dir, "k1")), keygen(t, filepath.Join(dir, "k2"))
	_, rsaPub := rsaPEMs(t, dir)
	data := []byte("ISO-10303-21; the wing spar of the x57, revision C")
	in := writeFile(t, filepath.Join(dir, "in"), data)

	r := geoseal(t, env, nil, "put", in, url+"/"+sealedPart, "--key-file", k1, "--seal-names",
		"--metadata", "drawing=Ti-6Al-4V spar", "--metadata", "author=j.doe wing team", "--tag", "program=x57", "--json").want(t, 0)
	var put putResult
	if err := json.Unmarshal([]byte(r.stdout), &put); err != nil || put.Blob != sealedPart || put.StoredName == "" || strings.Contains(put.StoredName, "x57") {
		t.Fatalf("put --json: %s (%v)", r.stdout, err)
	}
	geoseal(t, env, nil, "put", in, url+"/programs/other/readme", "--key-file", k1, "--seal-names").want(t, 0)

	// Nothing the service stores says x57, wing or spar, or the values.
	for _, s := range storedStrings(t, cc) {
		for _, word := range []string{"x57", "wing", "spar", "programs", "drawing", "author", "program", "j.doe"} {
			if strings.Contains(s, word) {
				t.Errorf("the service stores %q, which contains %q", s, word)
			}
		}
	}

	// Without --seal-names: stored names, marked sealed, and said so.
	r = geoseal(t, env, nil, "ls", url).want(t, 0)
	if strings.Contains(r.stdout, "x57") || !strings.Contains(r.stdout, put.StoredName+"  [sealed name]") ||
		!strings.Contains(r.stdout, "2 names are sealed and shown as stored: list them with --seal-names") {
		t.Fatalf("ls:\n%s", r.stdout)
	}
	// --seal-names without a key: the same, and a note.
	r = geoseal(t, env, nil, "ls", url, "--seal-names").want(t, 0)
	if strings.Contains(r.stdout, "x57") || !strings.Contains(r.stderr, "no key given: sealed names are shown as stored") {
		t.Fatalf("ls --seal-names without a key:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	geoseal(t, env, nil, "ls", url, "--seal-names", "--prefix", "programs/").want(t, 1)

	// With a key: logical names, by directory, with the sealed metadata.
	r = geoseal(t, env, nil, "ls", url, "--seal-names", "--key-file", k1, "--prefix", "programs/x57/", "--json").want(t, 0)
	var e lsEntry
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil ||
		e.Name != sealedPart || e.StoredName != put.StoredName || !e.NameSealed || e.Metadata["drawing"] != "Ti-6Al-4V spar" || *e.Size != int64(len(data)) {
		t.Fatalf("ls --seal-names --json: %s", r.stdout)
	}
	r = geoseal(t, env, nil, "ls", url+"/programs/", "--seal-names", "--key-file", k1).want(t, 0)
	if !strings.Contains(r.stdout, sealedPart) || !strings.Contains(r.stdout, "programs/other/readme") || strings.Contains(r.stdout, "[sealed name]") {
		t.Fatalf("ls --seal-names:\n%s", r.stdout)
	}

	// stat and get by logical name.
	r = geoseal(t, env, nil, "stat", url+"/"+sealedPart, "--key-file", k1, "--seal-names").want(t, 0)
	if !strings.Contains(r.stdout, `drawing="Ti-6Al-4V spar" (sealed)`) || !strings.Contains(r.stdout, "sealed, stored as "+url+"/"+put.StoredName) {
		t.Fatalf("stat --seal-names:\n%s", r.stdout)
	}
	out := filepath.Join(dir, "out")
	geoseal(t, env, nil, "get", url+"/"+sealedPart, out, "--key-file", k1, "--seal-names").want(t, 0)
	if got := readFile(t, out); string(got) != string(data) {
		t.Fatalf("get --seal-names wrote %q", got)
	}
	// Without --seal-names the logical name names no blob.
	geoseal(t, env, nil, "get", url+"/"+sealedPart, filepath.Join(dir, "nothing"), "--key-file", k1).want(t, 1)

	// Rotation: rewrap one blob, rewrap-all under a logical prefix, then
	// the whole container, name key included: k2 alone then reads names.
	geoseal(t, env, nil, "rewrap", url+"/"+sealedPart, "--key-file", k1, "--to-key-file", k1, "--seal-names").want(t, 0)
	r = geoseal(t, env, nil, "rewrap-all", url, "--prefix", "programs/x57/", "--key-file", k1, "--to-key-file", k2, "--seal-names").want(t, 0)
	if !strings.HasPrefix(r.stdout, "rotated 1 blobs") {
		t.Fatalf("rewrap-all under programs/x57/: %s", r.stdout)
	}
	geoseal(t, env, nil, "rewrap-all", url, "--key-file", k1, "--key-file", k2, "--to-key-file", k2).want(t, 0)
	r = geoseal(t, env, nil, "ls", url, "--seal-names", "--key-file", k2).want(t, 0)
	if !strings.Contains(r.stdout, sealedPart) {
		t.Fatalf("ls --seal-names with the new key only:\n%s", r.stdout)
	}
	geoseal(t, env, nil, "ls", url, "--seal-names", "--key-file", k1).want(t, 1)

	// rm by logical name; the name key cannot be removed.
	r = geoseal(t, env, nil, "rm", url+"/"+sealedPart, "--seal-names", "--key-file", k2, "--json").want(t, 0)
	if !strings.Contains(r.stdout, put.StoredName) {
		t.Fatalf("rm --seal-names --json: %s", r.stdout)
	}
	if _, err := cc.NewBlobClient(put.StoredName).GetProperties(context.Background(), nil); err == nil {
		t.Fatal("the stored blob is still there")
	}
	geoseal(t, env, nil, "rm", url+"/.geoseal/names.key").want(t, 1)

	// Usage: --seal-names needs a key that unwraps; keys without it are
	// a mistake for ls and rm.
	for _, u := range []struct {
		args []string
		want string
	}{
		{[]string{"put", in, url + "/programs/x57/pub", "--rsa-public", rsaPub, "--seal-names"}, "--seal-names needs a key that can unwrap"},
		{[]string{"put", in, url + "/x", "--key-file", k2, "--seal-names", "--format", "azure-cse-v2", "--key-id", "k"}, "do not apply to --format azure-cse-v2"},
		{[]string{"ls", url, "--key-file", k2}, "ls needs no key, except with --seal-names"},
		{[]string{"rm", url + "/programs/other/readme", "--key-file", k2}, "rm needs no key, except with --seal-names"},
	} {
		if r := geoseal(t, env, nil, u.args...); r.code != exitFailure || !strings.Contains(r.stderr, u.want) {
			t.Errorf("%q: exit %d, want %d and %q\n%s", u.args, r.code, exitFailure, u.want, r.stderr)
		}
	}
}

// TestBinaryClearMetadata checks put --metadata and --tag without
// --seal-names: stored as given, with a note that they are in the clear.
func TestBinaryClearMetadata(t *testing.T) {
	cc, url, env := newNamesContainer(t, "clear")
	dir := t.TempDir()
	k1 := keygen(t, filepath.Join(dir, "k1"))
	in := writeFile(t, filepath.Join(dir, "in"), []byte("data"))
	r := geoseal(t, env, nil, "put", in, url+"/part.step", "--key-file", k1, "--metadata", "drawing=D-1001", "--tag", "program=x57").want(t, 0)
	if !strings.Contains(r.stderr, "--metadata and --tag are stored in the clear") {
		t.Errorf("put --metadata without --seal-names said nothing on stderr: %q", r.stderr)
	}
	stored := strings.Join(storedStrings(t, cc), " ")
	for _, s := range []string{"part.step", "drawing", "D-1001", "program", "x57"} {
		if !strings.Contains(stored, s) {
			t.Errorf("%q is not stored as given: %s", s, stored)
		}
	}
	r = geoseal(t, env, nil, "stat", url+"/part.step", "--key-file", k1).want(t, 0)
	if !strings.Contains(strings.ToLower(r.stdout), "drawing=d-1001 (in the clear, not authenticated)") {
		t.Errorf("stat:\n%s", r.stdout)
	}
	// Metadata the service would refuse fails before anything is sent.
	geoseal(t, env, nil, "put", in, url+"/bad", "--key-file", k1, "--metadata", "drawing-no=1").want(t, 1)
	if _, err := cc.NewBlobClient("bad").GetProperties(context.Background(), nil); err == nil {
		t.Error("a refused put left a blob")
	}
}
