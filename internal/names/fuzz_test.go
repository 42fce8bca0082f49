package names

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// fuzzKeys are the vectors' keys, so that the seeds open.
func fuzzKeys(f *testing.F) *Keys {
	k, err := New(vectorNameKey())
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// FuzzOpen feeds arbitrary sealed values and stored names to the parser
// of sealed values, and arbitrary plaintexts sealed with the real key (to
// reach the framing behind the authentication): no panic, nothing longer
// than MaxSealedLength decoded, every failure ErrTampered, and what opens
// is a payload within its kind's limit that seals back to a value that
// opens to it.
func FuzzOpen(f *testing.F) {
	k := fuzzKeys(f)
	var seeds vectors
	if err := loadVectorsInto(&seeds); err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds.Sealed {
		kind := byte(0)
		if s.Kind == "metadata" {
			kind = 1
		}
		f.Add(kind, s.Value, s.Stored, []byte(nil))
		f.Add(kind, s.Value[:len(s.Value)-1], s.Stored, []byte(nil))
		f.Add(kind, s.Value, s.Stored+"/X", []byte(nil))
	}
	f.Add(byte(0), "", "", make([]byte, 64))
	f.Add(byte(1), "AE", "S", append(make([]byte, 33), 3, 'a', 'b', 'c'))
	f.Add(byte(0), strings.Repeat("A", MaxSealedLength(Name)+1), "S", make([]byte, 65))
	f.Fuzz(func(t *testing.T, kindByte byte, value, stored string, plaintext []byte) {
		kind := Kind(kindByte % 2)
		if len(plaintext) > 0 && len(plaintext) <= paddedLen(maxPayload) {
			aead, label := k.aead(kind)
			value = Encoding.EncodeToString(aead.Seal([]byte{sealVersion}, nil, plaintext, aad(label, stored)))
		}
		payload, id, err := k.Open(kind, value, stored)
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Open failed with %v, not ErrTampered", err)
			}
			return
		}
		max := MaxNameLength
		if kind == Metadata {
			max = MaxMetadataSize
		}
		if len(payload) > max {
			t.Fatalf("opened a payload of %d bytes, at most %d", len(payload), max)
		}
		again, err := k.Seal(kind, payload, stored, id)
		if err != nil {
			t.Fatal(err)
		}
		if p, id2, err := k.Open(kind, again, stored); err != nil || !bytes.Equal(p, payload) || id2 != id {
			t.Fatalf("resealed value does not open back: %v", err)
		}
	})
}

// FuzzDecodeMetadata feeds arbitrary payloads to the metadata set decoder:
// no panic, and what it accepts is canonical (encodes back to the input).
func FuzzDecodeMetadata(f *testing.F) {
	var seeds vectors
	if err := loadVectorsInto(&seeds); err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds.Sealed {
		if s.Kind == "metadata" {
			p, _ := hex.DecodeString(s.Payload)
			f.Add(p)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x02\x01b\x00\x00\x01a\x00\x00"))
	f.Add([]byte("\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := DecodeMetadata(data)
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("DecodeMetadata failed with %v, not ErrTampered", err)
			}
			return
		}
		enc, err := EncodeMetadata(md)
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("accepted %x, which encodes back to %x (%v)", data, enc, err)
		}
	})
}

// FuzzStoredName feeds arbitrary logical names to the name mapping: no
// panic; an accepted name maps to segments of SegmentLength base32
// characters, one per logical segment, within the service's limit, its
// parent directory to a prefix of it; a refused one is ErrInvalidName.
func FuzzStoredName(f *testing.F) {
	k := fuzzKeys(f)
	for _, s := range []string{"programs/x57/wing-spar-rev-C.step", "a", "/", "a//b", "a/", strings.Repeat("x/", MaxSegments), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, logical string) {
		stored, err := k.StoredName(logical)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("StoredName failed with %v, not ErrInvalidName", err)
			}
			return
		}
		if !storedNameRE.MatchString(stored) || len(stored) > MaxNameLength ||
			strings.Count(stored, "/") != strings.Count(logical, "/") {
			t.Fatalf("StoredName(%q) = %q", logical, stored)
		}
		if i := strings.LastIndex(logical, "/"); i > 0 {
			dir, err := k.StoredPrefix(logical[:i+1])
			if err != nil || !strings.HasPrefix(stored, dir) {
				t.Fatalf("StoredPrefix(%q) = %q, %v: not a prefix of %q", logical[:i+1], dir, err, stored)
			}
		}
	})
}
