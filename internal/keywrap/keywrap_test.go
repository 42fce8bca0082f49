package keywrap

import (
	"bytes"
	"crypto/fips140"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/geoseal/geoseal/internal/wycheproof"
)

// hsm runs the algorithms without the FIPS 140-only refusal, so that the
// known-answer, tamper and fuzz tests check them in every mode.
var hsm TestHSM

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWycheproof runs every vector of the Wycheproof AES-KW and AES-KWP files.
// Valid vectors must wrap to ct and unwrap to msg. Invalid vectors must not
// unwrap, and wrapping msg must either fail or not give ct. Acceptable
// vectors (KW of an 8-byte key, which SP 800-38F does not define) may be
// refused; if a result is produced it must be the expected one.
func TestWycheproof(t *testing.T) {
	for _, tc := range []struct {
		file          string
		wrap, unwrap  func(kek, b []byte) ([]byte, error)
		wantAlgorithm string
	}{
		{wycheproof.AESKeyWrap, hsm.Wrap, hsm.Unwrap, "AES-WRAP"},
		{wycheproof.AESKeyWrapPad, hsm.WrapPad, hsm.UnwrapPad, "AES-KWP"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f := wycheproof.Load(t, tc.file)
			if f.Algorithm != tc.wantAlgorithm {
				t.Fatalf("algorithm %q, want %q", f.Algorithm, tc.wantAlgorithm)
			}
			ran, sizes := 0, map[int]bool{}
			for _, g := range f.TestGroups {
				sizes[g.KeySize] = true
				for _, v := range g.Tests {
					ran++
					key, msg, ct := []byte(v.Key), []byte(v.Msg), []byte(v.CT)
					name := fmt.Sprintf("tcId %d (%d-bit, %s %v %q)", v.TcID, g.KeySize, v.Result, v.Flags, v.Comment)
					wrapped, wrapErr := tc.wrap(key, msg)
					unwrapped, unwrapErr := tc.unwrap(key, ct)
					switch v.Result {
					case "valid":
						if wrapErr != nil || !bytes.Equal(wrapped, ct) {
							t.Errorf("%s: wrap = %x, %v; want %x", name, wrapped, wrapErr, ct)
						}
						if unwrapErr != nil || !bytes.Equal(unwrapped, msg) {
							t.Errorf("%s: unwrap = %x, %v; want %x", name, unwrapped, unwrapErr, msg)
						}
					case "invalid":
						if unwrapErr == nil || unwrapped != nil {
							t.Errorf("%s: unwrap = %x, %v; want an error and no bytes", name, unwrapped, unwrapErr)
						}
						if wrapErr == nil && bytes.Equal(wrapped, ct) {
							t.Errorf("%s: wrap produced the invalid ciphertext %x", name, ct)
						}
					case "acceptable":
						if wrapErr == nil && !bytes.Equal(wrapped, ct) {
							t.Errorf("%s: wrap = %x, want %x or an error", name, wrapped, ct)
						}
						if unwrapErr == nil && !bytes.Equal(unwrapped, msg) {
							t.Errorf("%s: unwrap = %x, want %x or an error", name, unwrapped, msg)
						}
					default:
						t.Fatalf("%s: unknown result %q", name, v.Result)
					}
				}
			}
			if ran != f.NumberOfTests {
				t.Errorf("ran %d vectors, file declares %d", ran, f.NumberOfTests)
			}
			for _, s := range []int{128, 192, 256} {
				if !sizes[s] {
					t.Errorf("no %d-bit key group", s)
				}
			}
		})
	}
}

