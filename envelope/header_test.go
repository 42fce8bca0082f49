package envelope

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// newTestAES returns a local AES keyring with a fresh key.
func newTestAES(t testing.TB) *keyring.AES {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := keyring.NewAES(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// countingKeyring counts the Unwrap calls that reach the keyring it wraps.
type countingKeyring struct {
	keyring.Keyring
	unwraps atomic.Int64
}

func (c *countingKeyring) Unwrap(ctx context.Context, keys []keyring.WrappedKey, ec keyring.Context) ([]byte, error) {
	c.unwraps.Add(1)
	return c.Keyring.Unwrap(ctx, keys, ec)
}

// fixedKeyring wraps by handing out a fixed "wrapped key" that is the DEK
// itself: a stand-in for a keyring whose wrapping the test controls fully
// (it lets a test build headers with any DEK, any commitment, any count).
type fixedKeyring struct{ id string }

func (f fixedKeyring) Wrap(_ context.Context, dek []byte, _ keyring.Context) ([]keyring.WrappedKey, error) {
	return []keyring.WrappedKey{{Provider: "test-plain", KeyID: f.id, Algorithm: "none", Ciphertext: bytes.Clone(dek)}}, nil
}

func (f fixedKeyring) Unwrap(_ context.Context, keys []keyring.WrappedKey, _ keyring.Context) ([]byte, error) {
	for _, k := range keys {
		if k.Provider == "test-plain" && k.KeyID == f.id {
			return bytes.Clone(k.Ciphertext), nil
		}
	}
	return nil, &keyring.NoMatchError{Available: keys}
}

// craftHeader builds a header whose commitment and tag come from the given
// data keys, which need not be the ones wrapped in keys.
func craftHeader(t testing.TB, f headerFields, keys []keyring.WrappedKey, commitDEK, tagDEK []byte) []byte {
	t.Helper()
	kc, err := deriveKeys(commitDEK, f.messageID)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := deriveKeys(tagDEK, f.messageID)
	if err != nil {
		t.Fatal(err)
	}
	copy(f.commitment[:], kc.commitment)
	hdr, err := buildHeader(&f, keys, kt.header)
	if err != nil {
		t.Fatal(err)
	}
	return hdr
}

func testFields() headerFields {
	f := headerFields{suite: stream.AES256GCM, chunkSize: 1 << 12, context: keyring.Context{"project": "x-57"}}
	rand.Read(f.messageID[:])
	return f
}

func TestNewObjectOpenObject(t *testing.T) {
	ctx := context.Background()
	kr := newTestAES(t)
	ec := keyring.Context{"project": "x-57", "classification": "ECCN 9E003"}
	hdr, body, key, err := newObject(ctx, kr, &EncryptOptions{Context: ec, ChunkSize: 1 << 14, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("content key of %d bytes", len(key))
	}
	n, err := headerLength(hdr[:headerPrefixLen])
	if err != nil || n != len(hdr) {
		t.Fatalf("headerLength = %d, %v; header has %d bytes", n, err, len(hdr))
	}

	h, body2, key2, err := openObject(ctx, hdr, kr, &DecryptOptions{RequireContext: keyring.Context{"project": "x-57"}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, key2) {
		t.Error("openObject derived another content key")
	}
	if h.Version != 1 || h.Suite != stream.AES256GCM || h.ChunkSize != 1<<14 || h.Size != len(hdr) {
		t.Errorf("header = %+v", h)
	}
	if len(h.Context) != 2 || !h.Context.Contains(ec) {
		t.Errorf("context = %v, want %v", h.Context, ec)
	}
	if len(h.WrappedKeys) != 1 || h.WrappedKeys[0].Provider != keyring.ProviderAES || h.WrappedKeys[0].KeyID != kr.KeyID() {
		t.Errorf("wrapped keys = %+v", h.WrappedKeys)
	}
	if body.ChunkSize != 1<<14 || body.Concurrency != 3 || body2.Concurrency != 2 || !bytes.Equal(body.AAD, body2.AAD) || body.Suite != body2.Suite {
		t.Errorf("body options: %+v vs %+v", body, body2)
	}
	wantAAD := append([]byte("geoseal\x00\x01\x01\x0e"), h.MessageID[:]...)
	if !bytes.Equal(body.AAD, wantAAD) {
		t.Errorf("body AAD = %x, want %x", body.AAD, wantAAD)
	}

	// Inspect sees the same header without any key.
	ih, err := Inspect(bytes.NewReader(append(bytes.Clone(hdr), "body"...)))
	if err != nil {
		t.Fatal(err)
	}
	if ih.MessageID != h.MessageID || ih.Commitment != h.Commitment || ih.Size != h.Size || !ih.Context.Contains(ec) {
		t.Errorf("Inspect = %+v, want %+v", ih, h)
	}
}

func TestEncryptOptionsValidation(t *testing.T) {
	ctx := context.Background()
	kr := newTestAES(t)
	for _, cs := range []int{1, 4095, 4097, 3 << 12, 32 << 20, -4096} {
		if _, _, _, err := newObject(ctx, kr, &EncryptOptions{ChunkSize: cs}); err == nil {
			t.Errorf("chunk size %d accepted", cs)
		}
	}
	for _, cs := range []int{0, 4096, 1 << 20, 16 << 20} {
		hdr, body, _, err := newObject(ctx, kr, &EncryptOptions{ChunkSize: cs})
		if err != nil {
			t.Errorf("chunk size %d: %v", cs, err)
			continue
		}
		want := cs
		if cs == 0 {
			want = stream.DefaultChunkSize
		}
		h, _, _ := parseHeader(hdr)
		if body.ChunkSize != want || h.ChunkSize != want {
			t.Errorf("chunk size %d: body %d, header %d", cs, body.ChunkSize, h.ChunkSize)
		}
	}
	if _, _, _, err := newObject(ctx, kr, &EncryptOptions{Context: keyring.Context{"": "x"}}); !errors.Is(err, keyring.ErrInvalidContext) {
		t.Errorf("empty context key: %v", err)
	}
	if _, _, _, err := newObject(ctx, kr, &EncryptOptions{Suite: stream.Suite(99)}); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("unknown suite: %v", err)
	}
	_, _, _, err := newObject(ctx, kr, &EncryptOptions{Suite: stream.ChaCha20Poly1305})
	if fips140.Enforced() {
		if !errors.Is(err, stream.ErrNotApproved) {
			t.Errorf("ChaCha20-Poly1305 in FIPS 140-only mode: %v, want stream.ErrNotApproved", err)
		}
	} else if err != nil {
		t.Errorf("ChaCha20-Poly1305: %v", err)
	}
}

func TestHeaderLength(t *testing.T) {
	good := make([]byte, headerPrefixLen)
	copy(good, magic)
	good[len(magic)] = 1
	withLen := func(n uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[len(magic)+1:], n)
		return b
	}
	tests := []struct {
		name   string
		prefix []byte
		want   error
	}{
		{"empty", nil, ErrNotGeoseal},
		{"text", []byte("hello, world!"), ErrNotGeoseal},
		{"short text", []byte("hi"), ErrNotGeoseal},
		{"magic prefix", []byte("geos"), ErrInvalidHeader},
		{"magic only", []byte(magic), ErrInvalidHeader},
		{"version 0", append([]byte(magic), 0, 0, 0, 1, 0), ErrUnsupportedVersion},
		{"version 2", append([]byte(magic), 2, 0, 0, 1, 0), ErrUnsupportedVersion},
		{"too short", withLen(uint32(minHeaderLen - 1)), ErrInvalidHeader},
		{"too long", withLen(MaxHeaderSize + 1), ErrInvalidHeader},
		{"huge", withLen(0xffffffff), ErrInvalidHeader},
	}
	for _, tt := range tests {
		if _, err := headerLength(tt.prefix); !errors.Is(err, tt.want) {
			t.Errorf("%s: headerLength(%x) = %v, want %v", tt.name, tt.prefix, err, tt.want)
		}
	}
	if !errors.Is(ErrUnsupportedVersion, errors.ErrUnsupported) || !errors.Is(ErrUnsupportedSuite, errors.ErrUnsupported) {
		t.Error("unsupported errors do not match errors.ErrUnsupported")
	}
	for _, n := range []uint32{uint32(minHeaderLen), 1000, MaxHeaderSize} {
		if got, err := headerLength(withLen(n)); err != nil || got != int(n) {
			t.Errorf("headerLength(len %d) = %d, %v", n, got, err)
		}
	}
}

// TestHeaderBitFlips flips every bit of a header, in turn, and checks that
// opening it fails with one of the header errors, never with success.
func TestHeaderBitFlips(t *testing.T) {
	ctx := context.Background()
	kr := newTestAES(t)
	hdr, _, _, err := newObject(ctx, kr, &EncryptOptions{Context: keyring.Context{"a": "b"}, ChunkSize: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	plain := fixedKeyring{"k"}
	hdr2, _, _, err := newObject(ctx, plain, &EncryptOptions{Context: keyring.Context{"a": "b"}, ChunkSize: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	// The AES keyring authenticates the context and its wrapped key, so
	// many flips fail in Unwrap; fixedKeyring authenticates nothing, so
	// there the commitment and the tag alone must catch them.
	for _, tc := range []struct {
		name string
		hdr  []byte
		kr   keyring.Unwrapper
	}{{"local-aes", hdr, kr}, {"unauthenticated wrapping", hdr2, plain}} {
		counts := map[string]int{}
		for i := range len(tc.hdr) * 8 {
			b := bytes.Clone(tc.hdr)
			b[i/8] ^= 1 << (i % 8)
			_, _, key, err := openObject(ctx, b, tc.kr, nil)
			if err == nil || key != nil {
				t.Fatalf("%s: bit %d flipped: opened (err %v)", tc.name, i, err)
			}
			counts[classify(err)]++
			if classify(err) == "other" {
				t.Errorf("%s: bit %d flipped: untyped error %v", tc.name, i, err)
			}
		}
		t.Logf("%s: %d flips: %v", tc.name, len(tc.hdr)*8, counts)
	}
}

// classify names the typed error err matches.
func classify(err error) string {
	var nm *keyring.NoMatchError
	switch {
	case errors.Is(err, ErrNotGeoseal):
		return "not geoseal"
	case errors.Is(err, ErrUnsupportedVersion):
		return "version"
	case errors.Is(err, ErrUnsupportedSuite):
		return "suite"
	case errors.Is(err, stream.ErrNotApproved):
		return "not approved"
	case errors.Is(err, ErrInvalidHeader):
		return "invalid"
	case errors.Is(err, keyring.ErrTooManyKeys):
		return "too many keys"
	case errors.As(err, &nm):
		return "no match"
	case errors.Is(err, ErrCommitment):
		return "commitment"
	case errors.Is(err, ErrHeaderTampered):
		return "tampered"
	case errors.Is(err, ErrContextMismatch):
		return "context"
	case errors.Is(err, ErrBodyTampered):
		return "body"
	}
	return "other"
}

func TestHeaderCommitment(t *testing.T) {
	ctx := context.Background()
	r1, r2 := fixedKeyring{"alice"}, fixedKeyring{"bob"}
	dekA, dekB := make([]byte, 32), make([]byte, 32)
	rand.Read(dekA)
	rand.Read(dekB)
	f := testFields()
	wA, _ := r1.Wrap(ctx, dekA, f.context)
	wB, _ := r2.Wrap(ctx, dekB, f.context)
	keys := append(wA, wB...)

	// Committed to and tagged with A: Alice opens the header, Bob's DEK
	// fails the commitment before anything else is checked.
	hdr := craftHeader(t, f, keys, dekA, dekA)
	if _, _, _, err := openObject(ctx, hdr, r1, nil); err != nil {
		t.Errorf("alice: %v", err)
	}
	if _, _, key, err := openObject(ctx, hdr, r2, nil); !errors.Is(err, ErrCommitment) || key != nil {
		t.Errorf("bob: %v, want ErrCommitment", err)
	}
	// Committed to A but tagged with B: both fail.
	hdr = craftHeader(t, f, keys, dekA, dekB)
	if _, _, _, err := openObject(ctx, hdr, r1, nil); !errors.Is(err, ErrHeaderTampered) {
		t.Errorf("alice: %v, want ErrHeaderTampered", err)
	}
	if _, _, _, err := openObject(ctx, hdr, r2, nil); !errors.Is(err, ErrCommitment) {
		t.Errorf("bob: %v, want ErrCommitment", err)
	}
	// A DEK of the wrong length cannot match a commitment.
	short := fixedKeyring{"short"}
	ws, _ := short.Wrap(ctx, dekA[:16], f.context)
	hdr = craftHeader(t, f, ws, dekA, dekA)
	if _, _, _, err := openObject(ctx, hdr, short, nil); !errors.Is(err, ErrCommitment) {
		t.Errorf("16-byte DEK: %v, want ErrCommitment", err)
	}
}

func TestRequireContext(t *testing.T) {
	ctx := context.Background()
	kr := &countingKeyring{Keyring: newTestAES(t)}
	hdr, _, _, err := newObject(ctx, kr, &EncryptOptions{Context: keyring.Context{"project": "x-57", "site": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []keyring.Context{nil, {}, {"project": "x-57"}, {"project": "x-57", "site": "lab"}} {
		if _, _, _, err := openObject(ctx, hdr, kr, &DecryptOptions{RequireContext: req}); err != nil {
			t.Errorf("RequireContext %v: %v", req, err)
		}
	}
	before := kr.unwraps.Load()
	for _, req := range []keyring.Context{{"project": "x-58"}, {"other": "x"}, {"project": "x-57", "site": ""}, {"project": ""}} {
		if _, _, _, err := openObject(ctx, hdr, kr, &DecryptOptions{RequireContext: req}); !errors.Is(err, ErrContextMismatch) {
			t.Errorf("RequireContext %v: %v, want ErrContextMismatch", req, err)
		}
	}
	if n := kr.unwraps.Load() - before; n != 0 {
		t.Errorf("%d unwraps for objects refused on their context", n)
	}
}

func TestMaxWrappedKeys(t *testing.T) {
	ctx := context.Background()
	f := testFields()
	dek := make([]byte, 32)
	rand.Read(dek)
	var keys []keyring.WrappedKey
	for i := range 17 {
		w, _ := fixedKeyring{string(rune('a' + i))}.Wrap(ctx, dek, nil)
		keys = append(keys, w...)
	}
	hdr := craftHeader(t, f, keys, dek, dek)
	last := fixedKeyring{"q"}
	if _, _, _, err := openObject(ctx, hdr, last, nil); !errors.Is(err, keyring.ErrTooManyKeys) {
		t.Errorf("17 keys, default limit: %v, want keyring.ErrTooManyKeys", err)
	}
	if _, _, _, err := openObject(ctx, hdr, last, &DecryptOptions{MaxWrappedKeys: 17}); err != nil {
		t.Errorf("17 keys, limit 17: %v", err)
	}

	// The hard limit holds on both sides.
	for len(keys) <= MaxWrappedKeys {
		keys = append(keys, keys[0])
	}
	if _, err := buildHeader(&f, keys, dek); !errors.Is(err, keyring.ErrTooManyKeys) {
		t.Errorf("building with %d keys: %v", len(keys), err)
	}
	if _, err := buildHeader(&f, nil, dek); err == nil {
		t.Error("built a header without wrapped keys")
	}
}

func TestParseHeaderRejects(t *testing.T) {
	ctx := context.Background()
	dek := make([]byte, 32)
	rand.Read(dek)
	f := testFields()
	keys, _ := fixedKeyring{"k"}.Wrap(ctx, dek, nil)
	hdr := craftHeader(t, f, keys, dek, dek)
	if _, _, err := parseHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := parseHeader(append(bytes.Clone(hdr), 0)); !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, _, err := parseHeader(hdr[:len(hdr)-1]); !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("missing byte: %v", err)
	}
	// Suite and chunk size are checked even if the tag would verify.
	mutate := func(off int, v byte) []byte {
		b := bytes.Clone(hdr)
		b[off] = v
		return b
	}
	if _, _, err := parseHeader(mutate(headerPrefixLen, 0x07)); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("suite 7: %v", err)
	}
	for _, v := range []byte{0, 11, 25, 255} {
		if _, _, err := parseHeader(mutate(headerPrefixLen+1, v)); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("chunk log2 %d: %v", v, err)
		}
	}
	// Wrapped-key limits are enforced when building.
	long := []keyring.WrappedKey{{Provider: strings.Repeat("p", 256), Ciphertext: []byte{1}}}
	if _, err := buildHeader(&f, long, dek); err == nil {
		t.Error("built a header with a 256-byte provider")
	}
	if _, err := buildHeader(&f, []keyring.WrappedKey{{Provider: "p"}}, dek); err == nil {
		t.Error("built a header with an empty wrapped key")
	}
}

func TestChaChaHeaderInFIPSMode(t *testing.T) {
	ctx := context.Background()
	dek := make([]byte, 32)
	rand.Read(dek)
	f := testFields()
	f.suite = stream.ChaCha20Poly1305
	r := fixedKeyring{"k"}
	keys, _ := r.Wrap(ctx, dek, nil)
	hdr := craftHeader(t, f, keys, dek, dek)
	h, body, _, err := openObject(ctx, hdr, r, nil)
	if fips140.Enforced() {
		if !errors.Is(err, stream.ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("ChaCha20-Poly1305 header in FIPS 140-only mode: %v, want stream.ErrNotApproved", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if h.Suite != stream.ChaCha20Poly1305 || body.Suite != stream.ChaCha20Poly1305 {
		t.Errorf("suite %v, body suite %v", h.Suite, body.Suite)
	}
}

// TestHostileHeaderAllocation feeds headers that claim huge lengths and
// counts to the parser and checks that a parse allocates under 1 MiB.
func TestHostileHeaderAllocation(t *testing.T) {
	// A prefix claiming a 4 GiB header followed by an endless stream.
	huge := append([]byte(magic), 1, 0xff, 0xff, 0xff, 0xff)
	// A maximal header whose context claims 64 Ki bytes and whose inner
	// fields claim the most they can, with no bytes behind the claims.
	maxHdr := make([]byte, MaxHeaderSize)
	copy(maxHdr, magic)
	maxHdr[len(magic)] = 1
	binary.BigEndian.PutUint32(maxHdr[len(magic)+1:], MaxHeaderSize)
	maxHdr[headerPrefixLen] = suiteCodeAES256GCM
	maxHdr[headerPrefixLen+1] = 20
	for i := fixedLen; i < len(maxHdr); i++ {
		maxHdr[i] = 0xff
	}
	// A well-formed context length with a maximal key count and lengths.
	keysHdr := bytes.Clone(maxHdr)
	binary.BigEndian.PutUint16(keysHdr[fixedLen:], 2)
	binary.BigEndian.PutUint16(keysHdr[fixedLen+2:], 0)
	keysHdr[fixedLen+4] = MaxWrappedKeys

	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"4 GiB claimed", func() io.Reader { return io.MultiReader(bytes.NewReader(huge), zeros{}) }},
		{"64 KiB of maximal lengths", func() io.Reader { return io.MultiReader(bytes.NewReader(maxHdr), zeros{}) }},
		{"64 wrapped keys of maximal lengths", func() io.Reader { return io.MultiReader(bytes.NewReader(keysHdr), zeros{}) }},
	} {
		alloc := allocatedBytes(func() {
			for range 10 {
				h, err := Inspect(tc.r())
				if err == nil || h != nil {
					t.Errorf("%s: parsed", tc.name)
				}
				if _, err := Decrypt(context.Background(), tc.r(), fixedKeyring{"k"}, nil); err == nil {
					t.Errorf("%s: decrypted", tc.name)
				}
			}
		}) / 10
		t.Logf("%s: %d bytes allocated per parse and decrypt", tc.name, alloc)
		if alloc >= 1<<20 {
			t.Errorf("%s: %d bytes allocated, want < 1 MiB", tc.name, alloc)
		}
	}
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// allocatedBytes returns how many bytes the heap grew by, in total
// allocations, while f ran.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
