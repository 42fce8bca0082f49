package csev2

import (
	"bytes"
	"context"
	"crypto/fips140"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
)

func testAESKEK(t testing.TB) KeyEncryptionKey {
	t.Helper()
	k, err := LocalAESKEK("local:test-aes", bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encrypt writes pt through a Writer in writes of random sizes.
func encrypt(t testing.TB, kek KeyEncryptionKey, opts *WriterOptions, pt []byte) ([]byte, *EncryptionData) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(context.Background(), &buf, kek, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(len(pt)), 1))
	for rest := pt; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(3000))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.EncryptionData()
}

// TestRoundTrip writes with every nonce scheme and protocol and reads back
// with NewReader and NewReaderAt, through the metadata's JSON.
func TestRoundTrip(t *testing.T) {
	kek := testAESKEK(t)
	ctx := context.Background()
	type cfg struct {
		protocol string
		rl       int64
		sizes    []int
	}
	cfgs := []cfg{
		{Protocol20, DefaultRegionLength, []int{0, 1, DefaultRegionLength - 1, DefaultRegionLength, DefaultRegionLength + 1}},
		{Protocol21, 1000, []int{0, 1, 999, 1000, 1001, 5000}},
		{Protocol21, MinRegionLength, []int{0, 15, 16, 17, 333}},
	}
	for _, scheme := range []NonceScheme{0, NonceJava, NoncePython, NonceDotNet} {
		for _, c := range cfgs {
			for _, n := range c.sizes {
				t.Run(fmt.Sprintf("%v/%s/%d/%d", scheme, c.protocol, c.rl, n), func(t *testing.T) {
					opts := &WriterOptions{Protocol: c.protocol, RegionLength: c.rl, NonceScheme: scheme}
					if c.protocol == Protocol20 {
						opts.RegionLength = 0
					}
					if fips140.Enforced() {
						_, err := NewWriter(ctx, io.Discard, kek, opts)
						if !errors.Is(err, ErrNotApproved) || !errors.Is(err, errors.ErrUnsupported) {
							t.Fatalf("NewWriter in FIPS 140-only mode: %v, want ErrNotApproved", err)
						}
						return
					}
					pt := testPlaintext(n)
					ct, ed := encrypt(t, kek, opts, pt)
					if want := ciphertextSize(int64(n), c.rl); int64(len(ct)) != want {
						t.Fatalf("ciphertext is %d bytes, want %d", len(ct), want)
					}
					js, err := ed.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					ed2, err := ParseEncryptionData(js)
					if err != nil {
						t.Fatal(err)
					}
					want := scheme
					if want == 0 {
						want = NonceDotNet // the default
					}
					if n > 0 {
						var nonce [nonceSize]byte
						want.nonce(&nonce, 0)
						if !bytes.Equal(ct[:nonceSize], nonce[:]) {
							t.Fatalf("first nonce %x, want %x", ct[:nonceSize], nonce)
						}
					}
					r, err := NewReader(ctx, bytes.NewReader(ct), ed2, Keys(kek), nil)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("NewReader: %v, plaintext equal: %v", err, bytes.Equal(got, pt))
					}
					ra, err := NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), ed2, Keys(kek), nil)
					if err != nil {
						t.Fatal(err)
					}
					if ra.Size() != int64(n) {
						t.Fatalf("Size %d, want %d", ra.Size(), n)
					}
					got, err = io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("ReaderAt: %v", err)
					}
				})
			}
		}
	}
}

// TestWriterDeterministic pins the writer's whole output under a fixed
// random source: the CEK and the JSON the SDKs read.
func TestWriterDeterministic(t *testing.T) {
	if fips140.Enforced() {
		t.Log("FIPS 140-only mode: writing is refused, see TestRoundTrip")
		_, err := NewWriter(context.Background(), io.Discard, testAESKEK(t), nil)
		if !errors.Is(err, ErrNotApproved) {
			t.Fatal(err)
		}
		return
	}
	cryptotest.SetGlobalRandom(t, 1)
	ct1, ed1 := encrypt(t, testAESKEK(t), nil, []byte("hello"))
	cryptotest.SetGlobalRandom(t, 1)
	ct2, ed2 := encrypt(t, testAESKEK(t), nil, []byte("hello"))
	if !bytes.Equal(ct1, ct2) || !bytes.Equal(ed1.WrappedContentKey.EncryptedKey, ed2.WrappedContentKey.EncryptedKey) {
		t.Fatal("same seed, different output")
	}
	js, _ := ed1.Marshal()
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"WrappedContentKey", "EncryptionAgent", "EncryptedRegionInfo", "KeyWrappingMetadata", "EncryptionMode"} {
		if _, ok := m[k]; !ok {
			t.Errorf("metadata lacks %s: %s", k, js)
		}
	}
	if !strings.Contains(string(js), `"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"}`) ||
		!strings.Contains(string(js), `"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12}`) ||
		!strings.Contains(string(js), `"KeyId":"local:test-aes"`) || !strings.Contains(string(js), `"Algorithm":"A256KW"`) {
		t.Errorf("metadata: %s", js)
	}
	if len(ct1) != 5+Overhead {
		t.Fatalf("ciphertext %d bytes", len(ct1))
	}
}