// TestRFC3394 checks the RFC 3394 section 4.6 vector (256-bit KEK, 256-bit
// key) and the RFC 5649 section 6 vectors, independently of Wycheproof.
func TestRFCVectors(t *testing.T) {
	kek := unhex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key := unhex(t, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := unhex(t, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21")
	got, err := hsm.Wrap(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("RFC 3394 4.6: Wrap = %X, %v", got, err)
	}

	kek = unhex(t, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, v := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		got, err := hsm.WrapPad(kek, unhex(t, v.key))
		if err != nil || !bytes.Equal(got, unhex(t, v.wrapped)) {
			t.Errorf("RFC 5649: WrapPad(%s) = %x, %v", v.key, got, err)
		}
	}
}

func TestErrors(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	key := bytes.Repeat([]byte{9}, 32)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"KW short KEK", second(hsm.Wrap(kek[:15], key)), ErrKEKSize},
		{"KW unwrap short KEK", second(hsm.Unwrap(kek[:20], make([]byte, 40))), ErrKEKSize},
		{"KWP long KEK", second(hsm.WrapPad(append(kek, 0), key)), ErrKEKSize},
		{"KW empty", second(hsm.Wrap(kek, nil)), ErrPlaintextLength},
		{"KW one block", second(hsm.Wrap(kek, key[:8])), ErrPlaintextLength},
		{"KW odd size", second(hsm.Wrap(kek, key[:17])), ErrPlaintextLength},
		{"KW too long", second(hsm.Wrap(kek, make([]byte, MaxLen+8))), ErrPlaintextLength},
		{"KWP empty", second(hsm.WrapPad(kek, nil)), ErrPlaintextLength},
		{"KWP too long", second(hsm.WrapPad(kek, make([]byte, MaxLen+1))), ErrPlaintextLength},
		{"KW unwrap short", second(hsm.Unwrap(kek, make([]byte, 16))), ErrCiphertextLength},
		{"KW unwrap odd", second(hsm.Unwrap(kek, make([]byte, 25))), ErrCiphertextLength},
		{"KW unwrap too long", second(hsm.Unwrap(kek, make([]byte, MaxLen+16))), ErrCiphertextLength},
		{"KWP unwrap short", second(hsm.UnwrapPad(kek, make([]byte, 8))), ErrCiphertextLength},
		{"KWP unwrap odd", second(hsm.UnwrapPad(kek, make([]byte, 23))), ErrCiphertextLength},
		{"KWP unwrap too long", second(hsm.UnwrapPad(kek, make([]byte, MaxLen+16))), ErrCiphertextLength},
		{"KW garbage", second(hsm.Unwrap(kek, make([]byte, 40))), ErrIntegrity},
		{"KWP garbage", second(hsm.UnwrapPad(kek, make([]byte, 40))), ErrIntegrity},
		{"KWP single-block garbage", second(hsm.UnwrapPad(kek, make([]byte, 16))), ErrIntegrity},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func second(_ []byte, err error) error { return err }

// TestWrongKEKAndTamper checks that every single-bit change of a ciphertext,
// and unwrapping under another KEK, fail the integrity check.
func TestWrongKEKAndTamper(t *testing.T) {
	kek := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	for _, size := range []int{1, 7, 8, 9, 16, 31, 32, 40} {
		for _, alg := range []struct {
			name         string
			wrap, unwrap func(kek, b []byte) ([]byte, error)
		}{{"KW", hsm.Wrap, hsm.Unwrap}, {"KWP", hsm.WrapPad, hsm.UnwrapPad}} {
			if alg.name == "KW" && (size < 16 || size%8 != 0) {
				continue
			}
			msg := bytes.Repeat([]byte{0x5a}, size)
			ct, err := alg.wrap(kek, msg)
			if err != nil {
				t.Fatalf("%s %d: %v", alg.name, size, err)
			}
			if _, err := alg.unwrap(other, ct); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s %d: unwrap under another KEK: %v", alg.name, size, err)
			}
			for bit := 0; bit < 8*len(ct); bit++ {
				bad := bytes.Clone(ct)
				bad[bit/8] ^= 1 << (bit % 8)
				if pt, err := alg.unwrap(kek, bad); !errors.Is(err, ErrIntegrity) || pt != nil {
					t.Fatalf("%s %d: bit %d flipped: %x, %v", alg.name, size, bit, pt, err)
				}
			}
		}
	}
}

// TestRefusedInFIPSOnlyMode: key wrap is this package's own code, outside
// Go's validated module, so under GODEBUG=fips140=only every function refuses
// with ErrNotApproved (and errors.ErrUnsupported) and returns no bytes, even
// for input it would wrap; otherwise each gives what TestHSM gives.
func TestRefusedInFIPSOnlyMode(t *testing.T) {
	kek := bytes.Repeat([]byte{3}, 32)
	kw, _ := hsm.Wrap(kek, kek)
	kwp, _ := hsm.WrapPad(kek, kek[:5])
	for _, c := range []struct {
		name string
		f    func() ([]byte, error)
		want []byte
	}{
		{"Wrap", func() ([]byte, error) { return Wrap(kek, kek) }, kw},
		{"Unwrap", func() ([]byte, error) { return Unwrap(kek, kw) }, kek},
		{"WrapPad", func() ([]byte, error) { return WrapPad(kek, kek[:5]) }, kwp},
		{"UnwrapPad", func() ([]byte, error) { return UnwrapPad(kek, kwp) }, kek[:5]},
	} {
		got, err := c.f()
		if fips140.Enforced() {
			if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) || got != nil {
				t.Errorf("%s in FIPS 140-only mode: %x, %v; want ErrNotApproved and no bytes", c.name, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %x, %v; want %x", c.name, got, err, c.want)
		}
	}
}

// fuzzKEKs are the KEKs the fuzz targets pick from with the first input byte.
var fuzzKEKs = [][]byte{
	bytes.Repeat([]byte{0x11}, 16),
	bytes.Repeat([]byte{0x22}, 24),
	bytes.Repeat([]byte{0x33}, 32),
}

func FuzzUnwrap(f *testing.F) {
	for i, kek := range fuzzKEKs {
		ct, _ := hsm.Wrap(kek, bytes.Repeat([]byte{0xab}, 16+8*i))
		f.Add(byte(i), ct)
		f.Add(byte(i), make([]byte, 24))
	}
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, k byte, ct []byte) {
		kek := fuzzKEKs[int(k)%len(fuzzKEKs)]
		pt, err := hsm.Unwrap(kek, ct)
		if err != nil {
			if pt != nil {
				t.Fatalf("bytes returned with error %v", err)
			}
			if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrCiphertextLength) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Anything that unwraps must be what Wrap produces: KW is deterministic.
		again, err := hsm.Wrap(kek, pt)
		if err != nil || !bytes.Equal(again, ct) {
			t.Fatalf("Unwrap accepted %x, but Wrap of its output gives %x, %v", ct, again, err)
		}
	})
}

