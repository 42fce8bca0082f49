package format_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// testHeader returns the fields of a header with a fresh message id and the
// data key dek wrapped by formattest.PlainKeyring{"k"}.
func testHeader(dek []byte) *format.Header {
	h := &format.Header{Suite: stream.AES256GCM, ChunkSize: 1 << 12, Context: keyring.Context{"project": "x-57"}}
	rand.Read(h.MessageID[:])
	h.WrappedKeys, _ = formattest.PlainKeyring{ID: "k"}.Wrap(context.Background(), dek, nil)
	return h
}

// magic and fixedLen are those of FORMAT.md section 2: the first bytes of
// every object, and the bytes before the context length.
const (
	magic    = "geoseal\x00"
	fixedLen = format.PrefixSize + 2 + format.MessageIDSize + format.CommitmentSize
)

func randomDEK() []byte {
	dek := make([]byte, format.DataKeySize)
	rand.Read(dek)
	return dek
}

func TestHeaderLength(t *testing.T) {
	good := make([]byte, format.PrefixSize)
	copy(good, magic)
	good[len(magic)] = 1
	withLen := func(n uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[len(magic)+1:], n)
		return b
	}
	tests := []struct {
		name    string
		prefix  []byte
		want    int
		wantErr error
	}{
		{"empty", nil, 0, format.ErrNotGeoseal},
		{"text", []byte("hello, world!"), 0, format.ErrNotGeoseal},
		{"short text", []byte("hi"), 0, format.ErrNotGeoseal},
		{"magic prefix", []byte("geos"), 0, format.ErrInvalidHeader},
		{"magic only", []byte(magic), 0, format.ErrInvalidHeader},
		{"version 0", append([]byte(magic), 0, 0, 0, 1, 0), 0, format.ErrUnsupportedVersion},
		{"version 2", append([]byte(magic), 2, 0, 0, 1, 0), 0, format.ErrUnsupportedVersion},
		{"too short", withLen(uint32(format.MinHeaderSize - 1)), 0, format.ErrInvalidHeader},
		{"too long", withLen(format.MaxHeaderSize + 1), 0, format.ErrInvalidHeader},
		{"huge", withLen(0xffffffff), 0, format.ErrInvalidHeader},
		{"shortest", withLen(uint32(format.MinHeaderSize)), format.MinHeaderSize, nil},
		{"1000", withLen(1000), 1000, nil},
		{"longest", withLen(format.MaxHeaderSize), format.MaxHeaderSize, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := format.HeaderLength(tt.prefix)
			if n != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("HeaderLength(%x) = %d, %v; want %d, %v", tt.prefix, n, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestUnsupportedMatchesErrUnsupported(t *testing.T) {
	for _, err := range []error{format.ErrUnsupportedVersion, format.ErrUnsupportedSuite} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%v does not match errors.ErrUnsupported", err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	dek := randomDEK()
	hdr := formattest.Craft(t, testHeader(dek), dek, dek)
	if _, err := format.Parse(hdr); err != nil {
		t.Fatal(err)
	}
	mutate := func(off int, v byte) []byte {
		b := bytes.Clone(hdr)
		b[off] = v
		return b
	}
	countOff := fixedLen + 2 + int(binary.BigEndian.Uint16(hdr[fixedLen:])) // key_count
	// Suite and chunk size are checked even if the tag would verify.
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"trailing byte", append(bytes.Clone(hdr), 0), format.ErrInvalidHeader},
		{"missing byte", hdr[:len(hdr)-1], format.ErrInvalidHeader},
		{"suite 7", mutate(format.PrefixSize, 0x07), format.ErrUnsupportedSuite},
		{"suite 0", mutate(format.PrefixSize, 0x00), format.ErrUnsupportedSuite},
		{"chunk log2 0", mutate(format.PrefixSize+1, 0), format.ErrInvalidHeader},
		{"chunk log2 11", mutate(format.PrefixSize+1, 11), format.ErrInvalidHeader},
		{"chunk log2 25", mutate(format.PrefixSize+1, 25), format.ErrInvalidHeader},
		{"chunk log2 255", mutate(format.PrefixSize+1, 255), format.ErrInvalidHeader},
		{"no wrapped key", mutate(countOff, 0), format.ErrInvalidHeader},
		{"65 wrapped keys", mutate(countOff, format.MaxWrappedKeys+1), format.ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := format.Parse(tt.raw); !errors.Is(err, tt.want) || h != nil {
				t.Errorf("Parse = %v, %v; want %v", h, err, tt.want)
			}
		})
	}
}

