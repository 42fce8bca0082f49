// Package kvtest is an HTTPS test server that speaks the subset of the Azure
// Key Vault keys REST API (api-version 2025-07-01, as sent by azkeys v1.5.0)
// that geoseal's Key Vault keyring uses, so that the keyring is tested
// through the real azkeys client and azcore pipeline rather than a mock:
//
//	GET  {vault}/keys/{name}[/{version}]              get key (public JWK)
//	POST {vault}/keys/{name}[/{version}]/wrapkey      RSA-OAEP-256, RSA-OAEP, A256KW, CKM_AES_KEY_WRAP_PAD
//	POST {vault}/keys/{name}[/{version}]/unwrapkey
//	POST {vault}/keys/{name}[/{version}]/encrypt      RSA-OAEP-256, RSA-OAEP (RSA keys only)
//	POST {vault}/keys/{name}[/{version}]/decrypt
//
// An empty {version} means the key's current version, as in the service.
//
// Like the service, the server answers a request without a bearer token with
// 401 and the challenge
//
//	WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"
//
// which azkeys' challenge policy answers by asking its credential for a token
// for the tenant and "https://vault.azure.net/.default". The credential from
// [Server.Credential] checks that it is asked for exactly that, so a broken
// challenge flow fails the test. Bodies are JSON with unpadded base64url
// byte values, and the crypto is real: what the server wraps, a local
// RSA-OAEP or RFC 3394 implementation unwraps, and the other way round.
//
// RSA keys ("kty":"RSA") and 256-bit AES keys ("kty":"oct-HSM", as in a
// Managed HSM) are supported. Keys have versions: RotateKey adds one, and old
// versions keep working for unwrap and decrypt, as they do in the service.
//
// For tests of retries and cost, FailNext makes the next requests fail with
// 429 or 503, SetLatency delays every response, and Counts reports how many
// requests, and operations, reached the server.
//
// Under GODEBUG=fips140=only the server runs in the test process and cannot
// compute SHA-1, so it answers RSA-OAEP (SHA-1) requests with a 400 error.
package kvtest

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/geoseal/geoseal/internal/keywrap"
)

// Resource is the audience of the bearer challenge and Scope the token scope
// azkeys derives from it.
const (
	Resource = "https://vault.azure.net"
	Scope    = Resource + "/.default"
)

// maxBody bounds request bodies; key operations carry at most a few KiB.
const maxBody = 64 << 10

// A Server is a running Key Vault test server. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the vault URL, https://127.0.0.1:port, without a trailing slash.
	URL string
	// Tenant is the tenant named in the bearer challenge.
	Tenant string

	srv    *httptest.Server
	token  string
	closed chan struct{} // closed by Close, ends latency waits

	closeOnce sync.Once

	mu         sync.Mutex
	keys       map[string]*key // by lower-case name: key names are case-insensitive
	counts     Counts
	failLeft   int
	failStatus int
	latency    time.Duration
}

// Counts reports how many requests of each kind the server answered since it
// started or since ResetCounts. Operations are counted once authenticated
// (the 401 challenge round trip is counted in Challenges, and injected
// failures in Injected, not in the operation).
type Counts struct {
	GetKey, WrapKey, UnwrapKey, Encrypt, Decrypt int
	Challenges                                   int // 401 answers to requests without a valid token
	Injected                                     int // failures injected by FailNext
	// Requests counts every request the server received, whatever its
	// answer: what a client's retries and a hostile input cost the vault.
	Requests int
}

type key struct {
	name     string // as created
	versions []*keyVersion
}

type keyVersion struct {
	version string
	kty     azkeys.KeyType
	priv    *rsa.PrivateKey // nil for a public-only RSA key
	pub     *rsa.PublicKey
	aes     []byte
	ops     []azkeys.KeyOperation
	created time.Time
	// exportable is the key's "exportable" attribute (SetExportable).
	exportable bool
}

// NewServer starts a server for a test and closes it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("kvtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server on a loopback port, for use outside tests (the
// examples). The caller must Close it.
func Start() (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}
	s := &Server{
		Tenant: "00000000-0000-0000-0000-00000000a11e",
		token:  "kvtest-" + randomHex(16),
		keys:   map[string]*key{},
		closed: make(chan struct{}),
	}
	s.srv = &httptest.Server{
		Listener: l,
		Config: &http.Server{
			Handler: s,
			// Clients that do not trust the test certificate are not
			// worth a log line each.
			ErrorLog: log.New(io.Discard, "", 0),
		},
	}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s, nil
}

// Close shuts the server down, ending injected latency and waiting for
// outstanding requests. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.srv.Close()
}

// KeyURL returns the versionless URL of the named key in this vault.
func (s *Server) KeyURL(name string) string { return s.URL + "/keys/" + name }

