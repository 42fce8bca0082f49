package main

// The README's command-line section is run as written: every geoseal
// command in its sh blocks, in order, against Azurite and the Key Vault
// test server, with the section's placeholders (account, vault, SAS)
// replaced by theirs.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/geoseal/geoseal/internal/azurite"
	"github.com/geoseal/geoseal/internal/kvtest"
)

// readmeSection returns the sh code blocks of the README section titled
// heading (a "## " heading, up to the next one), each as its lines.
func readmeSection(markdown []byte, heading string) ([][]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(markdown))
	var blocks [][]string
	var in, inBlock bool
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && strings.TrimSpace(line) == "```":
			inBlock = false
		case inBlock:
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], line)
		case strings.HasPrefix(line, "## "):
			if in {
				return blocks, nil
			}
			in = strings.TrimSpace(line) == heading
		case in && strings.TrimSpace(line) == "```sh":
			inBlock = true
			blocks = append(blocks, nil)
		}
	}
	if !in {
		return nil, fmt.Errorf("no %q section", heading)
	}
	if inBlock {
		return nil, errors.New("a code block is not closed")
	}
	return blocks, nil
}

// A shellLine is one command of a README block: its words, as sh would
// split them, and the exit status its comment announces ("# exit 3").
type shellLine struct {
	text  string
	words []string
	exit  int
}

var exitComment = regexp.MustCompile(`#\s*exit (\d+)`)

// shellLines joins continuation lines, drops comments and splits words as
// sh does for what the README uses: single quotes, double quotes,
// backslashes, and $NAME expanded from vars inside double quotes or bare.
func shellLines(block []string, vars map[string]string) ([]shellLine, error) {
	var out []shellLine
	for i := 0; i < len(block); i++ {
		text := block[i]
		for strings.HasSuffix(text, `\`) && i+1 < len(block) {
			i++
			text = strings.TrimSuffix(text, `\`) + " " + strings.TrimSpace(block[i])
		}
		words, comment, err := splitWords(text, vars)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", text, err)
		}
		if len(words) == 0 {
			continue
		}
		l := shellLine{text: text, words: words}
		if m := exitComment.FindStringSubmatch(comment); m != nil {
			l.exit, _ = strconv.Atoi(m[1])
		}
		out = append(out, l)
	}
	return out, nil
}

func splitWords(s string, vars map[string]string) (words []string, comment string, err error) {
	var w strings.Builder
	inWord, quote := false, byte(0)
	expand := func(i int) int { // s[i] == '$'
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		w.WriteString(vars[s[i+1:j]])
		return j - 1
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case quote == '"':
			switch c {
			case '"':
				quote = 0
			case '$':
				i = expand(i)
			default:
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == '$':
			i, inWord = expand(i), true
		case c == '#' && !inWord:
			return words, s[i:], nil
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '|' || c == '>' || c == '<' || c == ';' || c == '&':
			return nil, "", fmt.Errorf("%q is beyond what the README test runs: keep the commands simple", c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, "", errors.New("unclosed quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, "", nil
}

func TestSplitWords(t *testing.T) {
	vars := map[string]string{"SAS": "sv=1&sig=x"}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`geoseal put a b   # exit 3: refused`, []string{"geoseal", "put", "a", "b"}},
		{`export A='x;y=z' B=c`, []string{"export", "A=x;y=z", "B=c"}},
		{`geoseal get "https://h/c/b?$SAS" - --key-file k`, []string{"geoseal", "get", "https://h/c/b?sv=1&sig=x", "-", "--key-file", "k"}},
		{`a\ b 'c d'"e"`, []string{"a b", "c de"}},
		{`url#fragment x`, []string{"url#fragment", "x"}},
	} {
		got, _, err := splitWords(tc.in, vars)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a | b`, `a > f`, `"open`} {
		if _, _, err := splitWords(bad, vars); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestREADMECommandLine runs the README's command-line section.
func TestREADMECommandLine(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeSection(readme, "## The command line")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	srv := azurite.ForTest(t)
	kv := kvtest.NewServer(t)
	kv.CreateRSAKey("kek", 2048)
	t.Chdir(t.TempDir())
	writeFile(t, "part.step", randomBytes(t, 3<<20+17))

	// The README's stand-ins, and what the test uses instead. Each must
	// appear in the section, so that the two cannot drift apart.
	placeholders := map[string]string{
		"https://myaccount.blob.core.windows.net":                             srv.BlobEndpoint,
		"http://127.0.0.1:10000/devstoreaccount1":                             srv.BlobEndpoint,
		"https://myvault.vault.azure.net":                                     kv.URL,
		"DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=...": srv.ConnectionString(),
		"sv=2024-08-04&sr=c&sp=racwdl&se=2027-01-01T00%3A00%3A00Z&sig=...":    containerSAS(t, srv, "designs"),
	}
	section := strings.Join(func() (all []string) {
		for _, b := range blocks {
			all = append(all, b...)
		}
		return all
	}(), "\n")
	for p := range placeholders {
		if !strings.Contains(section, p) {
			t.Errorf("the README's command-line section no longer uses the placeholder %q", p)
		}
	}

	e := newTestEnv(t)
	e.credential = func() (azcore.TokenCredential, error) { return kv.Credential(), nil }
	e.keyVault = kv.ClientOptions()
	vars := map[string]string{}
	substitute := func(s string) string {
		for p, real := range placeholders {
			s = strings.ReplaceAll(s, p, real)
		}
		return s
	}
	ran := map[string]bool{}
	for _, block := range blocks {
		for i := range block {
			block[i] = substitute(block[i])
		}
		lines, err := shellLines(block, vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			switch w := l.words; {
			case w[0] == "export" || strings.Contains(w[0], "="):
				for _, a := range w {
					if k, v, ok := strings.Cut(a, "="); ok {
						vars[k], e.vars[k] = v, v
					}
				}
			case w[0] == "geoseal":
				code, stdout, stderr := e.run(t, w[1:]...)
				if code != l.exit {
					t.Errorf("README: %s\nexit %d, want %d\nstdout: %s\nstderr: %s", l.text, code, l.exit, stdout, stderr)
				}
				ran[w[1]] = true
			default:
				t.Errorf("README: %q is not a geoseal command: the test cannot run it", l.text)
			}
		}
	}
	if got := string(readFile(t, "part.copy")); got != string(readFile(t, "part.step")) {
		t.Error("part.copy differs from part.step")
	}
	if got, want := readFile(t, "part.piece"), readFile(t, "part.step")[1048576:1048576+4096]; !bytes.Equal(got, want) {
		t.Error("part.piece is not the range of part.step")
	}
	for _, f := range []string{"part.out", "part.sas", "part.emulator", "part.sealed"} {
		if !bytes.Equal(readFile(t, f), readFile(t, "part.step")) {
			t.Errorf("%s differs from part.step", f)
		}
	}
	// The section shows every command but help.
	eachCommand(func(path string, c command) {
		if name := strings.Fields(path)[0]; !ran[name] && name != "completion" {
			t.Errorf("the README's command-line section runs no geoseal %s", name)
		}
	})
	if _, err := os.Stat(filepath.Join(".", "k.key")); err != nil {
		t.Error(err)
	}
}