func TestBuildRejects(t *testing.T) {
	dek := randomDEK()
	keys := testHeader(dek).WrappedKeys
	tooMany := make([]keyring.WrappedKey, format.MaxWrappedKeys+1)
	for i := range tooMany {
		tooMany[i] = keys[0]
	}
	tests := []struct {
		name string
		edit func(h *format.Header)
		want error // nil: any error
	}{
		{"no wrapped key", func(h *format.Header) { h.WrappedKeys = nil }, keyring.ErrTooManyKeys},
		{"65 wrapped keys", func(h *format.Header) { h.WrappedKeys = tooMany }, keyring.ErrTooManyKeys},
		{"256-byte provider", func(h *format.Header) {
			h.WrappedKeys = []keyring.WrappedKey{{Provider: strings.Repeat("p", 256), Ciphertext: []byte{1}}}
		}, nil},
		{"empty ciphertext", func(h *format.Header) { h.WrappedKeys = []keyring.WrappedKey{{Provider: "p"}} }, nil},
		{"1025-byte key id", func(h *format.Header) {
			h.WrappedKeys = []keyring.WrappedKey{{Provider: "p", KeyID: strings.Repeat("k", 1025), Ciphertext: []byte{1}}}
		}, nil},
		{"chunk size 1000", func(h *format.Header) { h.ChunkSize = 1000 }, nil},
		{"unknown suite", func(h *format.Header) { h.Suite = 99 }, format.ErrUnsupportedSuite},
		{"invalid context", func(h *format.Header) { h.Context = keyring.Context{"": "x"} }, keyring.ErrInvalidContext},
		{"over 64 KiB", func(h *format.Header) {
			k := keyring.WrappedKey{Provider: "p", Ciphertext: bytes.Repeat([]byte{1}, 2048)}
			h.WrappedKeys = []keyring.WrappedKey{k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k, k}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHeader(dek)
			tt.edit(h)
			raw, err := format.Build(h, dek)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Build = %d bytes, %v; want an error matching %v", len(raw), err, tt.want)
			}
		})
	}
}

