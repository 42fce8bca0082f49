package names

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/cryptotest"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const (
	vectorsFile = "testdata/vectors.json"
	formatFile  = "../../FORMAT.md"
)

// vectors is testdata/vectors.json, described in FORMAT.md ("Sealed
// names, metadata and tags", "Test vectors").
type vectors struct {
	NameKey         string         `json:"name_key"`
	SegmentKey      string         `json:"segment_key"`
	TagKey          string         `json:"tag_key"`
	NameSealKey     string         `json:"name_seal_key"`
	MetadataSealKey string         `json:"metadata_seal_key"`
	Names           []nameVector   `json:"names"`
	Sealed          []sealedVector `json:"sealed"`
	Tags            []tagVector    `json:"tags"`
}

type nameVector struct {
	Logical string `json:"logical"`
	Stored  string `json:"stored"`
}

type sealedVector struct {
	Kind      string            `json:"kind"` // "name" or "metadata"
	Stored    string            `json:"stored"`
	MessageID string            `json:"message_id"`
	Name      string            `json:"name,omitempty"`     // kind name: the payload
	Metadata  map[string]string `json:"metadata,omitempty"` // kind metadata: the set
	Payload   string            `json:"payload"`            // hex
	Value     string            `json:"value"`
}

type tagVector struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	NameToken  string `json:"name_token"`
	ValueToken string `json:"value_token"`
}

// vectorNameKey is the name key of the vectors: the bytes 00 to 1f.
func vectorNameKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// generateVectors makes the vectors with this package and deterministic
// randomness (the nonces of the sealed values).
func generateVectors(t *testing.T) *vectors {
	nk := vectorNameKey()
	k, err := New(nk)
	if err != nil {
		t.Fatal(err)
	}
	v := &vectors{NameKey: hex.EncodeToString(nk)}
	for _, info := range []struct {
		dst  *string
		info string
	}{{&v.SegmentKey, infoSegments}, {&v.TagKey, infoTags}, {&v.NameSealKey, infoName}, {&v.MetadataSealKey, infoMetadata}} {
		key, err := hkdf.Key(sha256.New, nk, nil, info.info, 32)
		if err != nil {
			t.Fatal(err)
		}
		*info.dst = hex.EncodeToString(key)
	}
	for _, name := range []string{"programs", "programs/x57", "programs/x57/wing-spar-rev-C.step", "other/x57", "Entwürfe/Flügel Holm.step"} {
		stored, err := k.StoredName(name)
		if err != nil {
			t.Fatal(err)
		}
		v.Names = append(v.Names, nameVector{Logical: name, Stored: stored})
	}
	stored := v.Names[2].Stored
	var id [MessageIDSize]byte
	for i := range id {
		id[i] = 0xa0 + byte(i)
	}
	cryptotest.SetGlobalRandom(t, 16)
	for _, s := range []sealedVector{
		{Kind: "name", Name: "programs/x57/wing-spar-rev-C.step"},
		{Kind: "metadata", Metadata: map[string]string{"drawing": "Ti-6Al-4V spar", "rev": "C"}},
		{Kind: "metadata", Metadata: map[string]string{}},
	} {
		s.Stored, s.MessageID = stored, hex.EncodeToString(id[:])
		kind, payload := Name, []byte(s.Name)
		if s.Kind == "metadata" {
			kind = Metadata
			if payload, err = EncodeMetadata(s.Metadata); err != nil {
				t.Fatal(err)
			}
		}
		s.Payload = hex.EncodeToString(payload)
		if s.Value, err = k.Seal(kind, payload, stored, id); err != nil {
			t.Fatal(err)
		}
		v.Sealed = append(v.Sealed, s)
	}
	for _, tag := range [][2]string{{"program", "x57"}, {"program", "x58"}, {"stage", "x57"}} {
		v.Tags = append(v.Tags, tagVector{Name: tag[0], Value: tag[1], NameToken: k.TagName(tag[0]), ValueToken: k.TagValue(tag[0], tag[1])})
	}
	return v
}

func encodeVectors(t *testing.T, v *vectors) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	var v vectors
	if err := loadVectorsInto(&v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func loadVectorsInto(v *vectors) error {
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		return fmt.Errorf("%w (go test -run TestVectors -update writes it)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", vectorsFile, err)
	}
	return nil
}

