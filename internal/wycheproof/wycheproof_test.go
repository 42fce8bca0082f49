package wycheproof

import "testing"

// TestLoadAll decodes every file and checks the shapes the tests rely on.
func TestLoadAll(t *testing.T) {
	for _, name := range []string{AESGCM, AESKeyWrap, AESKeyWrapPad, RSAOAEPSHA1, RSAOAEPSHA256} {
		f := Load(t, name)
		if len(f.TestGroups) == 0 {
			t.Errorf("%s: no test groups", name)
		}
		var valid, invalid int
		for _, g := range f.TestGroups {
			for _, tc := range g.Tests {
				switch {
				case tc.Valid():
					valid++
				case tc.Invalid():
					invalid++
				}
			}
		}
		if valid == 0 || invalid == 0 {
			t.Errorf("%s: %d valid and %d invalid vectors, want some of each", name, valid, invalid)
		}
	}
	for _, name := range []string{RSAOAEPSHA1, RSAOAEPSHA256} {
		f := Load(t, name)
		g := f.TestGroups[0]
		priv, err := g.RSAPrivateKey()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if priv.N.BitLen() != g.KeySize {
			t.Errorf("%s: key of %d bits, group says %d", name, priv.N.BitLen(), g.KeySize)
		}
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read("no_such_file.json"); err == nil {
		t.Fatal("Read of a missing file succeeded")
	}
}