// TestReadHeader reads headers from streams of every shape: whole, cut at
// any byte, not a header at all, from a failing reader, and through
// ReadHeaderAt, and checks where the reader is left.
func TestReadHeader(t *testing.T) {
	dek := randomDEK()
	hdr := formattest.Craft(t, testHeader(dek), dek, dek)
	obj := append(bytes.Clone(hdr), "body"...)
	boom := errors.New("boom")
	tests := []struct {
		name string
		src  io.Reader
		want error
		rest string // what the reader holds after the header
	}{
		{"header and body", bytes.NewReader(obj), nil, "body"},
		{"header alone", bytes.NewReader(hdr), nil, ""},
		{"cut in the prefix", bytes.NewReader(hdr[:format.PrefixSize-1]), format.ErrInvalidHeader, ""},
		{"cut after the prefix", bytes.NewReader(hdr[:format.PrefixSize]), format.ErrInvalidHeader, ""},
		{"cut before the tag", bytes.NewReader(hdr[:len(hdr)-1]), format.ErrInvalidHeader, ""},
		{"empty", bytes.NewReader(nil), format.ErrNotGeoseal, ""},
		{"text", strings.NewReader("plain text, long enough for a prefix"), format.ErrNotGeoseal, ""},
		{"failing source", io.MultiReader(bytes.NewReader(hdr[:20]), errReader{boom}), boom, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := format.ReadHeader(tt.src)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || raw != nil {
					t.Fatalf("ReadHeader = %d bytes, %v; want %v", len(raw), err, tt.want)
				}
				return
			}
			if err != nil || !bytes.Equal(raw, hdr) {
				t.Fatalf("ReadHeader = %d bytes, %v; want the %d-byte header", len(raw), err, len(hdr))
			}
			if rest, _ := io.ReadAll(tt.src); string(rest) != tt.rest {
				t.Errorf("the reader is left at %q, want %q", rest, tt.rest)
			}
		})
	}
	for _, size := range []int64{int64(len(obj)), int64(len(hdr))} {
		if raw, err := format.ReadHeaderAt(bytes.NewReader(obj), size); err != nil || !bytes.Equal(raw, hdr) {
			t.Errorf("ReadHeaderAt(size %d) = %d bytes, %v", size, len(raw), err)
		}
	}
	if _, err := format.ReadHeaderAt(bytes.NewReader(obj), int64(len(hdr)-1)); !errors.Is(err, format.ErrInvalidHeader) {
		t.Errorf("ReadHeaderAt of a size inside the header: %v, want ErrInvalidHeader", err)
	}
	if _, err := format.ReadHeaderAt(bytes.NewReader(obj), -1); err == nil {
		t.Error("ReadHeaderAt of a negative size succeeded")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestSuiteCodes(t *testing.T) {
	for _, s := range []stream.Suite{stream.AES256GCM, stream.ChaCha20Poly1305} {
		c, err := format.SuiteCode(s)
		if err != nil {
			t.Fatalf("SuiteCode(%v): %v", s, err)
		}
		if back, err := format.SuiteFromCode(c); err != nil || back != s {
			t.Errorf("SuiteFromCode(SuiteCode(%v)) = %v, %v", s, back, err)
		}
	}
	if _, err := format.SuiteCode(stream.Suite(9)); !errors.Is(err, format.ErrUnsupportedSuite) {
		t.Errorf("SuiteCode(9): %v, want ErrUnsupportedSuite", err)
	}
	for _, c := range []uint8{0, 3, 255} {
		if _, err := format.SuiteFromCode(c); !errors.Is(err, format.ErrUnsupportedSuite) {
			t.Errorf("SuiteFromCode(%d): %v, want ErrUnsupportedSuite", c, err)
		}
	}
}

func TestCheckChunkSize(t *testing.T) {
	for _, tt := range []struct {
		size int
		ok   bool
	}{
		{format.MinChunkSize, true}, {1 << 16, true}, {format.MaxChunkSize, true},
		{0, false}, {-4096, false}, {format.MinChunkSize / 2, false}, {format.MinChunkSize + 1, false},
		{3 << 12, false}, {format.MaxChunkSize * 2, false},
	} {
		if err := format.CheckChunkSize(tt.size); (err == nil) != tt.ok {
			t.Errorf("CheckChunkSize(%d) = %v, want ok %v", tt.size, err, tt.ok)
		}
	}
	if format.MinChunkSize != stream.MinChunkSize || format.MaxChunkSize != stream.MaxChunkSize {
		t.Error("the format's chunk size bounds differ from package stream's")
	}
}

func TestBodyOptions(t *testing.T) {
	h := testHeader(randomDEK())
	h.ChunkSize = 1 << 14
	opts, err := format.BodyOptions(h)
	if err != nil {
		t.Fatal(err)
	}
	wantAAD := append([]byte("geoseal\x00\x01\x01\x0e"), h.MessageID[:]...)
	if !bytes.Equal(opts.AAD, wantAAD) || opts.ChunkSize != 1<<14 || opts.Suite != stream.AES256GCM || opts.Concurrency != 0 {
		t.Errorf("BodyOptions = %+v, want AAD %x", opts, wantAAD)
	}
}

// vectorsDir holds the object vectors of FORMAT.md; package envelope's
// TestVectors checks them in full.
const vectorsDir = "../../testdata/vectors"

// FuzzParse checks that whatever parses is within the limits, is read
// whole by ReadHeader and HeaderLength, and re-encodes to the same bytes
// (the encoding is canonical), and that whatever does not parse fails with
// a typed error.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	for _, file := range files {
		var v struct {
			Object       string `json:"object"`
			HeaderLength int    `json:"header_length"`
		}
		if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &v) == nil {
			if obj, err := hex.DecodeString(v.Object); err == nil && len(obj) >= v.HeaderLength {
				f.Add(obj[:v.HeaderLength])
			}
		}
	}
	for _, p := range []*format.Params{
		{ChunkSize: 4 << 10},
		{ChunkSize: 4 << 10, Context: keyring.Context{"project": "x-57", "site": "lab"}},
		{},
	} {
		hdr, _, err := format.New(context.Background(), formattest.PlainKeyring{ID: "fuzz"}, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(hdr)
	}
	f.Add([]byte(magic))
	f.Add([]byte("not a geoseal object at all"))

	f.Fuzz(func(t *testing.T, data []byte) {
		n, lerr := format.HeaderLength(data)
		h, err := format.Parse(data)
		read, rerr := format.ReadHeader(bytes.NewReader(data))
		if err != nil {
			if h != nil {
				t.Fatal("Parse returned a header with an error")
			}
			if formattest.Classify(err) == "other" {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if lerr != nil || n != len(data) || h.Size != len(data) {
			t.Fatalf("HeaderLength = %d, %v; parsed %d bytes", n, lerr, len(data))
		}
		if rerr != nil || !bytes.Equal(read, data) {
			t.Fatalf("ReadHeader disagrees with Parse: %v", rerr)
		}
		if len(h.WrappedKeys) < 1 || len(h.WrappedKeys) > format.MaxWrappedKeys || h.ChunkSize < format.MinChunkSize || h.ChunkSize > format.MaxChunkSize {
			t.Fatalf("parsed a header outside the limits: %+v", h)
		}
		again, err := format.Build(h, make([]byte, 32))
		if err != nil {
			t.Fatalf("re-encoding a parsed header: %v", err)
		}
		if !bytes.Equal(again[:len(again)-format.TagSize], data[:len(data)-format.TagSize]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, data)
		}
		if !bytes.Equal(data[len(data)-format.TagSize:], h.Tag[:]) {
			t.Fatal("tag not returned")
		}
	})
}
