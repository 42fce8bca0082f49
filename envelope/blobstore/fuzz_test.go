package blobstore

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/geoseal/geoseal/stream"
)

// FuzzMetadata feeds arbitrary metadata values, blob sizes and ranges to
// the metadata parser, the layout and the read planner: no panic, and any
// plan they accept stays inside the body, never fetches the final chunk,
// and covers the range asked for.
func FuzzMetadata(f *testing.F) {
	f.Add("v1", "230", "4096", "1", "163000", int64(230+stream.EncryptedSize(163000, &stream.Options{ChunkSize: 4096})), int64(5000), int64(100), int64(16))
	f.Add("v1", "230", "65536", "1", "0", int64(258), int64(0), int64(0), int64(1))
	f.Add("v2", "-1", "3", "9", "x", int64(-5), int64(-1), int64(1<<62), int64(0))
	f.Add("v1", "124", "16777216", "1", "4611686018427387904", int64(1<<62), int64(1<<62), int64(1<<62), int64(1<<40))
	f.Fuzz(func(t *testing.T, version, hl, cs, suite, ps string, total, off, count, perPiece int64) {
		md := map[string]*string{
			metaVersion:       &version,
			metaHeaderLength:  &hl,
			metaChunkSize:     &cs,
			metaSuite:         &suite,
			metaPlaintextSize: &ps,
		}
		m, ok, err := parseObjectMetadata(md)
		if err != nil || !ok || total < 0 {
			return
		}
		l, err := newLayout(m.headerLength, m.chunkSize, m.suite, total)
		if err != nil {
			return
		}
		opts := &stream.Options{ChunkSize: m.chunkSize, Suite: m.suite}
		if l.chunks < 1 || l.headerLen+l.bodySize != total || stream.EncryptedSize(l.size, opts) != l.bodySize {
			t.Fatalf("layout %+v inconsistent with a blob of %d bytes", l, total)
		}
		if fl := l.bodySize - l.finalOff(); fl <= 0 || fl > l.enc {
			t.Fatalf("layout %+v: final chunk of %d bytes", l, fl)
		}
		if off < 0 || count <= 0 || off >= l.size || perPiece <= 0 {
			return
		}
		end := min(off+count, l.size)
		if end <= off {
			return
		}
		next := off
		finalStart := (l.chunks - 1) * l.chunk
		for _, p := range l.pieces(off, end, perPiece) {
			if p.lo != next || p.hi <= p.lo || p.hi > min(end, finalStart) {
				t.Fatalf("layout %+v, range [%d, %d): piece [%d, %d) after %d", l, off, end, p.lo, p.hi, next)
			}
			so, n := l.span(p.lo, p.hi)
			if so < 0 || so+n > l.finalOff() || n > perPiece*l.enc || so%l.enc != 0 || n%l.enc != 0 {
				t.Fatalf("layout %+v: piece [%d, %d) fetches body [%d, %d)", l, p.lo, p.hi, so, so+n)
			}
			next = p.hi
		}
		if next != min(end, max(off, finalStart)) && next != end {
			t.Fatalf("layout %+v, range [%d, %d): pieces end at %d", l, off, end, next)
		}
	})
}

// FuzzCheckpoint feeds arbitrary blobs to the checkpoint parser: a blob in
// the job prefix may have been written by anyone. No panic, and what it
// accepts saves back to the same state.
func FuzzCheckpoint(f *testing.F) {
	f.Add([]byte(`{"format":"geoseal-checkpoint/1","job":"j","operation":"rewrap-all","params":"keys:00","prefix":"a/","shard":1,"shards":4,"marker":"2!80!xyz","skip":"b","done":false,"counts":{"rotated":3},"updated":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":"geoseal-checkpoint/1","counts":{"rotated":-1}}`))
	f.Add([]byte(`{"format":"geoseal-checkpoint/1"} {}`))
	f.Add([]byte(`{"format":"other"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseCheckpoint(data)
		if err != nil {
			if !errors.Is(err, ErrJobMismatch) {
				t.Fatalf("error %v does not match ErrJobMismatch", err)
			}
			return
		}
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := parseCheckpoint(again)
		if err != nil || st2.Marker != st.Marker || st2.Skip != st.Skip || len(st2.Counts) != len(st.Counts) {
			t.Fatalf("%s reparsed as %+v, %v", again, st2, err)
		}
	})
}

// FuzzRetryAfter feeds arbitrary throttling headers to the back-off: it
// never waits less than nothing or more than maxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{"0", "7", "Tue, 01 Dec 2026 00:00:00 GMT", "-3", "99999999999999999999", "1.5"} {
		f.Add(v, v, v)
	}
	f.Fuzz(func(t *testing.T, ra, ms, xms string) {
		d := retryAfter(http.Header{"Retry-After": {ra}, "Retry-After-Ms": {ms}, "X-Ms-Retry-After-Ms": {xms}})
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q, retry-after-ms %q, x-ms-retry-after-ms %q: wait %v", ra, ms, xms, d)
		}
	})
}

// FuzzListing feeds arbitrary geoseal and "encryptiondata" metadata and
// blob sizes to the classification a listing reports: no panic, a known
// format, and a size that is -1 or consistent with the blob's.
func FuzzListing(f *testing.F) {
	f.Add("v1", "230", "4096", `{"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"},"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12},"WrappedContentKey":{"KeyId":"k","EncryptedKey":"AAAA","Algorithm":"A256KW"}}`, int64(5000), true, false)
	f.Add("", "", "", `{"EncryptionAgent":{"Protocol":"1.0"}}`, int64(16), false, true)
	f.Add("", "", "", v1EncryptionData, int64(32), false, true)
	f.Add("", "", "", `not json`, int64(0), false, true)
	f.Add("v1", "124", "65536", "", int64(-1), true, false)
	f.Fuzz(func(t *testing.T, version, hl, ps, ed string, stored int64, geoseal, cse bool) {
		md := map[string]*string{}
		if geoseal {
			cs, suite := "4096", "1"
			md[metaVersion], md[metaHeaderLength], md[metaChunkSize], md[metaSuite], md[metaPlaintextSize] = &version, &hl, &cs, &suite, &ps
		}
		if cse {
			md["encryptiondata"] = &ed
		}
		f := formatOf(md)
		switch f {
		case FormatGeoseal, FormatCSEv2, FormatCSEv1, FormatNotEncrypted, FormatUnknown:
		default:
			t.Fatalf("format %q", f)
		}
		if stored < 0 {
			return
		}
		n := listedSize(f, md, stored)
		if n < -1 || n > stored {
			t.Fatalf("%s blob of %d bytes: plaintext size %d", f, stored, n)
		}
		if f == FormatNotEncrypted && n != stored {
			t.Fatalf("a plain blob of %d bytes lists as %d", stored, n)
		}
	})
}