func TestWriterOptionErrors(t *testing.T) {
	ctx := context.Background()
	kek := testAESKEK(t)
	for _, o := range []*WriterOptions{
		{Protocol: Protocol20, RegionLength: 1000},
		{Protocol: Protocol21, RegionLength: MinRegionLength - 1},
		{Protocol: Protocol21, RegionLength: MaxRegionLength + 1},
		{Protocol: "1.0"},
		{NonceScheme: 9},
		{KeyWrapAlgorithm: "RSA-OAEP-256"},
	} {
		if _, err := NewWriter(ctx, io.Discard, kek, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	// A key of the caller's own type must be given an algorithm.
	custom := struct{ KeyEncryptionKey }{kek}
	if _, err := NewWriter(ctx, io.Discard, custom, nil); err == nil || fips140.Enforced() {
		if err == nil {
			t.Error("custom KEK without algorithm: no error")
		}
	}
}

func TestNonceSchemes(t *testing.T) {
	// Expected bytes transcribed from the SDK sources (see FORMAT.md).
	for _, c := range []struct {
		s     NonceScheme
		i     uint64
		nonce string
	}{
		{NonceJava, 0, "000000000000000000000000"},
		{NonceJava, 1, "000000000000000100000000"},
		{NonceJava, 0x0102, "000000000000010200000000"},
		{NoncePython, 0, "000000000000000000000000"},
		{NoncePython, 1, "000000000000000000000001"},
		{NoncePython, 0x0102, "000000000000000000000102"},
		{NonceDotNet, 0, "000000000100000000000000"},
		{NonceDotNet, 1, "000000000200000000000000"},
		{NonceDotNet, 0x0102, "000000000301000000000000"},
	} {
		var n [nonceSize]byte
		c.s.nonce(&n, c.i)
		if got := hex.EncodeToString(n[:]); got != c.nonce {
			t.Errorf("%v region %d: %s, want %s", c.s, c.i, got, c.nonce)
		}
	}
}

func TestOrderCheck(t *testing.T) {
	nonce := func(s NonceScheme, i uint64) []byte {
		var n [nonceSize]byte
		s.nonce(&n, i)
		return n[:]
	}
	for s := NonceJava; s <= NonceDotNet; s++ {
		oc := newOrderCheck()
		for i := uint64(0); i < 5; i++ {
			if err := oc.check(nonce(s, i), i); err != nil {
				t.Fatalf("%v region %d: %v", s, i, err)
			}
		}
		if err := oc.check(nonce(s, 7), 5); !errors.Is(err, ErrRegionOrder) {
			t.Errorf("%v: skipped region accepted", s)
		}
	}
	// Region 0 cannot tell Java from Python; region 1 then decides, and
	// a later region in the other scheme is refused.
	oc := newOrderCheck()
	if err := oc.check(nonce(NoncePython, 0), 0); err != nil {
		t.Fatal(err)
	}
	if got := oc.candidates.Load(); got != 1<<NonceJava|1<<NoncePython|1<<nonceJavaInt32 {
		t.Fatalf("candidates after all-zero region 0: %b", got)
	}
	if err := oc.check(nonce(NoncePython, 1), 1); err != nil {
		t.Fatal(err)
	}
	if err := oc.check(nonce(NonceJava, 2), 2); !errors.Is(err, ErrRegionOrder) {
		t.Fatal("a Java nonce after Python ones was accepted")
	}
	// A ranged read that starts later sees the same rule.
	oc = newOrderCheck()
	if err := oc.check(nonce(NonceDotNet, 3), 3); err != nil {
		t.Fatal(err)
	}
	if err := oc.check(nonce(NoncePython, 4), 4); !errors.Is(err, ErrRegionOrder) {
		t.Fatal("scheme switch accepted")
	}
	// Disabled, anything passes.
	var none *orderCheck
	if err := none.check(make([]byte, nonceSize), 9); err != nil {
		t.Fatal(err)
	}
}

// countingReaderAt records which regions were read.
type countingReaderAt struct {
	r      io.ReaderAt
	mu     sync.Mutex
	reads  int
	offs   map[int64]bool
	nbytes int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.offs[off] = true
	c.nbytes += int64(len(p))
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

// TestReaderAtRanges reads random ranges and checks that only the regions a
// range covers are read.
func TestReaderAtRanges(t *testing.T) {
	const rl = 100
	pt := testPlaintext(1234)
	var ct []byte
	var ed *EncryptionData
	var kek KeyEncryptionKey
	if fips140.Enforced() {
		// Build the blob with the test's own GCM under a key that reads in
		// this mode; reading must work here.
		kek = testRSAKEK(t)
		cek := bytes.Repeat([]byte{1}, 32)
		ct = testSeal(t, cek, NonceDotNet, rl, pt)
		payload := append([]byte("2.1\x00\x00\x00\x00\x00"), cek...)
		wrapped, err := kek.WrapKey(context.Background(), AlgorithmRSAOAEP256, payload)
		if err != nil {
			t.Fatal(err)
		}
		ed = &EncryptionData{
			WrappedContentKey:   WrappedContentKey{KeyID: kek.KeyID(), EncryptedKey: wrapped, Algorithm: AlgorithmRSAOAEP256},
			EncryptionAgent:     EncryptionAgent{Protocol: Protocol21, EncryptionAlgorithm: algorithmAESGCM256},
			EncryptedRegionInfo: &EncryptedRegionInfo{DataLength: rl, NonceLength: nonceSize},
		}
	} else {
		kek = testAESKEK(t)
		ct, ed = encrypt(t, kek, &WriterOptions{Protocol: Protocol21, RegionLength: rl, NonceScheme: NonceDotNet}, pt)
	}
	cr := &countingReaderAt{r: bytes.NewReader(ct), offs: map[int64]bool{}}
	ra, err := NewReaderAt(context.Background(), cr, int64(len(ct)), ed, Keys(kek), nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(int64(len(pt)) + 10)
		n := rng.IntN(350)
		cr.reads, cr.offs = 0, map[int64]bool{}
		p := make([]byte, n)
		got, err := ra.ReadAt(p, off)
		end := min(off+int64(n), int64(len(pt)))
		if off >= int64(len(pt)) {
			end = off
		}
		if int64(got) != end-off {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d", n, off, got, end-off)
		}
		if (err == io.EOF) != (int64(n) > end-off) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d): err %v", n, off, err)
		}
		if got > 0 && !bytes.Equal(p[:got], pt[off:end]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
		}
		wantRegions := 0
		if end > off {
			wantRegions = int((end-1)/rl - off/rl + 1)
			for i := off / rl; i <= (end-1)/rl; i++ {
				if !cr.offs[i*(rl+Overhead)] {
					t.Fatalf("ReadAt(%d, %d) did not read region %d", n, off, i)
				}
			}
		}
		if cr.reads != wantRegions {
			t.Fatalf("ReadAt(%d, %d) read %d regions, want %d", n, off, cr.reads, wantRegions)
		}
	}
}

func TestParseEncryptionDataErrors(t *testing.T) {
	good := `{"WrappedContentKey":{"KeyId":"k","EncryptedKey":"AAAA","Algorithm":"A256KW"},"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"},"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12},"KeyWrappingMetadata":{"EncryptionLibrary":"x"},"EncryptionMode":"FullBlob"}`
	if _, err := ParseEncryptionData([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, old, new string
		want           error
	}{
		{"v1", `"Protocol":"2.0"`, `"Protocol":"1.0"`, ErrUnsupportedProtocol},
		{"v3", `"Protocol":"2.0"`, `"Protocol":"3.0"`, ErrUnsupportedProtocol},
		{"no protocol", `"Protocol":"2.0",`, ``, ErrUnsupportedProtocol},
		{"cbc", `AES_GCM_256`, `AES_CBC_256`, ErrUnsupportedProtocol},
		{"nonce 16", `"NonceLength":12`, `"NonceLength":16`, ErrInvalidEncryptionData},
		{"region 0", `"DataLength":4194304`, `"DataLength":0`, ErrInvalidEncryptionData},
		{"region 15", `"DataLength":4194304`, `"DataLength":15`, ErrInvalidEncryptionData},
		{"region huge", `"DataLength":4194304`, `"DataLength":1073741825`, ErrInvalidEncryptionData},
		{"region negative", `"DataLength":4194304`, `"DataLength":-1`, ErrInvalidEncryptionData},
		{"no region info", `"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12},`, ``, ErrInvalidEncryptionData},
		{"no key id", `"KeyId":"k",`, ``, ErrInvalidEncryptionData},
		{"no wrapped key", `"EncryptedKey":"AAAA",`, ``, ErrInvalidEncryptionData},
		{"bad base64", `"EncryptedKey":"AAAA"`, `"EncryptedKey":"A!AA"`, ErrInvalidEncryptionData},
		{"no algorithm", `,"Algorithm":"A256KW"`, ``, ErrInvalidEncryptionData},
		{"trailing", `"FullBlob"}`, `"FullBlob"} {}`, ErrInvalidEncryptionData},
		{"not object", good, `[]`, ErrInvalidEncryptionData},
		{"metadata not strings", `"EncryptionLibrary":"x"`, `"EncryptionLibrary":1`, ErrInvalidEncryptionData},
		// Malformed JSON inside an array or object: the member-name check
		// once looped for ever on these (the fuzzer found the first).
		{"malformed in array", good, `["":{""""`, ErrInvalidEncryptionData},
		{"malformed member", `"KeyId":"k"`, `"KeyId" "k"`, ErrInvalidEncryptionData},
		{"malformed element", `{"EncryptionLibrary":"x"}`, `[1 2]`, ErrInvalidEncryptionData},
		{"unclosed", `"FullBlob"}`, `"FullBlob"`, ErrInvalidEncryptionData},
	} {
		in := strings.Replace(good, c.old, c.new, 1)
		if _, err := ParseEncryptionData([]byte(in)); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	big := []byte(`{"x":"` + strings.Repeat("a", MaxEncryptionDataSize) + `"}`)
	if _, err := ParseEncryptionData(big); !errors.Is(err, ErrInvalidEncryptionData) {
		t.Errorf("oversized: %v", err)
	}
}

// TestKeyResolution covers a missing key and a resolver that returns some
// other key.
func TestKeyResolution(t *testing.T) {
	vf, kr := loadVectors(t)
	v := vf.find(t, "2.0/RSA-OAEP-256/java/1")
	ed, err := ParseEncryptionData([]byte(v.EncryptionData))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	other, _ := LocalRSAKEK("local:other", loadRSAKey(t), nil)
	if _, err := NewReader(ctx, strings.NewReader(""), ed, Keys(other), nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing key: %v", err)
	}
	liar := KeyResolverFunc(func(context.Context, string) (KeyEncryptionKey, error) { return other, nil })
	if _, err := NewReader(ctx, strings.NewReader(""), ed, liar, nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("resolver returning another key: %v", err)
	}
	// The right id with the wrong key material fails to unwrap.
	impostor, _ := LocalRSAKEK(vf.RSAKID, mustGenerateRSA(t), nil)
	if _, err := NewReader(ctx, strings.NewReader(""), ed, Keys(impostor), nil); !errors.Is(err, ErrUnwrap) {
		t.Errorf("wrong KEK: %v, want ErrUnwrap", err)
	}
	if _, err := NewReader(ctx, strings.NewReader(""), ed, kr, nil); err != nil {
		t.Error(err)
	}
}

// TestMetadataDowngrade edits the protocol of metadata the writer made: the
// wrapped prefix no longer matches.
func TestMetadataDowngrade(t *testing.T) {
	if fips140.Enforced() {
		t.Log("covered by the protocol vectors in FIPS 140-only mode")
		return
	}
	kek := testAESKEK(t)
	ct, ed := encrypt(t, kek, &WriterOptions{Protocol: Protocol21, RegionLength: DefaultRegionLength}, testPlaintext(100))
	ed.EncryptionAgent.Protocol = Protocol20
	if _, err := NewReader(context.Background(), bytes.NewReader(ct), ed, Keys(kek), nil); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("got %v, want ErrUnwrap", err)
	}
}

// TestAllowMisorderedRegions checks the data-recovery switch: a swapped pair
// decrypts (in the wrong order) only with it.
func TestAllowMisorderedRegions(t *testing.T) {
	vf, kr := loadVectors(t)
	for _, v := range vf.Vectors {
		if !strings.HasSuffix(v.Name, "/swapped-1-2") {
			continue
		}
		ed, kr := readable(t, vf, v, kr)
		r, err := NewReader(context.Background(), bytes.NewReader(mustHex(t, v.Ciphertext)), ed, kr, &ReaderOptions{AllowMisorderedRegions: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		pt := testPlaintext(v.PlaintextSize)
		want := append(append(append(append([]byte{}, pt[:16]...), pt[32:48]...), pt[16:32]...), pt[48:]...)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", v.Name, err)
		}
		return
	}
	t.Fatal("no swapped vector")
}

func TestRegionErrorIndex(t *testing.T) {
	vf, kr := loadVectors(t)
	for _, v := range vf.Vectors {
		if !strings.HasSuffix(v.Name, "/bitflip-1") {
			continue
		}
		ed, kr := readable(t, vf, v, kr)
		r, err := NewReader(context.Background(), bytes.NewReader(mustHex(t, v.Ciphertext)), ed, kr, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		var re *RegionError
		if !errors.As(err, &re) || re.Index != 1 || !errors.Is(err, ErrAuthentication) {
			t.Fatalf("%s: %v", v.Name, err)
		}
	}
}