// TestVectors checks testdata/vectors.json three ways: by hand, from
// FORMAT.md's description with nothing but the primitives; against this
// package; and against the generator, which reproduces the file byte for
// byte.
func TestVectors(t *testing.T) {
	if *update {
		if err := os.WriteFile(vectorsFile, encodeVectors(t, generateVectors(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := loadVectors(t)
	t.Run("ByHand", func(t *testing.T) { checkByHand(t, v) })
	t.Run("Package", func(t *testing.T) { checkPackage(t, v) })
	t.Run("Generator", func(t *testing.T) {
		want, _ := os.ReadFile(vectorsFile)
		if got := encodeVectors(t, generateVectors(t)); !bytes.Equal(got, want) {
			t.Fatalf("the generator no longer reproduces %s (a format change?); run with -update only if the change is intended", vectorsFile)
		}
	})
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkByHand recomputes every vector from FORMAT.md alone.
func checkByHand(t *testing.T, v *vectors) {
	b32 := func(b []byte) string { return strings.TrimRight(strings.ToUpper(base32ByHand(b)), "=") }
	nk := unhex(t, v.NameKey)
	for info, want := range map[string]string{
		"geoseal/names v1 segments":        v.SegmentKey,
		"geoseal/names v1 tags":            v.TagKey,
		"geoseal/names v1 sealed name":     v.NameSealKey,
		"geoseal/names v1 sealed metadata": v.MetadataSealKey,
	} {
		// HKDF-SHA-256, empty salt, L = 32.
		got, _ := hkdf.Key(sha256.New, nk, nil, info, 32)
		if hex.EncodeToString(got) != want {
			t.Errorf("HKDF %q = %x, want %s", info, got, want)
		}
	}
	segKey := unhex(t, v.SegmentKey)
	for _, n := range v.Names {
		c := make([]byte, 32)
		var segs []string
		for _, s := range strings.Split(n.Logical, "/") {
			m := hmac.New(sha256.New, segKey)
			m.Write(c)
			m.Write([]byte(s))
			c = m.Sum(nil)
			segs = append(segs, b32(c[:16]))
		}
		if got := strings.Join(segs, "/"); got != n.Stored {
			t.Errorf("stored name of %q = %q, want %q", n.Logical, got, n.Stored)
		}
	}
	tagKey := unhex(t, v.TagKey)
	for _, tag := range v.Tags {
		m := hmac.New(sha256.New, tagKey)
		m.Write([]byte("name\x00" + tag.Name))
		if got := b32(m.Sum(nil)[:16]); got != tag.NameToken {
			t.Errorf("tag name token of %q = %s, want %s", tag.Name, got, tag.NameToken)
		}
		m = hmac.New(sha256.New, tagKey)
		m.Write([]byte("value\x00"))
		m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(tag.Name))))
		m.Write([]byte(tag.Name + tag.Value))
		if got := b32(m.Sum(nil)[:16]); got != tag.ValueToken {
			t.Errorf("tag value token of %q=%q = %s, want %s", tag.Name, tag.Value, got, tag.ValueToken)
		}
	}
	for _, s := range v.Sealed {
		key, label := v.NameSealKey, "geoseal/names v1 name"
		if s.Kind == "metadata" {
			key, label = v.MetadataSealKey, "geoseal/names v1 metadata"
		}
		raw, err := Encoding.DecodeString(s.Value)
		if err != nil || raw[0] != 0x01 {
			t.Fatalf("sealed %s: %v", s.Kind, err)
		}
		block, _ := aes.NewCipher(unhex(t, key))
		gcm, _ := cipher.NewGCMWithRandomNonce(block) // opens nonce(12) || ciphertext || tag(16)
		pt, err := gcm.Open(nil, nil, raw[1:], []byte(label+"\x00"+s.Stored))
		if err != nil {
			t.Fatalf("sealed %s does not open: %v", s.Kind, err)
		}
		payload := unhex(t, s.Payload)
		want := append(unhex(t, s.MessageID), byte(len(payload)>>8), byte(len(payload)))
		want = append(want, payload...)
		for len(want)%32 != 0 {
			want = append(want, 0)
		}
		if !bytes.Equal(pt, want) {
			t.Errorf("sealed %s opens to %x, want %x", s.Kind, pt, want)
		}
	}
}

// base32ByHand is base32 of RFC 4648 section 6, with padding (the caller
// strips it).
func base32ByHand(b []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var out strings.Builder
	var acc, bits uint
	for _, c := range b {
		acc, bits = acc<<8|uint(c), bits+8
		for bits >= 5 {
			out.WriteByte(alphabet[acc>>(bits-5)&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out.WriteByte(alphabet[acc<<(5-bits)&31])
	}
	return out.String()
}

// checkPackage checks this package against the vectors.
func checkPackage(t *testing.T, v *vectors) {
	k, err := New(unhex(t, v.NameKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range v.Names {
		if got, err := k.StoredName(n.Logical); err != nil || got != n.Stored {
			t.Errorf("StoredName(%q) = %q, %v, want %q", n.Logical, got, err, n.Stored)
		}
	}
	for _, tag := range v.Tags {
		if got := k.TagName(tag.Name); got != tag.NameToken {
			t.Errorf("TagName(%q) = %s, want %s", tag.Name, got, tag.NameToken)
		}
		if got := k.TagValue(tag.Name, tag.Value); got != tag.ValueToken {
			t.Errorf("TagValue(%q, %q) = %s, want %s", tag.Name, tag.Value, got, tag.ValueToken)
		}
	}
	for _, s := range v.Sealed {
		kind := Name
		if s.Kind == "metadata" {
			kind = Metadata
		}
		payload, id, err := k.Open(kind, s.Value, s.Stored)
		if err != nil || hex.EncodeToString(payload) != s.Payload || hex.EncodeToString(id[:]) != s.MessageID {
			t.Errorf("Open(%s) = %x, %x, %v", s.Kind, payload, id, err)
			continue
		}
		switch kind {
		case Name:
			if string(payload) != s.Name {
				t.Errorf("sealed name %q, want %q", payload, s.Name)
			}
		case Metadata:
			md, err := DecodeMetadata(payload)
			if err != nil || len(md) != len(s.Metadata) {
				t.Errorf("DecodeMetadata = %q, %v, want %q", md, err, s.Metadata)
			}
			for mk, mv := range s.Metadata {
				if md[mk] != mv {
					t.Errorf("metadata %q = %q, want %q", mk, md[mk], mv)
				}
			}
		}
	}
}

// TestFormatVectors checks the vectors FORMAT.md quotes, in its code
// block that starts with "name_key", against testdata/vectors.json, so
// the specification a reader implements from is the one the code passes.
func TestFormatVectors(t *testing.T) {
	v := loadVectors(t)
	f, err := os.Open(formatFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{
		"name_key":          v.NameKey,
		"segment_key":       v.SegmentKey,
		"tag_key":           v.TagKey,
		"name_seal_key":     v.NameSealKey,
		"metadata_seal_key": v.MetadataSealKey,
		"logical":           v.Names[2].Logical,
		"stored":            v.Names[2].Stored,
		"message_id":        v.Sealed[0].MessageID,
		"sealed_name":       v.Sealed[0].Value,
		"tag":               v.Tags[0].Name + "=" + v.Tags[0].Value,
		"tag_name_token":    v.Tags[0].NameToken,
		"tag_value_token":   v.Tags[0].ValueToken,
	}
	// The chain values of the stored name, computed here by hand.
	c := make([]byte, 32)
	for i, seg := range strings.Split(v.Names[2].Logical, "/") {
		m := hmac.New(sha256.New, unhex(t, v.SegmentKey))
		m.Write(c)
		m.Write([]byte(seg))
		c = m.Sum(nil)
		want[fmt.Sprintf("c_%d", i+1)] = hex.EncodeToString(c)
	}
	got := map[string]string{}
	var in bool
	var last string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.HasPrefix(line, "name_key "):
			in = true
		case in && line == "```":
			in = false
		}
		if !in {
			continue
		}
		if k, val, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, " ") {
			last = strings.TrimSpace(k)
			got[last] += strings.TrimSpace(val)
		} else if strings.TrimSpace(line) != "" {
			got[last] += strings.TrimSpace(line) // a value continued on the next line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatalf("%s has no vector block starting with name_key", formatFile)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("FORMAT.md: %s = %q, the vectors say %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("FORMAT.md: %s is not checked by this test", k)
		}
	}
}
