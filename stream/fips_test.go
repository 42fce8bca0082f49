package stream

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestFIPSOnly checks the suites in FIPS 140-only mode: AES-256-GCM works,
// ChaCha20Poly1305 is refused with ErrNotApproved. Outside that mode it
// checks ChaCha20Poly1305 works and runs itself again with
// GODEBUG=fips140=only, so a plain go test covers both.
func TestFIPSOnly(t *testing.T) {
	key := testKey(1)
	aes := &Options{ChunkSize: MinChunkSize}
	pt := plaintext(3*MinChunkSize+5, 1)
	ct := encrypt(t, pt, key, aes, oneWrite)
	if got, err := decrypt(ct, key, aes, readAll); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("AES-256-GCM round trip: %v", err)
	}
	if _, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), key, aes); err != nil {
		t.Fatalf("AES-256-GCM NewReaderAt: %v", err)
	}

	x := &Options{Suite: ChaCha20Poly1305}
	_, werr := NewWriter(&bytes.Buffer{}, key, x)
	_, rerr := NewReader(bytes.NewReader(nil), key, x)
	_, aerr := NewReaderAt(bytes.NewReader(make([]byte, 40)), 40, key, x)
	if fips140.Enforced() {
		for _, err := range []error{werr, rerr, aerr} {
			if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("ChaCha20Poly1305 in FIPS 140-only mode: %v, want ErrNotApproved", err)
			}
		}
		return
	}
	if werr != nil || rerr != nil {
		t.Fatalf("ChaCha20Poly1305 outside FIPS 140-only mode: %v, %v", werr, rerr)
	}
	if !errors.Is(aerr, ErrAuthentication) {
		t.Fatalf("NewReaderAt over zeros: %v, want ErrAuthentication", aerr)
	}
	if os.Getenv("STREAM_TEST_FIPS_CHILD") != "" {
		t.Fatal("child process is not in FIPS 140-only mode")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSOnly$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only", "STREAM_TEST_FIPS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFIPSOnly")) {
		t.Fatalf("TestFIPSOnly under GODEBUG=fips140=only: %v\n%s", err, out)
	}
}
