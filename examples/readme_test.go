package examples

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeQuickStart compiles the Go program in README.md's "Quick start"
// section as a user would: in a module of its own that requires geoseal
// (replaced by this checkout), built offline from the module cache.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := quickStart(readme)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	compileProgram(t, src)
}

// quickStart returns the first ```go block after the "## Quick start"
// heading, before the next level-2 heading.
func quickStart(markdown []byte) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(markdown))
	var (
		inSection, inBlock bool
		src                bytes.Buffer
	)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && strings.TrimSpace(line) == "```":
			return src.Bytes(), nil
		case inBlock:
			src.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			if inSection {
				return nil, errors.New(`no go code block in the "## Quick start" section`)
			}
			inSection = strings.EqualFold(strings.TrimSpace(line), "## Quick start")
		case inSection && strings.TrimSpace(line) == "```go":
			inBlock = true
		}
	}
	if inBlock {
		return nil, errors.New("the quick start's code block is not closed")
	}
	if inSection {
		return nil, errors.New(`no go code block in the "## Quick start" section`)
	}
	return nil, errors.New(`no "## Quick start" section`)
}

func TestQuickStartExtraction(t *testing.T) {
	md := "# x\n## Quick start\ntext\n```go\npackage main\n```\n## Next\n```go\nother\n```\n"
	if src, err := quickStart([]byte(md)); err != nil || string(src) != "package main\n" {
		t.Errorf("got %q, %v", src, err)
	}
	for _, bad := range []string{"# x\n", "## Quick start\n## Next\n```go\nx\n```\n", "## Quick start\n```go\nx\n"} {
		if _, err := quickStart([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// compileProgram builds src as package main of a fresh module that
// requires geoseal from this checkout.
func compileProgram(t *testing.T, src []byte) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module quickstartcheck\n\ngo 1.26\n\nrequire github.com/geoseal/geoseal v0.0.0-00010101000000-000000000000\n\nreplace github.com/geoseal/geoseal => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "quickstart"), ".")
	cmd.Dir = dir
	cmd.Env = append(withoutGODEBUG(os.Environ()), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README quick start does not compile: %v\n%s\n--- program:\n%s", err, out, src)
	}
}

// withoutGODEBUG drops GODEBUG (fips140=only under make fips), which
// governs the program under test, not the go command.
func withoutGODEBUG(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			out = append(out, kv)
		}
	}
	return out
}
