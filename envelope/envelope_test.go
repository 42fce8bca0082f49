package envelope

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"testing"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
	"go.uber.org/goleak"
)

// encryptBytes encrypts plaintext into a new object.
func encryptBytes(t testing.TB, w keyring.Wrapper, plaintext []byte, opts *EncryptOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	wc, err := Encrypt(context.Background(), &buf, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := wc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decryptBytes decrypts a whole object, returning what was read before the
// error too.
func decryptBytes(u keyring.Unwrapper, object []byte, opts *DecryptOptions) ([]byte, error) {
	r, err := Decrypt(context.Background(), bytes.NewReader(object), u, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// decryptAtBytes opens an object with DecryptAt and reads all of it.
func decryptAtBytes(u keyring.Unwrapper, object []byte, opts *DecryptOptions) ([]byte, error) {
	ra, err := DecryptAt(context.Background(), bytes.NewReader(object), int64(len(object)), u, opts)
	if err != nil {
		return nil, err
	}
	out := make([]byte, ra.Size())
	n, err := ra.ReadAt(out, 0)
	if err == io.EOF && int64(n) == ra.Size() {
		err = nil
	}
	return out[:n], err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func suites() []stream.Suite {
	return []stream.Suite{stream.AES256GCM, stream.ChaCha20Poly1305}
}

func TestRoundTrip(t *testing.T) {
	// Goroutines of other tests (idle HTTP connections) are not ours.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	kr := formattest.NewAES(t)
	const cs = 4 << 10
	for _, suite := range suites() {
		for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 3*cs + 17} {
			for _, conc := range []int{1, 3} {
				t.Run(fmt.Sprintf("%v/%d/%d", suite, size, conc), func(t *testing.T) {
					opts := &EncryptOptions{ChunkSize: cs, Concurrency: conc, Suite: suite, Context: keyring.Context{"n": fmt.Sprint(size)}}
					if suite != stream.AES256GCM && fips140.Enforced() {
						_, err := Encrypt(context.Background(), io.Discard, kr, opts)
						if !errors.Is(err, stream.ErrNotApproved) {
							t.Fatalf("Encrypt with %v in FIPS 140-only mode: %v, want stream.ErrNotApproved", suite, err)
						}
						return
					}
					pt := randomBytes(size)
					obj := encryptBytes(t, kr, pt, opts)
					h, err := Inspect(bytes.NewReader(obj))
					if err != nil {
						t.Fatal(err)
					}
					body := stream.Options{ChunkSize: cs, Suite: suite}
					if want := int64(h.Size) + stream.EncryptedSize(int64(size), &body); int64(len(obj)) != want {
						t.Errorf("object of %d bytes, want header %d + body = %d", len(obj), h.Size, want)
					}
					dopts := &DecryptOptions{Concurrency: 4 - conc, RequireContext: keyring.Context{"n": fmt.Sprint(size)}}
					got, err := decryptBytes(kr, obj, dopts)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("Decrypt: %d bytes, %v", len(got), err)
					}
					ra, err := DecryptAt(context.Background(), bytes.NewReader(obj), int64(len(obj)), kr, dopts)
					if err != nil {
						t.Fatal(err)
					}
					if ra.Size() != int64(size) {
						t.Fatalf("Size() = %d, want %d", ra.Size(), size)
					}
					for range 20 {
						off := mathrand.IntN(size + 1)
						n := mathrand.IntN(size - off + 1)
						buf := make([]byte, n)
						m, err := ra.ReadAt(buf, int64(off))
						if m != n || (err != nil && !(err == io.EOF && off+n == size)) {
							t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, m, err)
						}
						if !bytes.Equal(buf, pt[off:off+n]) {
							t.Fatalf("ReadAt(%d, %d) returned other bytes", n, off)
						}
					}
				})
			}
		}
	}
}

func TestNotGeoseal(t *testing.T) {
	kr := formattest.NewAES(t)
	for _, in := range [][]byte{nil, []byte("x"), []byte("hello, this is plain text, long enough"), make([]byte, 1000)} {
		if _, err := decryptBytes(kr, in, nil); !errors.Is(err, ErrNotGeoseal) {
			t.Errorf("Decrypt(%q...): %v, want ErrNotGeoseal", in[:min(len(in), 8)], err)
		}
		if _, err := decryptAtBytes(kr, in, nil); !errors.Is(err, ErrNotGeoseal) {
			t.Errorf("DecryptAt(%q...): %v, want ErrNotGeoseal", in[:min(len(in), 8)], err)
		}
		if _, err := Inspect(bytes.NewReader(in)); !errors.Is(err, ErrNotGeoseal) {
			t.Errorf("Inspect(%q...): %v, want ErrNotGeoseal", in[:min(len(in), 8)], err)
		}
	}
}

func TestWrongKeyring(t *testing.T) {
	obj := encryptBytes(t, formattest.NewAES(t), []byte("secret"), nil)
	other := formattest.NewAES(t)
	_, err := decryptBytes(other, obj, nil)
	var nm *keyring.NoMatchError
	if !errors.As(err, &nm) {
		t.Fatalf("Decrypt with another key: %v, want *keyring.NoMatchError", err)
	}
	if len(nm.Available) != 1 || nm.Available[0].Provider != keyring.ProviderAES {
		t.Errorf("NoMatchError.Available = %+v", nm.Available)
	}
	if _, err := decryptAtBytes(other, obj, nil); !errors.As(err, &nm) {
		t.Errorf("DecryptAt with another key: %v, want *keyring.NoMatchError", err)
	}
}

// TestObjectTamper flips every bit of the header of a multi-chunk object,
// and every bit of a one-chunk object, truncates a multi-chunk object at
// every byte and appends bytes: all fail with a typed error, and no byte of
// a chunk that failed is returned.
func TestObjectTamper(t *testing.T) {
	kr := formattest.NewAES(t)
	const cs = 4 << 10
	pt := randomBytes(2*cs + 100)
	obj := encryptBytes(t, kr, pt, &EncryptOptions{ChunkSize: cs, Context: keyring.Context{"k": "v"}})
	h, err := Inspect(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}

	check := func(what string, got []byte, err error, wantPrefixOK bool) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: decrypted", what)
		}
		if formattest.Classify(err) == "other" {
			t.Fatalf("%s: untyped error %v", what, err)
		}
		if !wantPrefixOK && len(got) > 0 {
			t.Fatalf("%s: %d bytes returned before the error", what, len(got))
		}
		// Bytes of chunks that authenticated may come before the error,
		// and only those.
		if len(got)%cs != 0 || !bytes.HasPrefix(pt, got) {
			t.Fatalf("%s: returned %d bytes that are not whole authenticated chunks", what, len(got))
		}
	}

	for i := range h.Size * 8 {
		b := bytes.Clone(obj)
		b[i/8] ^= 1 << (i % 8)
		got, err := decryptBytes(kr, b, nil)
		check(fmt.Sprintf("Decrypt, header bit %d", i), got, err, false)
		got, err = decryptAtBytes(kr, b, nil)
		check(fmt.Sprintf("DecryptAt, header bit %d", i), got, err, false)
	}

	small := encryptBytes(t, kr, pt[:100], &EncryptOptions{ChunkSize: cs})
	for i := range len(small) * 8 {
		b := bytes.Clone(small)
		b[i/8] ^= 1 << (i % 8)
		got, err := decryptBytes(kr, b, nil)
		check(fmt.Sprintf("Decrypt, one-chunk object bit %d", i), got, err, false)
		got, err = decryptAtBytes(kr, b, nil)
		check(fmt.Sprintf("DecryptAt, one-chunk object bit %d", i), got, err, false)
	}

	for n := range len(obj) {
		got, err := decryptBytes(kr, obj[:n], nil)
		check(fmt.Sprintf("Decrypt, truncated to %d", n), got, err, true)
		if n >= h.Size && !errors.Is(err, ErrBodyTampered) {
			t.Fatalf("Decrypt, truncated to %d: %v, want ErrBodyTampered", n, err)
		}
		got, err = decryptAtBytes(kr, obj[:n], nil)
		check(fmt.Sprintf("DecryptAt, truncated to %d", n), got, err, false)
		if n >= h.Size && !errors.Is(err, ErrBodyTampered) {
			t.Fatalf("DecryptAt, truncated to %d: %v, want ErrBodyTampered", n, err)
		}
	}

	for _, extra := range [][]byte{{0}, []byte("trailing"), obj[h.Size:]} {
		b := append(bytes.Clone(obj), extra...)
		got, err := decryptBytes(kr, b, nil)
		check("Decrypt, appended bytes", got, err, true)
		if !errors.Is(err, ErrBodyTampered) {
			t.Errorf("Decrypt, %d appended bytes: %v, want ErrBodyTampered", len(extra), err)
		}
		got, err = decryptAtBytes(kr, b, nil)
		check("DecryptAt, appended bytes", got, err, false)
	}
}