// CreateRSAKey creates an RSA key (or, if the name exists, a new version of
// it) with key_ops wrapKey, unwrapKey, encrypt and decrypt, and returns its
// versioned key id. Keys smaller than 2048 bits exist to test that clients
// refuse them: they are public-only (generated from two primes without
// crypto/rsa, which refuses them in FIPS 140-only mode) and cannot unwrap.
func (s *Server) CreateRSAKey(name string, bits int) (kid string) {
	kv := &keyVersion{kty: azkeys.KeyTypeRSA, ops: allOps()}
	if bits >= 2048 {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic("kvtest: generating an RSA key: " + err.Error())
		}
		kv.priv, kv.pub = priv, &priv.PublicKey
	} else {
		kv.pub = weakPublicKey(bits)
	}
	return s.add(name, kv)
}

// CreateOctHSMKey creates a 256-bit AES key ("kty":"oct-HSM", as in a Managed
// HSM) for A256KW (or a new version of an existing key) and returns its
// versioned key id.
func (s *Server) CreateOctHSMKey(name string) (kid string) {
	k := make([]byte, 32)
	rand.Read(k)
	return s.add(name, &keyVersion{kty: azkeys.KeyTypeOctHSM, aes: k, ops: allOps()})
}

// RotateKey adds a new version to the named key, of the same type and size as
// the current one, and returns the new versioned key id. It panics if there
// is no such key.
func (s *Server) RotateKey(name string) (kid string) {
	cur := s.current(name)
	switch cur.kty {
	case azkeys.KeyTypeRSA:
		return s.CreateRSAKey(name, cur.pub.N.BitLen())
	default:
		return s.CreateOctHSMKey(name)
	}
}

// SetKeyOps replaces the permitted operations ("wrapKey", "unwrapKey",
// "encrypt", "decrypt") of the named key's current version. Requests for
// other operations get 403, as in the service.
func (s *Server) SetKeyOps(name string, ops ...string) {
	kv := s.current(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	kv.ops = kv.ops[:0]
	for _, op := range ops {
		kv.ops = append(kv.ops, azkeys.KeyOperation(op))
	}
}

// SetExportable sets the "exportable" attribute the server reports for the
// named key's current version (false when the key is created).
func (s *Server) SetExportable(name string, exportable bool) {
	kv := s.current(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	kv.exportable = exportable
}

// FailNext makes the next n requests, authenticated or not, fail with status
// (429 Too Many Requests or 503 Service Unavailable are what the service
// sends under load). They carry "Retry-After: 0", so azcore's retry policy
// retries them after its own short back-off.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = n, status
}

// SetLatency delays every response by d, or until the request is cancelled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Counts returns the operation counts.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// ResetCounts sets all counts to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = Counts{}
}

// Credential returns a credential that hands out the server's static token,
// but only when asked for the tenant and scope of the server's challenge.
func (s *Server) Credential() azcore.TokenCredential {
	return credential{token: s.token, tenant: s.Tenant}
}

// ClientOptions returns azkeys client options for this server: a transport
// that trusts its certificate, DisableChallengeResourceVerification (the
// challenge names vault.azure.net but the server is 127.0.0.1), and a retry
// policy with millisecond back-off so that retry tests are fast.
func (s *Server) ClientOptions() *azkeys.ClientOptions {
	return &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: s.srv.Client(),
			Retry: policy.RetryOptions{
				MaxRetries:    3,
				RetryDelay:    time.Millisecond,
				MaxRetryDelay: 20 * time.Millisecond,
			},
		},
		DisableChallengeResourceVerification: true,
	}
}

type credential struct{ token, tenant string }

