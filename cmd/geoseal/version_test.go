package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryVersion checks what `geoseal version` reports of the running
// binary's FIPS 140-3 state in each mode, and of a binary built against
// the frozen v1.0.0 module (GOFIPS140=v1.0.0, from the Go distribution).
func TestBinaryVersion(t *testing.T) {
	type state struct {
		module            string
		enabled, enforced bool
	}
	check := func(t *testing.T, bin string, godebug string, want state) {
		t.Helper()
		cmd := exec.Command(bin, "version", "--json")
		cmd.Env = append(withoutEnv(userEnv(), "GODEBUG"), "GODEBUG="+godebug)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("version --json: %v", err)
		}
		var got buildInfo
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		var raw map[string]map[string]any
		json.Unmarshal(out, &raw)
		for _, k := range []string{"module_version", "enabled", "enforced"} {
			if _, ok := raw["fips140"][k]; !ok {
				t.Errorf("version --json lacks fips140.%s: %s", k, out)
			}
		}
		if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH || got.Version == "" ||
			got.FIPS140 != (fips140Use{want.module, want.enabled, want.enforced}) {
			t.Errorf("GODEBUG=%s: %s, want %+v", godebug, out, want)
		}
		cmd = exec.Command(bin, "version")
		cmd.Env = append(withoutEnv(userEnv(), "GODEBUG"), "GODEBUG="+godebug)
		line, err := cmd.Output()
		mode := map[state]string{{want.module, false, false}: "off", {want.module, true, false}: "enabled, not enforced", {want.module, true, true}: "enabled, enforced"}[want]
		if err != nil || !strings.HasPrefix(string(line), "geoseal ") || !strings.HasSuffix(string(line), "; FIPS 140-3 module "+want.module+", FIPS mode "+mode+"\n") {
			t.Errorf("GODEBUG=%s: version prints %q (%v)", godebug, line, err)
		}
	}
	bin := geosealBin(t)
	check(t, bin, "fips140=off", state{"latest", false, false})
	check(t, bin, "fips140=on", state{"latest", true, false})
	check(t, bin, "fips140=only", state{"latest", true, true})

	t.Run("GOFIPS140=v1.0.0", func(t *testing.T) {
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "fips140", "v1.0.0.txt")); err != nil {
			t.Fatalf("the Go distribution lacks the frozen v1.0.0 module: %v", err)
		}
		frozen := filepath.Join(t.TempDir(), "geoseal")
		build := exec.Command("go", "build", "-buildvcs=false", "-o", frozen, ".")
		build.Env = append(withoutEnv(os.Environ(), "GODEBUG"), "GOFIPS140=v1.0.0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build with GOFIPS140=v1.0.0: %v\n%s", err, out)
		}
		// A binary built against a frozen module runs in FIPS mode by
		// default.
		check(t, frozen, "", state{"v1.0.0", true, false})
		check(t, frozen, "fips140=only", state{"v1.0.0", true, true})
	})
}