// TestTransplant puts the header of one object on the body of another
// written to the same key with the same context.
func TestTransplant(t *testing.T) {
	kr := formattest.NewAES(t)
	opts := &EncryptOptions{ChunkSize: 4 << 10, Context: keyring.Context{"k": "v"}}
	for _, size := range []int{0, 100, 10000} {
		a := encryptBytes(t, kr, randomBytes(size), opts)
		b := encryptBytes(t, kr, randomBytes(size), opts)
		ha, _ := Inspect(bytes.NewReader(a))
		hb, _ := Inspect(bytes.NewReader(b))
		mixed := append(bytes.Clone(a[:ha.Size]), b[hb.Size:]...)
		got, err := decryptBytes(kr, mixed, nil)
		if !errors.Is(err, ErrBodyTampered) || len(got) != 0 {
			t.Errorf("size %d: Decrypt of a transplanted header: %d bytes, %v; want ErrBodyTampered", size, len(got), err)
		}
		if _, err := decryptAtBytes(kr, mixed, nil); !errors.Is(err, ErrBodyTampered) {
			t.Errorf("size %d: DecryptAt of a transplanted header: %v; want ErrBodyTampered", size, err)
		}
	}
}

// TestCommitment crafts objects whose two wrapped keys hold different data
// keys, with every choice of commitment, tag and body. A recipient reads an
// object only if all three come from its own data key, so no crafted object
// reads for both recipients, and every object that mixes the two keys is
// rejected by both.
func TestCommitment(t *testing.T) {
	ctx := context.Background()
	alice, bob := formattest.NewAES(t), formattest.NewAES(t)
	deks := [2][]byte{randomBytes(32), randomBytes(32)}
	recipients := [2]*keyring.AES{alice, bob}
	h := &format.Header{ChunkSize: 4 << 10, Context: keyring.Context{"project": "x-57"}}
	rand.Read(h.MessageID[:])
	for i, r := range recipients {
		w, err := r.Wrap(ctx, deks[i], h.Context)
		if err != nil {
			t.Fatal(err)
		}
		h.WrappedKeys = append(h.WrappedKeys, w...)
	}
	// The body of each key, sealed with its content key and the object's
	// body AAD.
	pts := [2][]byte{[]byte("what alice should read"), []byte("what bob should read!")}
	var bodies [2][]byte
	for i, dek := range deks {
		k, err := format.DeriveKeys(dek, h.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := format.BodyOptions(h)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := stream.NewWriter(&buf, k.Content, &opts)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pts[i])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		bodies[i] = buf.Bytes()
	}

	for c := range 2 {
		for tg := range 2 {
			for b := range 2 {
				obj := append(formattest.Craft(t, h, deks[c], deks[tg]), bodies[b]...)
				readers := 0
				for r, rec := range recipients {
					got, err := decryptBytes(rec, obj, nil)
					consistent := c == r && tg == r && b == r
					switch {
					case consistent:
						if err != nil || !bytes.Equal(got, pts[r]) {
							t.Errorf("commit %d tag %d body %d: recipient %d: %q, %v", c, tg, b, r, got, err)
						}
						readers++
					case c != r:
						if !errors.Is(err, ErrCommitment) || got != nil {
							t.Errorf("commit %d tag %d body %d: recipient %d: %v, want ErrCommitment", c, tg, b, r, err)
						}
					case tg != r:
						if !errors.Is(err, ErrHeaderTampered) || got != nil {
							t.Errorf("commit %d tag %d body %d: recipient %d: %v, want ErrHeaderTampered", c, tg, b, r, err)
						}
					default:
						if !errors.Is(err, ErrBodyTampered) || len(got) != 0 {
							t.Errorf("commit %d tag %d body %d: recipient %d: %d bytes, %v, want ErrBodyTampered", c, tg, b, r, len(got), err)
						}
					}
				}
				if readers > 1 {
					t.Errorf("commit %d tag %d body %d: both recipients read the object", c, tg, b)
				}
			}
		}
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	oldKR, newKR, third := formattest.NewAES(t), formattest.NewAES(t), formattest.NewAES(t)
	pt := randomBytes(10000)
	ec := keyring.Context{"project": "x-57"}
	obj := encryptBytes(t, oldKR, pt, &EncryptOptions{ChunkSize: 4 << 10, Context: ec})
	h, err := Inspect(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}

	hdr, err := Rewrap(ctx, obj[:h.Size], oldKR, keyring.NewMulti(newKR, third))
	if err != nil {
		t.Fatal(err)
	}
	rewrapped := append(hdr, obj[h.Size:]...)
	nh, err := Inspect(bytes.NewReader(rewrapped))
	if err != nil {
		t.Fatal(err)
	}
	if nh.MessageID != h.MessageID || nh.Commitment != h.Commitment || !nh.Context.Contains(ec) || len(nh.Context) != len(ec) ||
		nh.Suite != h.Suite || nh.ChunkSize != h.ChunkSize {
		t.Errorf("rewrapped header %+v does not keep the fields of %+v", nh, h)
	}
	for _, k := range nh.WrappedKeys {
		if k.KeyID == oldKR.KeyID() {
			t.Error("the old wrapped key is still in the rewrapped header")
		}
	}
	if len(nh.WrappedKeys) != 2 {
		t.Errorf("rewrapped header has %d wrapped keys, want 2", len(nh.WrappedKeys))
	}
	for _, kr := range []*keyring.AES{newKR, third} {
		got, err := decryptBytes(kr, rewrapped, &DecryptOptions{RequireContext: ec})
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("decrypting the rewrapped object: %d bytes, %v", len(got), err)
		}
		if got, err := decryptAtBytes(kr, rewrapped, nil); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("DecryptAt of the rewrapped object: %d bytes, %v", len(got), err)
		}
	}
	var nm *keyring.NoMatchError
	if _, err := decryptBytes(oldKR, rewrapped, nil); !errors.As(err, &nm) {
		t.Errorf("old key on the rewrapped object: %v, want *keyring.NoMatchError", err)
	}

	// Rewrapping needs the key, and verifies the header.
	bad := bytes.Clone(obj[:h.Size])
	bad[h.Size-1] ^= 1
	for _, tc := range []struct {
		name   string
		header []byte
		u      keyring.Unwrapper
		class  string // formattest.Classify of the error
	}{
		{"without the key", obj[:h.Size], newKR, "no match"},
		{"a tampered header", bad, oldKR, "tampered"},
		{"a whole object", obj, oldKR, "invalid"},
	} {
		if got, err := Rewrap(ctx, tc.header, tc.u, newKR); formattest.Classify(err) != tc.class || got != nil {
			t.Errorf("Rewrap of %s: %v, want a %q error", tc.name, err, tc.class)
		}
	}
}

