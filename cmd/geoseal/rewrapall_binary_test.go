package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// worker is one geoseal rewrap-all process and the JSON lines it printed.
type worker struct {
	cmd    *exec.Cmd
	lines  chan resultLine
	done   chan struct{}
	stderr bytes.Buffer
	last   string // the last line, once done
}

// startWorker starts geoseal rewrap-all with args, reading its JSON lines
// as they come.
func startWorker(t *testing.T, env []string, args ...string) *worker {
	t.Helper()
	w := &worker{cmd: exec.Command(geosealBin(t), args...), lines: make(chan resultLine, 10000), done: make(chan struct{})}
	w.cmd.Env = append(withoutEnv(os.Environ(), "AZURE_STORAGE_CONNECTION_STRING"), env...)
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l resultLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Blob != "" {
				w.lines <- l
			} else {
				w.last = sc.Text()
			}
		}
	}()
	return w
}

// wait waits for the process and returns its exit code.
func (w *worker) wait() int {
	<-w.done
	w.cmd.Wait()
	return w.cmd.ProcessState.ExitCode()
}

// TestBinaryRewrapAllKillResume runs three geoseal rewrap-all processes on
// the three shards of one container, as a Kubernetes Indexed Job would,
// kills one with SIGKILL in the middle of its shard, and runs it again with
// the same job: every blob ends up wrapped for the new key alone, none is
// rotated twice, the restarted worker resumes from its checkpoint, and a
// final rerun rotates nothing.
func TestBinaryRewrapAllKillResume(t *testing.T) {
	srv := azurite.ForTest(t)
	env := []string{"AZURE_STORAGE_CONNECTION_STRING=" + srv.ConnectionString()}
	dir := t.TempDir()
	k1, k2 := keygen(t, filepath.Join(dir, "k1")), keygen(t, filepath.Join(dir, "k2"))
	ctx := context.Background()
	cc, err := container.NewClientFromConnectionString(srv.ConnectionString(), "fleet", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	oldKR, err := keyring.LoadAESKeyFile(k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	newKR, err := keyring.LoadAESKeyFile(k2, nil)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := region.NewGuard(region.Unrestricted(), region.Static("eastus", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := blobstore.NewClient(cc, oldKR, guard, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n, shards, victim = 600, 3, 1
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := client.Upload(ctx, fmt.Sprintf("part/%04d", i), strings.NewReader(fmt.Sprintf("part %d", i)), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	args := func(shard int, extra ...string) []string {
		return append([]string{"rewrap-all", "--container", "fleet", "--key-file", k1, "--to-key-file", k2,
			"--policy", "unrestricted", "--primary", "eastus", "--shard", fmt.Sprintf("%d/%d", shard, shards),
			"--job", "rotate-2026", "--page-size", "10", "--json"}, extra...)
	}
	rotated := map[string]int{}
	var mu sync.Mutex
	collect := func(w *worker) {
		for l := range w.lines {
			mu.Lock()
			if l.Outcome == blobstore.OutcomeRotated {
				rotated[l.Blob]++
			}
			mu.Unlock()
		}
	}
	workers := make([]*worker, shards)
	for s := range shards {
		extra := []string{}
		if s == victim {
			extra = []string{"--concurrency", "1"} // slow enough to be caught mid-shard
		}
		workers[s] = startWorker(t, env, args(s, extra...)...)
	}
	// Kill the victim once it has rotated 60 blobs (6 pages of its shard).
	seen := 0
	for l := range workers[victim].lines {
		if l.Outcome == blobstore.OutcomeRotated {
			rotated[l.Blob]++
			if seen++; seen == 60 {
				workers[victim].cmd.Process.Kill() // SIGKILL: no cleanup, no last checkpoint
				break
			}
		}
	}
	go collect(workers[victim]) // what it printed before dying
	var others sync.WaitGroup
	for s, w := range workers {
		if s != victim {
			others.Go(func() { collect(w) })
		}
	}
	others.Wait()
	for s, w := range workers {
		code := w.wait()
		switch {
		case s == victim && code != -1:
			t.Fatalf("the victim exited with %d before it was killed (finished too soon?): %s", code, w.stderr.String())
		case s != victim && code != 0:
			t.Fatalf("shard %d: exit %d: %s", s, code, w.stderr.String())
		}
	}
	// The victim's checkpoint is part way.
	st, ok := readCheckpointBlob(t, cc, fmt.Sprintf(".geoseal/jobs/rotate-2026/shard-%d-of-%d", victim, shards))
	if !ok || st.Done || st.Marker == "" {
		t.Fatalf("the killed worker's checkpoint: %+v (exists %v)", st, ok)
	}

	// Restart it with the same job: it resumes.
	again := startWorker(t, env, args(victim)...)
	collect(again)
	if code := again.wait(); code != 0 {
		t.Fatalf("the restarted worker: exit %d: %s", code, again.stderr.String())
	}
	var sum struct{ Summary rewrapAllSummary }
	if err := json.Unmarshal([]byte(again.last), &sum); err != nil || !sum.Summary.Resumed || !sum.Summary.Done || sum.Summary.Failed != 0 {
		t.Fatalf("the restarted worker's summary: %s (%v)", again.last, err)
	}

	// Every blob is wrapped for the new key exactly once, and rotated once.
	for i := range n {
		name := fmt.Sprintf("part/%04d", i)
		if rotated[name] > 1 {
			t.Errorf("%s rotated %d times", name, rotated[name])
		}
		resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		raw.ReadFrom(resp.Body)
		resp.Body.Close()
		h, err := envelope.Inspect(bytes.NewReader(raw.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if len(h.WrappedKeys) != 1 || h.WrappedKeys[0].KeyID != newKR.KeyID() {
			t.Fatalf("%s is wrapped for %+v", name, h.WrappedKeys)
		}
	}
	if len(rotated) > n {
		t.Fatalf("%d blobs rotated, of %d", len(rotated), n)
	}

	// A final rerun, of the whole container and without a job, rotates
	// nothing.
	r := geoseal(t, env, nil, "rewrap-all", "--container", "fleet", "--key-file", k1, "--to-key-file", k2, "--policy", "unrestricted", "--primary", "eastus", "--json").want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Summary.Rotated != 0 || sum.Summary.AlreadyRotated != n {
		t.Fatalf("final rerun: %s (%v)", lines[len(lines)-1], err)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"outcome":"already-rotated"`) }) {
		t.Fatal("the final rerun printed no outcome lines")
	}
}

// readCheckpointBlob reads a job's checkpoint with plain azblob.
func readCheckpointBlob(t *testing.T, cc *container.Client, name string) (st struct {
	Marker string
	Done   bool
}, ok bool) {
	t.Helper()
	resp, err := cc.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st, true
}
