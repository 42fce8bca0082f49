package kvtest

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"go.uber.org/goleak"

	"github.com/geoseal/geoseal/internal/keywrap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, s *Server) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(s.URL, s.Credential(), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func params(alg azkeys.EncryptionAlgorithm, v []byte) azkeys.KeyOperationParameters {
	return azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: v}
}

func responseError(t *testing.T, err error, status int) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status {
		t.Fatalf("got %v, want an *azcore.ResponseError with status %d", err, status)
	}
	return re
}

// TestRSA drives an RSA key through the real azkeys client: the challenge,
// GET key (JWK decoding), wrapkey in the server and unwrap with the private
// key, and local RSA-OAEP-256 wrapping with the served public key and
// unwrapkey in the server.
func TestRSA(t *testing.T) {
	s := NewServer(t)
	kid := s.CreateRSAKey("rsa-key", 2048)
	c := newClient(t, s)
	ctx := context.Background()

	got, err := c.GetKey(ctx, "rsa-key", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(*got.Key.KID) != kid || got.Key.KID.Name() != "rsa-key" || got.Key.KID.Version() == "" {
		t.Fatalf("kid %q, want %q", *got.Key.KID, kid)
	}
	if *got.Key.Kty != azkeys.KeyTypeRSA || got.Attributes == nil || !*got.Attributes.Enabled || got.Attributes.Created == nil {
		t.Fatalf("bundle %+v", got.KeyBundle)
	}
	if len(got.Key.KeyOps) != 4 {
		t.Fatalf("key_ops %v", got.Key.KeyOps)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(got.Key.N), E: int(new(big.Int).SetBytes(got.Key.E).Int64())}
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("public key: %d bits, e=%d", pub.N.BitLen(), pub.E)
	}
	if c := s.Counts(); c.Challenges != 1 || c.GetKey != 1 {
		t.Fatalf("counts after the first GET: %+v", c)
	}

	dek := bytes.Repeat([]byte{0x42}, 32)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	version := got.Key.KID.Version()
	un, err := c.UnwrapKey(ctx, "rsa-key", version, params(azkeys.EncryptionAlgorithmRSAOAEP256, wrapped), nil)
	if err != nil || !bytes.Equal(un.Result, dek) || string(*un.KID) != kid {
		t.Fatalf("unwrapkey: %x, %v", un.Result, err)
	}

	w, err := c.WrapKey(ctx, "rsa-key", "", params(azkeys.EncryptionAlgorithmRSAOAEP256, dek), nil)
	if err != nil {
		t.Fatal(err)
	}
	priv := s.current("rsa-key").priv
	if out, err := rsa.DecryptOAEP(sha256.New(), nil, priv, w.Result, nil); err != nil || !bytes.Equal(out, dek) {
		t.Fatalf("server-wrapped key does not unwrap locally: %v", err)
	}

	enc, err := c.Encrypt(ctx, "rsa-key", version, params(azkeys.EncryptionAlgorithmRSAOAEP256, []byte("hi")), nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, "rsa-key", version, params(azkeys.EncryptionAlgorithmRSAOAEP256, enc.Result), nil)
	if err != nil || string(dec.Result) != "hi" {
		t.Fatalf("decrypt: %q, %v", dec.Result, err)
	}

	// A corrupted ciphertext is a 400 from the service, not a panic.
	wrapped[10] ^= 1
	_, err = c.UnwrapKey(ctx, "rsa-key", version, params(azkeys.EncryptionAlgorithmRSAOAEP256, wrapped), nil)
	if re := responseError(t, err, http.StatusBadRequest); re.ErrorCode != "BadParameter" {
		t.Fatalf("error code %q", re.ErrorCode)
	}

	want := Counts{GetKey: 1, WrapKey: 1, UnwrapKey: 2, Encrypt: 1, Decrypt: 1, Challenges: 1, Requests: 7}
	if c := s.Counts(); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	s.ResetCounts()
	if c := s.Counts(); c != (Counts{}) {
		t.Fatalf("counts after reset: %+v", c)
	}
}