func TestRequireContextObject(t *testing.T) {
	kr := formattest.NewAES(t)
	obj := encryptBytes(t, kr, []byte("secret"), &EncryptOptions{Context: keyring.Context{"project": "x-57"}})
	for _, f := range []func(keyring.Unwrapper, []byte, *DecryptOptions) ([]byte, error){decryptBytes, decryptAtBytes} {
		if got, err := f(kr, obj, &DecryptOptions{RequireContext: keyring.Context{"project": "x-58"}}); !errors.Is(err, ErrContextMismatch) || len(got) != 0 {
			t.Errorf("wrong project: %v, want ErrContextMismatch", err)
		}
		if got, err := f(kr, obj, &DecryptOptions{RequireContext: keyring.Context{"project": "x-57"}}); err != nil || string(got) != "secret" {
			t.Errorf("right project: %q, %v", got, err)
		}
	}
}

// TestConcurrentNoLeak reads objects, whole and tampered, with
// concurrency on, and checks that no goroutine is left behind.
func TestConcurrentNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	kr := formattest.NewAES(t)
	pt := randomBytes(20 << 10)
	obj := encryptBytes(t, kr, pt, &EncryptOptions{ChunkSize: 4 << 10, Concurrency: 4})
	r, err := Decrypt(context.Background(), bytes.NewReader(obj), kr, &DecryptOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	// A tampered object read with concurrency stops its workers too.
	bad := bytes.Clone(obj)
	bad[len(bad)-5] ^= 1
	if got, err := decryptBytes(kr, bad, &DecryptOptions{Concurrency: 4}); !errors.Is(err, ErrBodyTampered) || !bytes.HasPrefix(pt, got) {
		t.Fatalf("tampered: %d bytes, %v", len(got), err)
	}
}