func (c credential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 || opts.Scopes[0] != Scope {
		return azcore.AccessToken{}, fmt.Errorf("kvtest credential: asked for scopes %q, the challenge said %q", opts.Scopes, Scope)
	}
	if opts.TenantID != c.tenant {
		return azcore.AccessToken{}, fmt.Errorf("kvtest credential: asked for tenant %q, the challenge said %q", opts.TenantID, c.tenant)
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func allOps() []azkeys.KeyOperation {
	return []azkeys.KeyOperation{azkeys.KeyOperationEncrypt, azkeys.KeyOperationDecrypt, azkeys.KeyOperationWrapKey, azkeys.KeyOperationUnwrapKey}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// weakPublicKey returns an RSA public key of exactly bits bits. crypto/rsa
// and crypto/rand.Prime refuse small keys in FIPS 140-only mode, so the
// primes are found with math/big.
func weakPublicKey(bits int) *rsa.PublicKey {
	prime := func(size int) *big.Int {
		buf := make([]byte, (size+7)/8)
		for {
			rand.Read(buf)
			p := new(big.Int).SetBytes(buf)
			for i := size; i < 8*len(buf); i++ {
				p.SetBit(p, i, 0)
			}
			p.SetBit(p, size-1, 1).SetBit(p, size-2, 1).SetBit(p, 0, 1)
			if p.ProbablyPrime(20) {
				return p
			}
		}
	}
	n := new(big.Int).Mul(prime(bits/2), prime(bits-bits/2))
	return &rsa.PublicKey{N: n, E: 65537}
}

func (s *Server) add(name string, kv *keyVersion) string {
	if !validName(name) {
		panic(fmt.Sprintf("kvtest: invalid key name %q", name))
	}
	kv.version = randomHex(16)
	kv.created = time.Now().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[strings.ToLower(name)]
	if k == nil {
		k = &key{name: name}
		s.keys[strings.ToLower(name)] = k
	}
	k.versions = append(k.versions, kv)
	return s.kid(k, kv)
}

func (s *Server) kid(k *key, kv *keyVersion) string {
	return s.URL + "/keys/" + k.name + "/" + kv.version
}

func (s *Server) current(name string) *keyVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[strings.ToLower(name)]
	if k == nil {
		panic(fmt.Sprintf("kvtest: no key named %q", name))
	}
	return k.versions[len(k.versions)-1]
}

// validName reports whether name is a valid Key Vault object name: 1 to 127
// letters, digits and dashes.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 127 {
		return false
	}
	for _, c := range name {
		if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// ServeHTTP answers one REST request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Requests++
	latency := s.latency
	inject := 0
	if s.failLeft > 0 {
		s.failLeft--
		s.counts.Injected++
		inject = s.failStatus
	}
	s.mu.Unlock()

	if latency > 0 {
		// Read the body first: the server notices a client that hangs up
		// only once the body is consumed.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadParameter", "Invalid request body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.closed:
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "kvtest: server closing")
			return
		}
	}
	if inject != 0 {
		w.Header().Set("Retry-After", "0")
		writeError(w, inject, "Throttled", "kvtest: injected failure")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "The api-version query parameter is missing")
		return
	}
	if !s.authorized(r) {
		s.mu.Lock()
		s.counts.Challenges++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, s.Tenant, Resource))
		writeError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}

	// Routing by hand, since the version is optional in the middle of the
	// path: with an empty version azkeys sends "/keys/{name}/wrapkey".
	rest, ok := strings.CutPrefix(r.URL.Path, "/keys/")
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "kvtest serves /keys/ only")
		return
	}
	parts := strings.Split(rest, "/")
	switch {
	case r.Method == http.MethodGet && len(parts) <= 2:
		version := ""
		if len(parts) == 2 {
			version = parts[1]
		}
		s.getKey(w, parts[0], version)
	case r.Method == http.MethodPost && len(parts) == 2:
		s.keyOperation(w, r, parts[0], "", parts[1])
	case r.Method == http.MethodPost && len(parts) == 3:
		s.keyOperation(w, r, parts[0], parts[1], parts[2])
	default:
		writeError(w, http.StatusMethodNotAllowed, "BadParameter", "kvtest does not serve "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// lookup finds a key version; version "" is the current one.
func (s *Server) lookup(name, version string) (*key, *keyVersion, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[strings.ToLower(name)]
	if k == nil {
		return nil, nil, false
	}
	if version == "" {
		return k, k.versions[len(k.versions)-1], true
	}
	for _, kv := range k.versions {
		if kv.version == version {
			return k, kv, true
		}
	}
	return nil, nil, false
}

func notFound(w http.ResponseWriter, name, version string) {
	id := name
	if version != "" {
		id += "/" + version
	}
	writeError(w, http.StatusNotFound, "KeyNotFound", fmt.Sprintf("A key with (name/id) %s was not found in this key vault.", id))
}

func (s *Server) getKey(w http.ResponseWriter, name, version string) {
	s.mu.Lock()
	s.counts.GetKey++
	s.mu.Unlock()
	k, kv, ok := s.lookup(name, version)
	if !ok {
		notFound(w, name, version)
		return
	}
	s.mu.Lock()
	ops := slices.Clone(kv.ops)
	exportable := kv.exportable
	s.mu.Unlock()
	jwk := map[string]any{
		"kid":     s.kid(k, kv),
		"kty":     kv.kty,
		"key_ops": ops,
	}
	if kv.pub != nil {
		jwk["n"] = b64(kv.pub.N.Bytes())
		jwk["e"] = b64(big.NewInt(int64(kv.pub.E)).Bytes())
	}
	created := kv.created.Unix()
	writeJSON(w, http.StatusOK, map[string]any{
		"key": jwk,
		"attributes": map[string]any{
			"enabled":         true,
			"created":         created,
			"updated":         created,
			"exportable":      exportable,
			"recoveryLevel":   "Recoverable+Purgeable",
			"recoverableDays": 90,
		},
	})
}

func (s *Server) keyOperation(w http.ResponseWriter, r *http.Request, name, version, opPath string) {
	var op azkeys.KeyOperation
	s.mu.Lock()
	switch opPath {
	case "wrapkey":
		op = azkeys.KeyOperationWrapKey
		s.counts.WrapKey++
	case "unwrapkey":
		op = azkeys.KeyOperationUnwrapKey
		s.counts.UnwrapKey++
	case "encrypt":
		op = azkeys.KeyOperationEncrypt
		s.counts.Encrypt++
	case "decrypt":
		op = azkeys.KeyOperationDecrypt
		s.counts.Decrypt++
	}
	s.mu.Unlock()
	if op == "" {
		writeError(w, http.StatusNotFound, "NotFound", "kvtest does not serve the operation "+opPath)
		return
	}

	var req struct {
		Alg   string `json:"alg"`
		Value string `json:"value"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Invalid request body: "+err.Error())
		return
	}
	value, err := unb64(req.Value)
	if err != nil || req.Alg == "" || req.Value == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "The request needs alg and a base64url value")
		return
	}
	k, kv, ok := s.lookup(name, version)
	if !ok {
		notFound(w, name, version)
		return
	}
	s.mu.Lock()
	permitted := slices.Contains(kv.ops, op)
	s.mu.Unlock()
	if !permitted {
		writeError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("Operation %s is not permitted on this key.", op))
		return
	}
	result, status, err := kv.do(op, azkeys.EncryptionAlgorithm(req.Alg), value)
	if err != nil {
		writeError(w, status, "BadParameter", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"kid": s.kid(k, kv), "value": b64(result)})
}

// do runs the cryptographic operation. Errors are answered with status.
func (kv *keyVersion) do(op azkeys.KeyOperation, alg azkeys.EncryptionAlgorithm, value []byte) ([]byte, int, error) {
	seal := op == azkeys.KeyOperationWrapKey || op == azkeys.KeyOperationEncrypt
	switch kv.kty {
	case azkeys.KeyTypeRSA:
		var h hash.Hash
		switch alg {
		case azkeys.EncryptionAlgorithmRSAOAEP256:
			h = sha256.New()
		case azkeys.EncryptionAlgorithmRSAOAEP:
			// crypto/sha1 panics in FIPS 140-only mode; the real
			// service would do it, this in-process server cannot.
			if fips140.Enforced() {
				return nil, http.StatusBadRequest, errors.New("RSA-OAEP (SHA-1) is unavailable: the kvtest server runs with GODEBUG=fips140=only")
			}
			h = sha1.New()
		default:
			return nil, http.StatusBadRequest, fmt.Errorf("algorithm %s is not supported for RSA keys", alg)
		}
		if seal {
			out, err := rsa.EncryptOAEP(h, rand.Reader, kv.pub, value, nil)
			if err != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("%s: %v", alg, err)
			}
			return out, 0, nil
		}
		if kv.priv == nil {
			return nil, http.StatusBadRequest, errors.New("kvtest: this key is public-only (smaller than 2048 bits)")
		}
		out, err := rsa.DecryptOAEP(h, nil, kv.priv, value, nil)
		if err != nil {
			return nil, http.StatusBadRequest, errors.New("decryption failed")
		}
		return out, 0, nil

	case azkeys.KeyTypeOctHSM:
		if op == azkeys.KeyOperationEncrypt || op == azkeys.KeyOperationDecrypt {
			return nil, http.StatusBadRequest, fmt.Errorf("kvtest supports only wrapkey and unwrapkey for oct-HSM keys, not %s", op)
		}
		// A vault's key wrap runs in its HSM, not in this process: the
		// server uses keywrap's TestHSM, which FIPS 140-only mode (where
		// local key wrap is refused) leaves running, as the service does.
		var hsm keywrap.TestHSM
		var wrap, unwrap func(kek, b []byte) ([]byte, error)
		switch alg {
		case azkeys.EncryptionAlgorithmA256KW:
			wrap, unwrap = hsm.Wrap, hsm.Unwrap
		case azkeys.EncryptionAlgorithmCKMAESKEYWRAPPAD:
			wrap, unwrap = hsm.WrapPad, hsm.UnwrapPad
		default:
			return nil, http.StatusBadRequest, fmt.Errorf("algorithm %s is not supported for this 256-bit oct-HSM key", alg)
		}
		f := unwrap
		if seal {
			f = wrap
		}
		out, err := f(kv.aes, value)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("%s: %v", alg, err)
		}
		return out, 0, nil
	}
	return nil, http.StatusBadRequest, fmt.Errorf("kvtest: key type %s", kv.kty)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// unb64 decodes base64url, with or without padding.
func unb64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeError answers with the service's error shape, which azcore parses
// into ResponseError.ErrorCode.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