// TestRSAOAEPSHA1 checks RSA-OAEP (SHA-1): served normally, refused with 400
// (not a panic) when the test process runs in FIPS 140-only mode.
func TestRSAOAEPSHA1(t *testing.T) {
	s := NewServer(t)
	s.CreateRSAKey("legacy", 2048)
	c := newClient(t, s)
	ctx := context.Background()
	dek := bytes.Repeat([]byte{7}, 32)
	w, err := c.WrapKey(ctx, "legacy", "", params(azkeys.EncryptionAlgorithmRSAOAEP, dek), nil)
	if fips140.Enforced() {
		re := responseError(t, err, http.StatusBadRequest)
		if !strings.Contains(re.Error(), "fips140=only") {
			t.Fatalf("error does not explain itself: %v", re)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	un, err := c.UnwrapKey(ctx, "legacy", "", params(azkeys.EncryptionAlgorithmRSAOAEP, w.Result), nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("unwrap: %x, %v", un.Result, err)
	}
	// The two paddings are not interchangeable.
	if _, err := c.UnwrapKey(ctx, "legacy", "", params(azkeys.EncryptionAlgorithmRSAOAEP256, w.Result), nil); err == nil {
		t.Fatal("an RSA-OAEP ciphertext unwrapped as RSA-OAEP-256")
	}
}

// TestOctHSM checks A256KW with an oct-HSM key against the RFC 3394
// implementation, in both directions, and that versions are kept.
func TestOctHSM(t *testing.T) {
	s := NewServer(t)
	v1 := s.CreateOctHSMKey("hsm-key")
	c := newClient(t, s)
	ctx := context.Background()

	got, err := c.GetKey(ctx, "hsm-key", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Key.Kty != azkeys.KeyTypeOctHSM || got.Key.K != nil || string(*got.Key.KID) != v1 {
		t.Fatalf("JWK %+v", got.Key)
	}
	kek1 := s.current("hsm-key").aes
	dek := bytes.Repeat([]byte{0x99}, 32)
	w, err := c.WrapKey(ctx, "hsm-key", "", params(azkeys.EncryptionAlgorithmA256KW, dek), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := (keywrap.TestHSM{}).Wrap(kek1, dek); !bytes.Equal(w.Result, want) {
		t.Fatalf("A256KW result %x, want %x", w.Result, want)
	}

	v2 := s.RotateKey("hsm-key")
	if v2 == v1 || !strings.HasPrefix(v2, s.URL+"/keys/hsm-key/") {
		t.Fatalf("rotated kid %q (was %q)", v2, v1)
	}
	ver1 := (*azkeys.ID)(&v1).Version()
	un, err := c.UnwrapKey(ctx, "hsm-key", ver1, params(azkeys.EncryptionAlgorithmA256KW, w.Result), nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("unwrap with the old version after rotation: %x, %v", un.Result, err)
	}
	// The current version is another key: the integrity check fails.
	_, err = c.UnwrapKey(ctx, "hsm-key", "", params(azkeys.EncryptionAlgorithmA256KW, w.Result), nil)
	responseError(t, err, http.StatusBadRequest)

	// KWP too.
	wp, err := c.WrapKey(ctx, "hsm-key", "", params(azkeys.EncryptionAlgorithmCKMAESKEYWRAPPAD, dek[:20]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := (keywrap.TestHSM{}).UnwrapPad(s.current("hsm-key").aes, wp.Result); err != nil || !bytes.Equal(out, dek[:20]) {
		t.Fatalf("KWP: %x, %v", out, err)
	}

	// RSA algorithms do not apply.
	_, err = c.WrapKey(ctx, "hsm-key", "", params(azkeys.EncryptionAlgorithmRSAOAEP256, dek), nil)
	responseError(t, err, http.StatusBadRequest)
}

func TestErrors(t *testing.T) {
	s := NewServer(t)
	s.CreateRSAKey("k", 2048)
	c := newClient(t, s)
	ctx := context.Background()

	_, err := c.GetKey(ctx, "missing", "", nil)
	if re := responseError(t, err, http.StatusNotFound); re.ErrorCode != "KeyNotFound" {
		t.Fatalf("code %q", re.ErrorCode)
	}
	_, err = c.GetKey(ctx, "k", "0123456789abcdef0123456789abcdef", nil)
	responseError(t, err, http.StatusNotFound)

	s.SetKeyOps("k", "wrapKey")
	_, err = c.UnwrapKey(ctx, "k", "", params(azkeys.EncryptionAlgorithmRSAOAEP256, make([]byte, 256)), nil)
	if re := responseError(t, err, http.StatusForbidden); re.ErrorCode != "Forbidden" {
		t.Fatalf("code %q", re.ErrorCode)
	}

	// A client whose credential hands out another token never gets in.
	bad, err := azkeys.NewClient(s.URL, credential{token: "wrong", tenant: s.Tenant}, s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetKey(ctx, "k", "", nil)
	responseError(t, err, http.StatusUnauthorized)
}

// TestChallengeScope checks that the challenge names the tenant and resource
// azkeys needs: the credential refuses any other request.
func TestChallengeScope(t *testing.T) {
	s := NewServer(t)
	cred := s.Credential()
	if _, err := cred.GetToken(context.Background(), policyOptions("https://management.azure.com/.default", s.Tenant)); err == nil {
		t.Fatal("credential accepted another scope")
	}
	if _, err := cred.GetToken(context.Background(), policyOptions(Scope, "other-tenant")); err == nil {
		t.Fatal("credential accepted another tenant")
	}
}

func TestFailNext(t *testing.T) {
	s := NewServer(t)
	s.CreateOctHSMKey("k")
	c := newClient(t, s)
	ctx := context.Background()

	s.FailNext(2, http.StatusTooManyRequests)
	if _, err := c.GetKey(ctx, "k", "", nil); err != nil {
		t.Fatalf("two 429s then success: %v", err)
	}
	if got := s.Counts(); got.Injected != 2 || got.GetKey != 1 {
		t.Fatalf("counts %+v", got)
	}
	s.FailNext(10, http.StatusServiceUnavailable)
	_, err := c.WrapKey(ctx, "k", "", params(azkeys.EncryptionAlgorithmA256KW, make([]byte, 32)), nil)
	responseError(t, err, http.StatusServiceUnavailable)
	if got := s.Counts(); got.Injected != 2+4 { // 1 try + MaxRetries 3
		t.Fatalf("counts %+v", got)
	}
	// Requests counts everything that arrived: the challenge round trip,
	// the injected failures and the GET that succeeded.
	if got := s.Counts(); got.Requests != got.Challenges+got.Injected+got.GetKey+got.WrapKey || got.Requests < 2+4+1 {
		t.Fatalf("Requests %d does not add up: %+v", got.Requests, got)
	}
	s.ResetCounts()
	if got := s.Counts(); got.Requests != 0 {
		t.Fatalf("after ResetCounts: %+v", got)
	}
}

func TestLatency(t *testing.T) {
	s := NewServer(t)
	s.CreateOctHSMKey("k")
	c := newClient(t, s)
	if _, err := c.GetKey(context.Background(), "k", "", nil); err != nil {
		t.Fatal(err)
	}
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetKey(ctx, "k", "", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	s.SetLatency(0)
}

func TestWeakKeyIsPublicOnly(t *testing.T) {
	s := NewServer(t)
	s.CreateRSAKey("weak", 1024)
	got, err := newClient(t, s).GetKey(context.Background(), "weak", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := new(big.Int).SetBytes(got.Key.N).BitLen(); n != 1024 {
		t.Fatalf("%d-bit modulus", n)
	}
	_, err = newClient(t, s).UnwrapKey(context.Background(), "weak", "", params(azkeys.EncryptionAlgorithmRSAOAEP256, make([]byte, 128)), nil)
	responseError(t, err, http.StatusBadRequest)
}

func TestStartClose(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || s.KeyURL("a") != s.URL+"/keys/a" {
		t.Fatalf("URL %q", s.URL)
	}
	s.Close()
}

func policyOptions(scope, tenant string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{scope}, TenantID: tenant}
}