func FuzzUnwrapPad(f *testing.F) {
	for i, kek := range fuzzKEKs {
		for _, n := range []int{1, 8, 9, 32} {
			ct, _ := hsm.WrapPad(kek, bytes.Repeat([]byte{0xcd}, n))
			f.Add(byte(i), ct)
		}
	}
	f.Add(byte(1), make([]byte, 16))
	f.Fuzz(func(t *testing.T, k byte, ct []byte) {
		kek := fuzzKEKs[int(k)%len(fuzzKEKs)]
		pt, err := hsm.UnwrapPad(kek, ct)
		if err != nil {
			if pt != nil {
				t.Fatalf("bytes returned with error %v", err)
			}
			if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrCiphertextLength) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := hsm.WrapPad(kek, pt)
		if err != nil || !bytes.Equal(again, ct) {
			t.Fatalf("UnwrapPad accepted %x, but WrapPad of its output gives %x, %v", ct, again, err)
		}
	})
}

func BenchmarkWrap(b *testing.B) {
	kek, key := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	b.SetBytes(32)
	for b.Loop() {
		if _, err := hsm.Wrap(kek, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	kek, key := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	ct, _ := hsm.Wrap(kek, key)
	b.SetBytes(32)
	for b.Loop() {
		if _, err := hsm.Unwrap(kek, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// Wrap a key and see tampering caught. (Not run as a test: under
// GODEBUG=fips140=only, Wrap refuses with ErrNotApproved.)
func ExampleWrap() {
	kek := bytes.Repeat([]byte{0x4b}, 32) // an AES-256 key-encryption key
	dek := bytes.Repeat([]byte{0x44}, 32) // the key to protect
	wrapped, err := Wrap(kek, dek)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(wrapped))

	wrapped[0] ^= 1
	_, err = Unwrap(kek, wrapped)
	fmt.Println(errors.Is(err, ErrIntegrity))
	// Prints 40, then true.
}