// TestReaderClose closes Readers half way through an object, at every
// concurrency, and checks that Close leaves no goroutine behind, may be
// called twice, and makes Read and WriteTo fail.
func TestReaderClose(t *testing.T) {
	kr := formattest.NewAES(t)
	const cs = 4 << 10
	pt := randomBytes(40 * cs)
	obj := encryptBytes(t, kr, pt, &EncryptOptions{ChunkSize: cs})
	for _, conc := range []int{0, 1, 2, 3, 4, 8, 16} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			r, err := Decrypt(context.Background(), bytes.NewReader(obj), kr, &DecryptOptions{Concurrency: conc})
			if err != nil {
				t.Fatal(err)
			}
			half := make([]byte, len(pt)/2+1)
			if _, err := io.ReadFull(r, half); err != nil || !bytes.Equal(half, pt[:len(half)]) {
				t.Fatalf("reading half: %v", err)
			}
			for range 2 {
				if err := r.Close(); err != nil {
					t.Fatalf("Close = %v", err)
				}
			}
			if n, err := r.Read(half); n != 0 || !errors.Is(err, fs.ErrClosed) {
				t.Errorf("Read after Close = %d, %v; want fs.ErrClosed", n, err)
			}
			if n, err := r.WriteTo(io.Discard); n != 0 || !errors.Is(err, fs.ErrClosed) {
				t.Errorf("WriteTo after Close = %d, %v; want fs.ErrClosed", n, err)
			}
		})
	}
}

