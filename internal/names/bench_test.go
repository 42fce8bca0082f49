package names

import "testing"

// The costs a sealed client adds per operation: a stored name per call
// that takes a name, a seal of the name and of the metadata per upload, an
// open of both per listed blob.

func BenchmarkStoredName(b *testing.B) {
	k := testKeys(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.StoredName("programs/x57/wing-spar-rev-C.step"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	k := testKeys(b)
	id := testMessageID()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(Name, []byte("programs/x57/wing-spar-rev-C.step"), "S", id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := testKeys(b)
	sealed, err := k.Seal(Name, []byte("programs/x57/wing-spar-rev-C.step"), "S", testMessageID())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.Open(Name, sealed, "S"); err != nil {
			b.Fatal(err)
		}
	}
}
