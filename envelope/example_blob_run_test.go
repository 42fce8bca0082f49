package envelope_test

import (
	"io"
	"os"
	"testing"

	"github.com/geoseal/geoseal/internal/azurite"
)

// The blob examples start Azurite, so they carry no Output comment (go
// test would fail instead of skipping where Azurite is not installed).
// This test runs them, where Azurite is available, and checks what they
// print.
func TestBlobExamples(t *testing.T) {
	// Skips loudly (fails in CI) without Azurite. The examples share this
	// emulator rather than start one each.
	exampleServer = azurite.ForTest(t)
	t.Cleanup(func() { exampleServer = nil })
	for _, ex := range []struct {
		name string
		run  func()
		want string
	}{
		{"BlobClient", ExampleBlobClient, "uploaded 23 bytes; allowed by ear\nstation,load\n1,42\n2,57\n"},
		{"DownloadRange", ExampleBlobClient_DownloadRange, "\"the interesting line\"\n"},
		{"Rewrap", ExampleBlobClient_Rewrap, "wrapped by the new key: true\n"},
		{"RewrapAll", ExampleBlobClient_RewrapAll, "3 rewrapped, 0 failed\n"},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if got := captureStdout(t, ex.run); got != ex.want {
				t.Fatalf("printed %q, want %q", got, ex.want)
			}
		})
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	os.Stdout = old
	return string(<-done)
}
