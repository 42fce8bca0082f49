package blobstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/geoseal/geoseal/internal/names"
)

// FuzzSealedEntries feeds arbitrary sealed name and metadata values and
// stored names to what reads a sealed blob's metadata (a listing, Open):
// no panic, every refusal ErrNameTampered, and what it accepts names a
// blob that is stored where it was found and whose metadata fits the
// limit.
func FuzzSealedEntries(f *testing.F) {
	key := make([]byte, names.KeySize)
	keys, err := names.New(key)
	if err != nil {
		f.Fatal(err)
	}
	var id [names.MessageIDSize]byte
	stored, _ := keys.StoredName(sealedName)
	sn, _ := keys.Seal(names.Name, []byte(sealedName), stored, id)
	payload, _ := encodeUserMetadata(sealedMetadata())
	sm, _ := keys.Seal(names.Metadata, payload, stored, id)
	f.Add(sn, sm, stored)
	f.Add(sn, sm, stored+"/X")
	f.Add(sm, sn, stored)
	f.Add("", "", "")
	f.Add(strings.Repeat("A", 1<<16), "A", stored)
	f.Fuzz(func(t *testing.T, name, metadata, stored string) {
		md := map[string]*string{metaSealedName: &name, metaSealedMetadata: &metadata}
		e, err := openSealed(keys, md, stored)
		if err != nil {
			if !errors.Is(err, ErrNameTampered) {
				t.Fatalf("openSealed failed with %v, not ErrNameTampered", err)
			}
			return
		}
		if s, err := keys.StoredName(e.logical); err != nil || s != stored {
			t.Fatalf("accepted the name %q for the blob %q (it is stored as %q, %v)", e.logical, stored, s, err)
		}
		if _, err := encodeUserMetadata(e.metadata); err != nil {
			t.Fatalf("accepted metadata that cannot be sealed again: %v", err)
		}
	})
}

// FuzzCacheControl checks that what a sealed upload accepts as
// Cache-Control holds no text: directive names, digits and separators.
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{"no-store", "private, max-age=3600", `private="x57"`, "max-age=", "Max-Age=10,immutable", "x57"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !standardCacheControl(v) {
			return
		}
		for _, r := range strings.ToLower(v) {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-=, \t", r)) {
				t.Fatalf("accepted %q, with %q", v, r)
			}
		}
		for d := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			if !strings.Contains(" no-cache no-store no-transform must-revalidate proxy-revalidate must-understand private public immutable max-age s-maxage stale-while-revalidate stale-if-error ", " "+strings.ToLower(name)+" ") {
				t.Fatalf("accepted %q, with the directive %q", v, name)
			}
		}
	})
}
