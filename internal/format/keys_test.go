package format_test

import (
	"bytes"
	"context"
	"crypto/fips140"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/internal/formattest"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// countingKeyring counts the Unwrap calls that reach the keyring it wraps.
type countingKeyring struct {
	keyring.Keyring
	unwraps atomic.Int64
}

func (c *countingKeyring) Unwrap(ctx context.Context, keys []keyring.WrappedKey, ec keyring.Context) ([]byte, error) {
	c.unwraps.Add(1)
	return c.Keyring.Unwrap(ctx, keys, ec)
}

func TestNewUnlock(t *testing.T) {
	ctx := context.Background()
	kr := formattest.NewAES(t)
	ec := keyring.Context{"project": "x-57", "classification": "ECCN 9E003"}
	hdr, body, err := format.New(ctx, kr, &format.Params{Context: ec, ChunkSize: 1 << 14})
	if err != nil {
		t.Fatal(err)
	}
	if len(body.Key) != stream.KeySize {
		t.Fatalf("content key of %d bytes", len(body.Key))
	}
	if n, err := format.HeaderLength(hdr[:format.PrefixSize]); err != nil || n != len(hdr) {
		t.Fatalf("HeaderLength = %d, %v; header has %d bytes", n, err, len(hdr))
	}

	h, body2, err := format.Unlock(ctx, hdr, kr, &format.UnlockOptions{RequireContext: keyring.Context{"project": "x-57"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body.Key, body2.Key) {
		t.Error("Unlock derived another content key")
	}
	if h.Suite != stream.AES256GCM || h.ChunkSize != 1<<14 || h.Size != len(hdr) {
		t.Errorf("header = %+v", h)
	}
	if len(h.Context) != 2 || !h.Context.Contains(ec) {
		t.Errorf("context = %v, want %v", h.Context, ec)
	}
	if len(h.WrappedKeys) != 1 || h.WrappedKeys[0].Provider != keyring.ProviderAES || h.WrappedKeys[0].KeyID != kr.KeyID() {
		t.Errorf("wrapped keys = %+v", h.WrappedKeys)
	}
	wantAAD := append([]byte("geoseal\x00\x01\x01\x0e"), h.MessageID[:]...)
	for i, b := range []*format.Body{body, body2} {
		if b.Options.ChunkSize != 1<<14 || b.Options.Suite != stream.AES256GCM || b.Options.Concurrency != 0 || !bytes.Equal(b.Options.AAD, wantAAD) {
			t.Errorf("body %d options = %+v, want AAD %x", i, b.Options, wantAAD)
		}
	}

	// Parse sees the same header without any key.
	ph, err := format.Parse(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if ph.MessageID != h.MessageID || ph.Commitment != h.Commitment || ph.Size != h.Size || ph.Tag != h.Tag || !ph.Context.Contains(ec) {
		t.Errorf("Parse = %+v, want %+v", ph, h)
	}

	body.Zero()
	if !bytes.Equal(body.Key, make([]byte, stream.KeySize)) {
		t.Error("Body.Zero left key bytes")
	}
}

func TestNewParams(t *testing.T) {
	ctx := context.Background()
	kr := &countingKeyring{Keyring: formattest.NewAES(t)}
	tests := []struct {
		name      string
		p         *format.Params
		chunkSize int   // of the header made, if it succeeds
		want      error // nil: success; errAny: any error
	}{
		{"nil", nil, stream.DefaultChunkSize, nil},
		{"default chunk size", &format.Params{}, stream.DefaultChunkSize, nil},
		{"4 KiB", &format.Params{ChunkSize: 4096}, 4096, nil},
		{"1 MiB", &format.Params{ChunkSize: 1 << 20}, 1 << 20, nil},
		{"16 MiB", &format.Params{ChunkSize: 16 << 20}, 16 << 20, nil},
		{"chunk size 1", &format.Params{ChunkSize: 1}, 0, errAny},
		{"chunk size 4095", &format.Params{ChunkSize: 4095}, 0, errAny},
		{"chunk size 4097", &format.Params{ChunkSize: 4097}, 0, errAny},
		{"chunk size 12 KiB", &format.Params{ChunkSize: 3 << 12}, 0, errAny},
		{"chunk size 32 MiB", &format.Params{ChunkSize: 32 << 20}, 0, errAny},
		{"negative chunk size", &format.Params{ChunkSize: -4096}, 0, errAny},
		{"empty context key", &format.Params{Context: keyring.Context{"": "x"}}, 0, keyring.ErrInvalidContext},
		{"unknown suite", &format.Params{Suite: stream.Suite(99)}, 0, format.ErrUnsupportedSuite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := kr.unwraps.Load()
			hdr, body, err := format.New(ctx, kr, tt.p)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want == errAny && err == nil, tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Fatalf("New: %v, want %v", err, tt.want)
			case err != nil:
				if hdr != nil || body != nil {
					t.Error("New returned a header or body with an error")
				}
				return
			}
			h, err := format.Parse(hdr)
			if err != nil {
				t.Fatal(err)
			}
			if h.ChunkSize != tt.chunkSize || body.Options.ChunkSize != tt.chunkSize {
				t.Errorf("chunk size: header %d, body %d, want %d", h.ChunkSize, body.Options.ChunkSize, tt.chunkSize)
			}
			if kr.unwraps.Load() != before {
				t.Error("New unwrapped")
			}
		})
	}
	t.Run("nil keyring", func(t *testing.T) {
		if _, _, err := format.New(ctx, nil, nil); err == nil {
			t.Error("New with a nil keyring succeeded")
		}
	})
	t.Run("ChaCha20-Poly1305", func(t *testing.T) {
		_, _, err := format.New(ctx, kr, &format.Params{Suite: stream.ChaCha20Poly1305})
		if fips140.Enforced() {
			if !errors.Is(err, stream.ErrNotApproved) {
				t.Errorf("in FIPS 140-only mode: %v, want stream.ErrNotApproved", err)
			}
		} else if err != nil {
			t.Error(err)
		}
	})
}

// errAny in a table means that any error will do.
var errAny = errors.New("any error")

// TestHeaderBitFlips flips every bit of a header, in turn, and checks that
// unlocking it fails with one of the typed header errors, never succeeds.
func TestHeaderBitFlips(t *testing.T) {
	ctx := context.Background()
	aes := formattest.NewAES(t)
	plain := formattest.PlainKeyring{ID: "k"}
	// The AES keyring authenticates the context and its wrapped key, so
	// many flips fail in Unwrap; PlainKeyring authenticates nothing, so
	// there the commitment and the tag alone must catch them.
	for _, tc := range []struct {
		name string
		kr   keyring.Keyring
	}{{"local-aes", aes}, {"unauthenticated wrapping", plain}} {
		t.Run(tc.name, func(t *testing.T) {
			hdr, _, err := format.New(ctx, tc.kr, &format.Params{Context: keyring.Context{"a": "b"}, ChunkSize: 1 << 12})
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			for i := range len(hdr) * 8 {
				b := bytes.Clone(hdr)
				b[i/8] ^= 1 << (i % 8)
				h, body, err := format.Unlock(ctx, b, tc.kr, nil)
				if err == nil || h != nil || body != nil {
					t.Fatalf("bit %d flipped: unlocked (err %v)", i, err)
				}
				class := formattest.Classify(err)
				counts[class]++
				if class == "other" {
					t.Errorf("bit %d flipped: untyped error %v", i, err)
				}
			}
			t.Logf("%d flips: %v", len(hdr)*8, counts)
		})
	}
}

// TestUnlockCommitment crafts headers wrapping different data keys for
// Alice and Bob, committed to and tagged with either, and checks which
// error each recipient gets.
func TestUnlockCommitment(t *testing.T) {
	ctx := context.Background()
	alice, bob, short := formattest.PlainKeyring{ID: "alice"}, formattest.PlainKeyring{ID: "bob"}, formattest.PlainKeyring{ID: "short"}
	dekA, dekB := randomDEK(), randomDEK()
	h := testHeader(dekA)
	wA, _ := alice.Wrap(ctx, dekA, nil)
	wB, _ := bob.Wrap(ctx, dekB, nil)
	wS, _ := short.Wrap(ctx, dekA[:16], nil)
	h.WrappedKeys = append(append(wA, wB...), wS...)

	tests := []struct {
		name        string
		commit, tag []byte
		recipient   keyring.Unwrapper
		want        error
	}{
		{"A/A, alice", dekA, dekA, alice, nil},
		{"A/A, bob", dekA, dekA, bob, format.ErrCommitment},
		{"A/B, alice", dekA, dekB, alice, format.ErrHeaderTampered},
		{"A/B, bob", dekA, dekB, bob, format.ErrCommitment},
		{"B/B, bob", dekB, dekB, bob, nil},
		// A data key of the wrong length cannot match a commitment.
		{"A/A, a 16-byte data key", dekA, dekA, short, format.ErrCommitment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := formattest.Craft(t, h, tt.commit, tt.tag)
			got, body, err := format.Unlock(ctx, hdr, tt.recipient, nil)
			if tt.want == nil {
				if err != nil || got == nil || body == nil {
					t.Fatalf("Unlock: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || got != nil || body != nil {
				t.Errorf("Unlock: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRequireContext(t *testing.T) {
	ctx := context.Background()
	kr := &countingKeyring{Keyring: formattest.NewAES(t)}
	hdr, _, err := format.New(ctx, kr, &format.Params{Context: keyring.Context{"project": "x-57", "site": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		require keyring.Context
		want    error
	}{
		{nil, nil},
		{keyring.Context{}, nil},
		{keyring.Context{"project": "x-57"}, nil},
		{keyring.Context{"project": "x-57", "site": "lab"}, nil},
		{keyring.Context{"project": "x-58"}, format.ErrContextMismatch},
		{keyring.Context{"other": "x"}, format.ErrContextMismatch},
		{keyring.Context{"project": "x-57", "site": ""}, format.ErrContextMismatch},
		{keyring.Context{"project": ""}, format.ErrContextMismatch},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.require), func(t *testing.T) {
			before := kr.unwraps.Load()
			_, _, err := format.Unlock(ctx, hdr, kr, &format.UnlockOptions{RequireContext: tt.require})
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Unlock: %v, want %v", err, tt.want)
			}
			// An object refused on its context costs no unwrap.
			if n := kr.unwraps.Load() - before; tt.want != nil && n != 0 {
				t.Errorf("%d unwraps for an object refused on its context", n)
			}
		})
	}
}

func TestMaxWrappedKeys(t *testing.T) {
	ctx := context.Background()
	dek := randomDEK()
	h := testHeader(dek)
	h.WrappedKeys = nil
	for i := range 17 {
		w, _ := formattest.PlainKeyring{ID: string(rune('a' + i))}.Wrap(ctx, dek, nil)
		h.WrappedKeys = append(h.WrappedKeys, w...)
	}
	hdr := formattest.Craft(t, h, dek, dek)
	last := formattest.PlainKeyring{ID: "q"}
	tests := []struct {
		name string
		opts *format.UnlockOptions
		want error
	}{
		{"default limit", nil, keyring.ErrTooManyKeys},
		{"limit 16", &format.UnlockOptions{MaxWrappedKeys: 16}, keyring.ErrTooManyKeys},
		{"limit 17", &format.UnlockOptions{MaxWrappedKeys: 17}, nil},
		{"hard limit", &format.UnlockOptions{MaxWrappedKeys: format.MaxWrappedKeys}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := format.Unlock(ctx, hdr, last, tt.opts); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("Unlock with 17 keys: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestChaChaHeaderInFIPSMode(t *testing.T) {
	ctx := context.Background()
	dek := randomDEK()
	h := testHeader(dek)
	h.Suite = stream.ChaCha20Poly1305
	hdr := formattest.Craft(t, h, dek, dek)
	got, body, err := format.Unlock(ctx, hdr, formattest.PlainKeyring{ID: "k"}, nil)
	if fips140.Enforced() {
		if !errors.Is(err, stream.ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("ChaCha20-Poly1305 header in FIPS 140-only mode: %v, want stream.ErrNotApproved", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.Suite != stream.ChaCha20Poly1305 || body.Options.Suite != stream.ChaCha20Poly1305 {
		t.Errorf("suite %v, body suite %v", got.Suite, body.Options.Suite)
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	oldKR, newKR, third := formattest.NewAES(t), formattest.NewAES(t), formattest.NewAES(t)
	ec := keyring.Context{"project": "x-57"}
	hdr, body, err := format.New(ctx, oldKR, &format.Params{ChunkSize: 4 << 10, Context: ec})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := format.Parse(hdr)

	rewrapped, err := format.Rewrap(ctx, hdr, oldKR, keyring.NewMulti(newKR, third))
	if err != nil {
		t.Fatal(err)
	}
	nh, err := format.Parse(rewrapped)
	if err != nil {
		t.Fatal(err)
	}
	if nh.MessageID != old.MessageID || nh.Commitment != old.Commitment || len(nh.Context) != 1 || !nh.Context.Contains(ec) ||
		nh.Suite != old.Suite || nh.ChunkSize != old.ChunkSize || len(nh.WrappedKeys) != 2 {
		t.Errorf("rewrapped header %+v does not keep the fields of %+v with 2 new wrapped keys", nh, old)
	}
	for _, k := range nh.WrappedKeys {
		if k.KeyID == oldKR.KeyID() {
			t.Error("the old wrapped key is still in the rewrapped header")
		}
	}
	for _, kr := range []*keyring.AES{newKR, third} {
		_, b, err := format.Unlock(ctx, rewrapped, kr, &format.UnlockOptions{RequireContext: ec})
		if err != nil || !bytes.Equal(b.Key, body.Key) || !bytes.Equal(b.Options.AAD, body.Options.AAD) {
			t.Errorf("unlocking the rewrapped header: %v, or another body", err)
		}
	}

	var nm *keyring.NoMatchError
	bad := bytes.Clone(hdr)
	bad[len(bad)-1] ^= 1
	tests := []struct {
		name string
		raw  []byte
		u    keyring.Unwrapper
		w    keyring.Wrapper
		want func(error) bool
	}{
		{"old key on the new header", rewrapped, oldKR, newKR, func(err error) bool { return errors.As(err, &nm) }},
		{"without the key", hdr, newKR, newKR, func(err error) bool { return errors.As(err, &nm) }},
		{"tampered header", bad, oldKR, newKR, func(err error) bool { return errors.Is(err, format.ErrHeaderTampered) }},
		{"header and more", append(bytes.Clone(hdr), 0), oldKR, newKR, func(err error) bool { return errors.Is(err, format.ErrInvalidHeader) }},
		{"nil wrapper", hdr, oldKR, nil, func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := format.Rewrap(ctx, tt.raw, tt.u, tt.w); !tt.want(err) || got != nil {
				t.Errorf("Rewrap = %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestBodyError(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		err      error
		tampered bool
	}{
		{&stream.ChunkError{Index: 3, Err: stream.ErrAuthentication}, true},
		{&stream.ChunkError{Index: 0, Err: stream.ErrTruncated}, true},
		{&stream.ChunkError{Index: 1, Err: stream.ErrTrailingData}, true},
		{&stream.ChunkError{Index: 1, Err: stream.ErrTooLarge}, true},
		{fmt.Errorf("x: %w", stream.ErrInvalidSize), true},
		{boom, false},
	} {
		got := format.BodyError(tt.err)
		if errors.Is(got, format.ErrBodyTampered) != tt.tampered || !errors.Is(got, tt.err) {
			t.Errorf("BodyError(%v) = %v, want tampered %v and the cause kept", tt.err, got, tt.tampered)
		}
	}
}