// TestReaderWriteTo reads whole and tampered objects through WriteTo
// (io.Copy), which reports a tampered body as Read does.
func TestReaderWriteTo(t *testing.T) {
	kr := formattest.NewAES(t)
	const cs = 4 << 10
	pt := randomBytes(5*cs + 7)
	obj := encryptBytes(t, kr, pt, &EncryptOptions{ChunkSize: cs})
	bad := bytes.Clone(obj)
	bad[len(bad)-cs] ^= 1
	for _, conc := range []int{0, 3} {
		for _, tc := range []struct {
			name string
			obj  []byte
			want error
		}{{"intact", obj, nil}, {"tampered", bad, ErrBodyTampered}} {
			r, err := Decrypt(context.Background(), bytes.NewReader(tc.obj), kr, &DecryptOptions{Concurrency: conc})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := io.Copy(&out, r)
			r.Close()
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) || n != int64(out.Len()) || !bytes.HasPrefix(pt, out.Bytes()) {
				t.Errorf("%s, concurrency %d: io.Copy = %d, %v; want %v", tc.name, conc, n, err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(out.Bytes(), pt) {
				t.Errorf("%s, concurrency %d: other plaintext", tc.name, conc)
			}
		}
	}
}

// failingWriter fails every write.
type failingWriter struct{ writes int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.writes++
	return 0, errors.New("disk full")
}

func TestEncryptWritesNothingOnError(t *testing.T) {
	kr := formattest.NewAES(t)
	var buf bytes.Buffer
	if _, err := Encrypt(context.Background(), &buf, kr, &EncryptOptions{Concurrency: -1}); err == nil {
		t.Fatal("negative concurrency accepted")
	}
	if _, err := Encrypt(context.Background(), &buf, kr, &EncryptOptions{ChunkSize: 1000}); err == nil {
		t.Fatal("chunk size 1000 accepted")
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written by failed Encrypt calls", buf.Len())
	}
	fw := &failingWriter{}
	w, err := Encrypt(context.Background(), fw, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Close(); err == nil || fw.writes == 0 {
		t.Errorf("Close on a failing destination: %v after %d writes", err, fw.writes)
	}
}

// TestContentKeyZeroed checks that the steps Encrypt, Decrypt and
// DecryptAt hand the derived content key to zero it once the stream is set
// up, and that the stream still works with the key gone from memory.
func TestContentKeyZeroed(t *testing.T) {
	ctx := context.Background()
	kr := formattest.NewAES(t)
	pt := randomBytes(3*(4<<10) + 5)
	header, body, err := format.New(ctx, kr, &format.Params{ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	zeroed := func(what string, key []byte) {
		t.Helper()
		if len(key) != stream.KeySize || !bytes.Equal(key, make([]byte, stream.KeySize)) {
			t.Errorf("%s: the content key is still in memory (%d bytes)", what, len(key))
		}
	}

	var obj bytes.Buffer
	w, err := sealBody(&headerFirst{w: &obj, header: header}, body)
	if err != nil {
		t.Fatal(err)
	}
	zeroed("Encrypt", body.Key)
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	bodyBytes := obj.Bytes()[len(header):]
	_, body, err = format.Unlock(ctx, header, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := openBody(bytes.NewReader(bodyBytes), body)
	if err != nil {
		t.Fatal(err)
	}
	zeroed("Decrypt", body.Key)
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Decrypt after zeroing: %d bytes, %v", len(got), err)
	}

	_, body, err = format.Unlock(ctx, header, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := openBodyAt(bytes.NewReader(bodyBytes), int64(len(bodyBytes)), body)
	if err != nil {
		t.Fatal(err)
	}
	zeroed("DecryptAt", body.Key)
	got := make([]byte, len(pt))
	if n, err := ra.ReadAt(got, 0); n != len(pt) || (err != nil && err != io.EOF) || !bytes.Equal(got, pt) {
		t.Errorf("DecryptAt after zeroing: %d bytes, %v", n, err)
	}

	// And through the public functions, end to end.
	if got, err := decryptBytes(kr, obj.Bytes(), nil); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Decrypt: %d bytes, %v", len(got), err)
	}
}
