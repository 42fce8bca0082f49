package keyring

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode"
)

// TestNoMatchErrorQuotesHeaderStrings checks that an object cannot put
// terminal escapes or a fake line into an error message through the strings
// of its wrapped keys: provider, key id and algorithm are untrusted.
func TestNoMatchErrorQuotesHeaderStrings(t *testing.T) {
	ctx := context.Background()
	const hostile = "x\x1b[2J\x1b]0;pwned\x07\nauthenticated: yes\r\u202e"
	k := mustNewAES(t, mustAESKey(t), nil)
	r := mustNewRSAPrivate(t, rsaTestKey(t, 0), nil)
	for _, tc := range []struct {
		name string
		u    Unwrapper
		keys []WrappedKey
	}{
		{"offered, none owned", k, []WrappedKey{{Provider: hostile, KeyID: hostile, Algorithm: hostile, Ciphertext: []byte{1}}}},
		{"owned, hostile algorithm", k, []WrappedKey{{Provider: ProviderAES, KeyID: k.KeyID(), Algorithm: hostile, Ciphertext: make([]byte, 60)}}},
		{"rsa, hostile algorithm", r, []WrappedKey{{Provider: ProviderRSA, KeyID: r.KeyID(), Algorithm: hostile}}},
		{"multi", NewMulti(k, r), []WrappedKey{
			{Provider: hostile, KeyID: hostile, Algorithm: hostile},
			{Provider: ProviderAES, KeyID: k.KeyID(), Algorithm: hostile},
		}},
		{"cache", NewCache(k, nil), []WrappedKey{{Provider: ProviderAES, KeyID: k.KeyID(), Algorithm: hostile}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.u.Unwrap(ctx, tc.keys, nil)
			var nm *NoMatchError
			if !errors.As(err, &nm) {
				t.Fatalf("got %v, want a *NoMatchError", err)
			}
			msg := err.Error()
			for _, c := range msg {
				if !unicode.IsPrint(c) {
					t.Fatalf("error text carries the raw character %U from the object: %q", c, msg)
				}
			}
			if !strings.Contains(msg, `\x1b[2J`) || !strings.Contains(msg, `\nauthenticated: yes`) {
				t.Fatalf("error text does not show the hostile string escaped: %q", msg)
			}
		})
	}
}
