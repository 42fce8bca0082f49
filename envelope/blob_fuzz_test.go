package envelope

import (
	"testing"

	"github.com/geoseal/geoseal/stream"
)

// FuzzBlobMetadata feeds arbitrary metadata values and blob sizes to the
// parser and the range planner: no panic, and any plan they accept stays
// inside the blob and covers the range asked for.
func FuzzBlobMetadata(f *testing.F) {
	f.Add("v1", "230", "4096", "1", "163000", int64(230+stream.EncryptedSize(163000, &stream.Options{ChunkSize: 4096})), int64(5000), int64(100))
	f.Add("v1", "230", "65536", "2", "0", int64(270), int64(0), int64(0))
	f.Add("v2", "-1", "3", "9", "x", int64(-5), int64(-1), int64(1<<62))
	f.Add("v1", "124", "16777216", "1", "4611686018427387904", int64(1<<62), int64(1<<62), int64(1<<62))
	f.Fuzz(func(t *testing.T, version, hl, cs, suite, ps string, total, off, count int64) {
		md := map[string]*string{
			metaVersion:       &version,
			metaHeaderLength:  &hl,
			metaChunkSize:     &cs,
			metaSuite:         &suite,
			metaPlaintextSize: &ps,
		}
		m, ok, err := parseObjectMetadata(md)
		if err != nil || !ok {
			return
		}
		if total < 0 || off < 0 || count < 0 {
			return
		}
		p, err := planRange(m, total, off, count)
		if err != nil {
			return
		}
		hlen := int64(m.headerLength)
		if p.start > p.end || p.end > p.size {
			t.Fatalf("plan %+v: plaintext range out of order", p)
		}
		if p.start < p.end {
			if p.spanStart < hlen || p.spanEnd > total || p.spanStart >= p.spanEnd {
				t.Fatalf("plan %+v outside the body [%d, %d)", p, hlen, total)
			}
			enc := stream.EncryptedSize(int64(m.chunkSize), &stream.Options{ChunkSize: m.chunkSize, Suite: m.suite})
			first := (p.spanStart - hlen) / enc * int64(m.chunkSize)
			last := min((p.spanEnd-hlen+enc-1)/enc*int64(m.chunkSize), p.size)
			if first > p.start || last < p.end {
				t.Fatalf("plan %+v does not cover [%d, %d)", p, p.start, p.end)
			}
		} else if !p.finalSeparate || p.finalStart < hlen || p.finalEnd != total || p.finalStart > p.finalEnd {
			t.Fatalf("empty range plan %+v does not fetch the final chunk", p)
		}
	})
}

// FuzzContentRange checks the Content-Range parser never panics and
// returns no negative size.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1234", "bytes 0-0/1", "bytes */0", "garbage", "bytes 0-1/-5", "/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := totalSize(&s, nil)
		if err == nil && n < 0 {
			t.Fatalf("%q: size %d", s, n)
		}
	})
}
