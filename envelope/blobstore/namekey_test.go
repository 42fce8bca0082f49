package blobstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/wire"
	"github.com/geoseal/geoseal/keyring"
)

// The environment of a child process of TestNameKeyTwoProcesses.
const (
	helperEnv       = "GEOSEAL_TEST_NAMEKEY_HELPER" // the writer's number
	helperContainer = "GEOSEAL_TEST_NAMEKEY_CONTAINER"
	helperKey       = "GEOSEAL_TEST_NAMEKEY_KEK" // the AES key-encryption key, hex
	helperBarrier   = "GEOSEAL_TEST_NAMEKEY_BARRIER"
	helperWriters   = 2
)

// helperResult is what a child process prints.
type helperResult struct {
	Stored string `json:"stored"`
	// CommitStatus is the status of the child's commit of the name key.
	CommitStatus int    `json:"commit_status"`
	Err          string `json:"err,omitempty"`
}

// TestNameKeyTwoProcesses runs two processes that upload into a container
// without a name key at the same time. Each holds its commit of the name
// key until the other has staged its own, so both try to create one: one
// commit wins, the other is refused, and that process reads the winner's
// key. Both blobs then open through a third client, which can only be if
// both processes sealed under the one key the container holds.
func TestNameKeyTwoProcesses(t *testing.T) {
	f := newFixture(t, nil)
	kek, err := keyring.GenerateAESKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewAES(kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	barrier := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmds := make([]*exec.Cmd, helperWriters)
	outs := make([]strings.Builder, helperWriters)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNameKeyHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("%s=%d", helperEnv, i),
			azurite.EnvConnectionString+"="+f.srv.ConnectionString(),
			helperContainer+"="+path.Base(f.plain.URL()),
			helperKey+"="+hex.EncodeToString(kek),
			helperBarrier+"="+barrier,
		)
		cmd.Stdout, cmd.Stderr = &outs[i], os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	var results []helperResult
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %d: %v\n%s", i, err, outs[i].String())
		}
		var r helperResult
		line := outs[i].String()
		if j := strings.Index(line, "{"); j >= 0 {
			line = line[j:]
			line = line[:strings.Index(line, "\n")]
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("writer %d printed %q: %v", i, outs[i].String(), err)
		}
		if r.Err != "" {
			t.Fatalf("writer %d: %s", i, r.Err)
		}
		results = append(results, r)
	}
	statuses := []int{results[0].CommitStatus, results[1].CommitStatus}
	slices.Sort(statuses)
	if statuses[0] != http.StatusCreated || statuses[1] != http.StatusConflict && statuses[1] != http.StatusPreconditionFailed {
		t.Fatalf("the writers' commits of the name key answered %v: want one 201 and one refused", statuses)
	}
	reader, err := NewClient(f.container, kr, unrestrictedGuard(t), &ClientOptions{SealNames: true})
	if err != nil {
		t.Fatal(err)
	}
	got := listNames(t, reader, sealedDir)
	slices.Sort(got)
	if want := []string{"programs/x57/writer-0", "programs/x57/writer-1"}; !slices.Equal(got, want) {
		t.Fatalf("listed %q, want %q: the writers did not seal under one key", got, want)
	}
	for i, r := range results {
		b, err := download(reader, fmt.Sprintf("programs/x57/writer-%d", i), nil)
		if err != nil || string(b) != fmt.Sprintf("from writer %d", i) {
			t.Fatalf("writer %d's blob (%s): %q, %v", i, r.Stored, b, err)
		}
	}
}

// TestNameKeyHelperProcess is not a test of its own: it is the child
// process of TestNameKeyTwoProcesses, and returns at once otherwise.
func TestNameKeyHelperProcess(t *testing.T) {
	id := os.Getenv(helperEnv)
	if id == "" {
		return
	}
	res := runNameKeyWriter(t, id)
	b, _ := json.Marshal(res)
	fmt.Printf("%s\n", b)
	os.Exit(0)
}

func runNameKeyWriter(t *testing.T, id string) (res helperResult) {
	fail := func(err error) helperResult { res.Err = err.Error(); return res }
	kek, err := hex.DecodeString(os.Getenv(helperKey))
	if err != nil {
		return fail(err)
	}
	kr, err := keyring.NewAES(kek, nil)
	if err != nil {
		return fail(err)
	}
	barrier := os.Getenv(helperBarrier)
	counter := &wire.Counter{}
	counter.Intercept(func(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		if req.Method != http.MethodPut || req.URL.Query().Get("comp") != "blocklist" || !strings.HasSuffix(req.URL.Path, "/"+nameKeyBlob) {
			return send(req)
		}
		// Hold the commit of the name key until every writer has got
		// this far (so every writer saw no key and staged one).
		if err := os.WriteFile(filepath.Join(barrier, id), nil, 0o600); err != nil {
			return nil, err
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			entries, err := os.ReadDir(barrier)
			if err != nil {
				return nil, err
			}
			if len(entries) == helperWriters {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("writer %s: the other writers never reached the commit of the name key", id)
			}
		}
		resp, err := send(req)
		if resp != nil {
			res.CommitStatus = resp.StatusCode
		}
		return resp, err
	})
	cc, err := container.NewClientFromConnectionString(os.Getenv(azurite.EnvConnectionString), os.Getenv(helperContainer),
		&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: wire.NewTransport(counter, nil)}})
	if err != nil {
		return fail(err)
	}
	c, err := NewClient(cc, kr, unrestrictedGuard(t), &ClientOptions{SealNames: true})
	if err != nil {
		return fail(err)
	}
	up, err := c.Upload(context.Background(), "programs/x57/writer-"+id, strings.NewReader("from writer "+id), nil)
	if err != nil {
		return fail(err)
	}
	res.Stored = up.StoredName
	return res
}
