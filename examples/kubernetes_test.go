package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/testenv"
)

// indexedJob is the part of a Kubernetes Job manifest the test checks.
type indexedJob struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		CompletionMode       string `json:"completionMode"`
		Completions          int    `json:"completions"`
		Parallelism          int    `json:"parallelism"`
		BackoffLimitPerIndex *int   `json:"backoffLimitPerIndex"`
		PodFailurePolicy     struct {
			Rules []struct {
				Action      string `json:"action"`
				OnExitCodes struct {
					ContainerName string `json:"containerName"`
					Operator      string `json:"operator"`
					Values        []int  `json:"values"`
				} `json:"onExitCodes"`
			} `json:"rules"`
		} `json:"podFailurePolicy"`
		Template struct {
			Spec struct {
				RestartPolicy string `json:"restartPolicy"`
				Containers    []struct {
					Name      string   `json:"name"`
					Image     string   `json:"image"`
					Command   []string `json:"command"`
					Args      []string `json:"args"`
					Resources struct {
						Limits map[string]string `json:"limits"`
					} `json:"resources"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// loadYAML parses a YAML file with PyYAML (Debian's python3-yaml, which
// python3-azure, installed by make deps, depends on): geoseal's go.mod
// holds no YAML parser for one test.
func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import yaml").Run(); err != nil {
		testenv.Missing(t, "Python 3 with PyYAML", err, "make deps (python3-yaml comes with python3-azure)")
	}
	cmd := exec.Command(py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s is not valid YAML: %v\n%s", path, err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestKubernetesIndexedJob checks the Indexed Job manifest of the README's
// "Rotating keys at scale": one pod per shard, each running rewrap-all on
// the shard of its completion index under one job name, a refusal by the
// region guard failing the Job instead of being retried, and every
// argument accepted by the geoseal binary's own flag parser for every
// index.
func TestKubernetesIndexedJob(t *testing.T) {
	var job indexedJob
	loadYAML(t, filepath.Join("kubernetes", "rewrap-all-job.yaml"), &job)
	s := job.Spec
	if job.APIVersion != "batch/v1" || job.Kind != "Job" || s.CompletionMode != "Indexed" || s.Completions < 2 || s.Parallelism < 1 {
		t.Fatalf("not an Indexed Job of several completions: %+v", job)
	}
	if s.Template.Spec.RestartPolicy != "Never" || s.BackoffLimitPerIndex == nil {
		t.Errorf("a failed pod must be replaced (and resume from its checkpoint): restartPolicy %q, backoffLimitPerIndex %v",
			s.Template.Spec.RestartPolicy, s.BackoffLimitPerIndex)
	}
	if len(s.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(s.Template.Spec.Containers))
	}
	c := s.Template.Spec.Containers[0]
	refusalFails := false
	for _, r := range s.PodFailurePolicy.Rules {
		if r.Action == "FailJob" && r.OnExitCodes.ContainerName == c.Name && r.OnExitCodes.Operator == "In" && len(r.OnExitCodes.Values) == 1 && r.OnExitCodes.Values[0] == 3 {
			refusalFails = true
		}
	}
	if !refusalFails {
		t.Error("exit status 3 (refused by the region policy) must fail the Job, not be retried")
	}
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "rewrap-all" || c.Resources.Limits["memory"] == "" {
		t.Fatalf("the container must run geoseal rewrap-all with a memory limit: %+v", c)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "--") {
			t.Fatalf("argument %q: want --flag or --flag=value (one per line in the manifest)", a)
		}
		flags[name] = value
	}
	m := regexp.MustCompile(`^\$\(JOB_COMPLETION_INDEX\)/([0-9]+)$`).FindStringSubmatch(flags["--shard"])
	if m == nil {
		t.Fatalf("--shard=%q, want $(JOB_COMPLETION_INDEX)/N", flags["--shard"])
	}
	if n, _ := strconv.Atoi(m[1]); n != s.Completions {
		t.Errorf("--shard .../%d but %d completions: shards would be missed or doubled", n, s.Completions)
	}
	for _, need := range []string{"--job", "--container", "--policy", "--to-keyvault", "--kms-rate", "--json"} {
		if _, ok := flags[need]; !ok {
			t.Errorf("the manifest lacks %s", need)
		}
	}

	// The binary accepts every argument for every index: flags are parsed
	// in order, so --help at the end succeeds only if all before it did.
	bin := filepath.Join(t.TempDir(), "geoseal")
	build := exec.Command("go", "build", "-o", bin, "../cmd/geoseal")
	build.Env = withoutGODEBUG(os.Environ())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for i := range s.Completions {
		args := make([]string, len(c.Args), len(c.Args)+1)
		for j, a := range c.Args {
			args[j] = strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(i))
		}
		cmd := exec.Command(bin, append(args, "--help")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("index %d: geoseal %s --help: %v\n%s", i, strings.Join(args, " "), err, stderr.String())
		}
	}
	// And it refuses a shard index the Job would never give.
	bad := exec.Command(bin, "rewrap-all", "--shard", strconv.Itoa(s.Completions)+"/"+m[1], "--container", "x")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "--shard") {
		t.Errorf("shard %d of %s accepted: %v %s", s.Completions, m[1], err, out)
	}
}
