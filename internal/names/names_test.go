package names

import (
	"bytes"
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	key := make([]byte, KeySize)
	rand.Read(key)
	k, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testMessageID() (id [MessageIDSize]byte) {
	rand.Read(id[:])
	return id
}

// storedNameRE is what every stored name looks like: segments of
// SegmentLength uppercase base32 characters.
var storedNameRE = regexp.MustCompile(`^[A-Z2-7]{26}(/[A-Z2-7]{26})*$`)

func TestCheckName(t *testing.T) {
	deepest := strings.Repeat("d/", MaxSegments-1) + "f"
	longest := strings.Repeat("n", MaxNameLength)
	tests := []struct {
		name    string
		logical string
		ok      bool
	}{
		{"one segment", "part.step", true},
		{"a path", "programs/x57/wing-spar-rev-C.step", true},
		{"spaces and unicode", "Entwürfe/Flügel Holm.step", true},
		{"dots are plain segments", "a/./../b", true},
		{"deepest", deepest, true},
		{"longest", longest, true},
		{"empty", "", false},
		{"leading slash", "/programs/x57", false},
		{"trailing slash", "programs/x57/", false},
		{"doubled slash", "programs//x57", false},
		{"only a slash", "/", false},
		{"too deep", "d/" + deepest, false},
		{"too long", longest + "n", false},
		{"not UTF-8", "programs/\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.logical)
			if tt.ok && err != nil {
				t.Fatalf("CheckName: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("CheckName = %v, want ErrInvalidName", err)
			}
			stored, err := testKeys(t).StoredName(tt.logical)
			if !tt.ok {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("StoredName = %q, %v, want ErrInvalidName", stored, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !storedNameRE.MatchString(stored) || len(stored) > MaxNameLength {
				t.Fatalf("stored name %q (%d characters)", stored, len(stored))
			}
			if got, want := strings.Count(stored, "/"), strings.Count(tt.logical, "/"); got != want {
				t.Fatalf("stored name has %d slashes, the logical name %d", got, want)
			}
		})
	}
}

func TestStoredName(t *testing.T) {
	k := testKeys(t)
	stored := func(name string) string {
		t.Helper()
		s, err := k.StoredName(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	file := stored("programs/x57/wing-spar-rev-C.step")
	if file != stored("programs/x57/wing-spar-rev-C.step") {
		t.Fatal("one name gave two stored names")
	}
	// A directory's stored name prefixes what is under it.
	if dir := stored("programs/x57"); !strings.HasPrefix(file, dir+"/") {
		t.Fatalf("%q is not under %q", file, dir)
	}
	// Equal segments in different directories look different, and so do
	// the same segments under another name key.
	a, b := stored("a/spar"), stored("b/spar")
	if a[strings.LastIndex(a, "/"):] == b[strings.LastIndex(b, "/"):] {
		t.Fatal("one segment under two directories gave one stored segment")
	}
	if other, _ := testKeys(t).StoredName("programs/x57/wing-spar-rev-C.step"); other == file {
		t.Fatal("two name keys gave one stored name")
	}
	if stored("a") == stored("A") || stored("a/b") == stored("ab") {
		t.Fatal("distinct names gave one stored name")
	}
}

func TestStoredPrefix(t *testing.T) {
	k := testKeys(t)
	dir, _ := k.StoredName("programs/x57")
	tests := []struct {
		prefix string
		want   string
		ok     bool
	}{
		{"", "", true},
		{"programs/x57/", dir + "/", true},
		{"programs/x57", dir, true},
		{"programs//", "", false},
		{"/", "", false},
	}
	for _, tt := range tests {
		got, err := k.StoredPrefix(tt.prefix)
		switch {
		case tt.ok && (err != nil || got != tt.want):
			t.Errorf("StoredPrefix(%q) = %q, %v, want %q", tt.prefix, got, err, tt.want)
		case !tt.ok && !errors.Is(err, ErrInvalidName):
			t.Errorf("StoredPrefix(%q) = %q, %v, want ErrInvalidName", tt.prefix, got, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	k := testKeys(t)
	id := testMessageID()
	const stored = "AAAAAAAAAAAAAAAAAAAAAAAAAA/BBBBBBBBBBBBBBBBBBBBBBBBBB"
	name := []byte("programs/x57/wing-spar-rev-C.step")
	sealed, err := k.Seal(Name, name, stored, id)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Z2-7]+$`).MatchString(sealed) {
		t.Fatalf("sealed value %q is not uppercase base32", sealed)
	}
	got, gotID, err := k.Open(Name, sealed, stored)
	if err != nil || !bytes.Equal(got, name) || gotID != id {
		t.Fatalf("Open = %q, %x, %v", got, gotID, err)
	}
	again, _ := k.Seal(Name, name, stored, id)
	if again == sealed {
		t.Fatal("two seals of one name are equal: the nonce is not random")
	}

	raw, _ := Encoding.DecodeString(sealed)
	flipped := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return Encoding.EncodeToString(b)
	}
	tests := []struct {
		name   string
		keys   *Keys
		kind   Kind
		value  string
		stored string
	}{
		{"moved to another blob", k, Name, sealed, "AAAAAAAAAAAAAAAAAAAAAAAAAA/CCCCCCCCCCCCCCCCCCCCCCCCCC"},
		{"opened as metadata", k, Metadata, sealed, stored},
		{"another name key", testKeys(t), Name, sealed, stored},
		{"version byte", k, Name, flipped(0), stored},
		{"nonce", k, Name, flipped(1), stored},
		{"ciphertext", k, Name, flipped(20), stored},
		{"tag", k, Name, flipped(len(raw) - 1), stored},
		{"truncated", k, Name, Encoding.EncodeToString(raw[:len(raw)-1]), stored},
		{"extended", k, Name, Encoding.EncodeToString(append(bytes.Clone(raw), 0)), stored},
		{"lower case", k, Name, strings.ToLower(sealed), stored},
		{"padded base32", k, Name, sealed + "====", stored},
		{"empty", k, Name, "", stored},
		{"over-long", k, Name, strings.Repeat("A", MaxSealedLength(Name)+1), stored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := tt.keys.Open(tt.kind, tt.value, tt.stored)
			if !errors.Is(err, ErrTampered) || p != nil {
				t.Fatalf("Open = %q, %v, want ErrTampered", p, err)
			}
		})
	}
}

func TestSealLength(t *testing.T) {
	k := testKeys(t)
	id := testMessageID()
	length := func(kind Kind, n int) int {
		t.Helper()
		s, err := k.Seal(kind, bytes.Repeat([]byte("n"), n), "S", id)
		if err != nil {
			t.Fatal(err)
		}
		return len(s)
	}
	// Padding hides the exact length: names of 1 and 30 bytes seal alike.
	if a, b := length(Name, 1), length(Name, 30); a != b {
		t.Fatalf("names of 1 and 30 bytes seal to %d and %d characters", a, b)
	}
	if a, b := length(Name, 30), length(Name, 31); a == b {
		t.Fatalf("names of 30 and 31 bytes both seal to %d characters: the padding is not what FORMAT.md says", a)
	}
	if got, want := length(Name, MaxNameLength), MaxSealedLength(Name); got != want {
		t.Fatalf("the longest name seals to %d characters, MaxSealedLength says %d", got, want)
	}
	if got, want := length(Metadata, MaxMetadataSize), MaxSealedLength(Metadata); got != want {
		t.Fatalf("the largest metadata seals to %d characters, MaxSealedLength says %d", got, want)
	}
	for _, kind := range []Kind{Name, Metadata} {
		max := MaxNameLength
		if kind == Metadata {
			max = MaxMetadataSize
		}
		if _, err := k.Seal(kind, make([]byte, max+1), "S", id); err == nil {
			t.Fatalf("sealed %d bytes of kind %d", max+1, kind)
		}
	}
	// What a blob under SealNames carries fits the service's 8 KiB of
	// metadata with room for geoseal's own entries.
	if n := MaxSealedLength(Name) + MaxSealedLength(Metadata) + len("geosealname") + len("geosealmetadata"); n > 8<<10-512 {
		t.Fatalf("the largest sealed entries take %d bytes of the service's 8192", n)
	}
}

func TestUnpad(t *testing.T) {
	frame := func(n int, payload []byte, size int) []byte {
		pt := make([]byte, size)
		pt[MessageIDSize] = byte(n >> 8)
		pt[MessageIDSize+1] = byte(n)
		copy(pt[MessageIDSize+2:], payload)
		return pt
	}
	tests := []struct {
		name string
		pt   []byte
		ok   bool
	}{
		{"empty payload", frame(0, nil, 64), true},
		{"payload", frame(3, []byte("abc"), 64), true},
		{"fills the block", frame(30, bytes.Repeat([]byte("a"), 30), 64), true},
		{"nonzero padding", append(frame(3, []byte("abc"), 63), 1), false},
		{"length past the end", frame(40, nil, 64), false},
		{"too much padding", frame(3, []byte("abc"), 96), false},
		{"not a block multiple", frame(3, []byte("abc"), 65), false},
		{"shorter than the framing", make([]byte, MessageIDSize+1), false},
	}
	for _, tt := range tests {
		p, err := unpad(tt.pt)
		if tt.ok != (err == nil) || !tt.ok && !errors.Is(err, ErrTampered) {
			t.Errorf("%s: unpad = %q, %v", tt.name, p, err)
		}
	}
}

func TestMetadataEncoding(t *testing.T) {
	md := map[string]string{"drawing": "Ti-6Al-4V spar", "a": "", "rev": "C"}
	enc, err := EncodeMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("\x00\x03" + "\x01a\x00\x00" + "\x07drawing\x00\x0eTi-6Al-4V spar" + "\x03rev\x00\x01C")
	if !bytes.Equal(enc, want) {
		t.Fatalf("EncodeMetadata = %q, want %q", enc, want)
	}
	got, err := DecodeMetadata(enc)
	if err != nil || len(got) != len(md) || got["drawing"] != md["drawing"] || got["a"] != "" {
		t.Fatalf("DecodeMetadata = %q, %v", got, err)
	}
	if enc, err := EncodeMetadata(nil); err != nil || !bytes.Equal(enc, []byte{0, 0}) {
		t.Fatalf("EncodeMetadata(nil) = %x, %v", enc, err)
	}

	for _, bad := range []map[string]string{
		{"": "empty name"},
		{strings.Repeat("n", 256): "long name"},
		{"big": strings.Repeat("v", MaxMetadataSize)},
	} {
		if _, err := EncodeMetadata(bad); err == nil {
			t.Errorf("EncodeMetadata accepted %d bytes of names", len(bad))
		}
	}
	for name, data := range map[string]string{
		"truncated count":    "\x00",
		"truncated pair":     "\x00\x01\x01a\x00",
		"empty name":         "\x00\x01\x00\x00\x00",
		"out of order":       "\x00\x02\x01b\x00\x00\x01a\x00\x00",
		"repeated":           "\x00\x02\x01a\x00\x00\x01a\x00\x00",
		"trailing bytes":     "\x00\x00\x00",
		"count past the end": "\xff\xff\x01a\x00\x00",
		"value past the end": "\x00\x01\x01a\x00\x09ab",
	} {
		if md, err := DecodeMetadata([]byte(data)); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: DecodeMetadata = %q, %v, want ErrTampered", name, md, err)
		}
	}
}

func TestTagTokens(t *testing.T) {
	k := testKeys(t)
	token := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	name, value := k.TagName("program"), k.TagValue("program", "x57")
	for _, s := range []string{name, value} {
		if !token.MatchString(s) {
			t.Fatalf("token %q", s)
		}
	}
	if k.TagValue("program", "x57") != value || k.TagName("program") != name {
		t.Fatal("a tag gave two tokens")
	}
	distinct := []string{name, value, k.TagValue("program", "x58"), k.TagValue("project", "x57"), k.TagName("x57"), testKeys(t).TagValue("program", "x57")}
	seen := map[string]bool{}
	for _, s := range distinct {
		if seen[s] {
			t.Fatalf("token %q for two different inputs", s)
		}
		seen[s] = true
	}
}

func TestCheckTag(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"program", "x57", true},
		{"program", "", true},
		{strings.Repeat("n", MaxTagNameLength), strings.Repeat("v", MaxTagValueLength), true},
		{"", "x", false},
		{strings.Repeat("n", MaxTagNameLength+1), "x", false},
		{"program", strings.Repeat("v", MaxTagValueLength+1), false},
	} {
		if err := CheckTag(tt.name, tt.value); (err == nil) != tt.ok {
			t.Errorf("CheckTag(%d bytes, %d bytes) = %v", len(tt.name), len(tt.value), err)
		}
	}
}

func TestNewKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New accepted a name key of %d bytes", n)
		}
	}
}
