//go:build cgo

package softhsm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/geoseal/geoseal/internal/testenv"
)

// DefaultModule is where Debian's softhsm2 package installs the PKCS#11
// module.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// utilCommand is the SoftHSM2 token utility, from the same package.
const utilCommand = "softhsm2-util"

// installHint says how to get SoftHSM2 where it is missing.
const installHint = "apt-get install softhsm2"

// ErrMissing is matched by the errors of New when SoftHSM2 (the module or
// softhsm2-util) is not installed.
var ErrMissing = errors.New("softhsm: SoftHSM2 is not installed")

// ErrConfigured is matched by the error of New when this process already
// uses another SoftHSM2 configuration: SoftHSM2 reads its configuration once
// per process.
var ErrConfigured = errors.New("softhsm: this process already uses another SoftHSM2 configuration")

// ErrKeyExists is matched by the errors of CreateAESKey and CreateRSAKey when
// the token already holds a key with the label: two keys with one label
// would make the keyring's lookup by label ambiguous.
var ErrKeyExists = errors.New("softhsm: a key with this label already exists on the token")

// A Token is an initialised SoftHSM2 token.
type Token struct {
	// Module is the path of the PKCS#11 module, DefaultModule.
	Module string
	// Label is the token label, by which the keyring finds its slot.
	Label string
	// PIN is the user PIN.
	PIN string
	// Dir holds softhsm2.conf and the token files.
	Dir string
}

// process is the SoftHSM2 configuration of this process (see the package
// documentation) and serialises this package's PKCS#11 work.
var process struct {
	sync.Mutex
	conf string // path of the softhsm2.conf this process uses, once set
}

// New creates a SoftHSM2 token labelled label, with user PIN pin, in dir
// (which it creates if needed), and points this process at dir's
// configuration. It is meant for examples and demos; tests use ForTest.
//
// The PINs are passed to softhsm2-util on its command line, where other users
// of the machine can see them while it runs: fine for a throw-away token,
// not for anything else. The security officer PIN is random and discarded.
//
// New fails with an error matching ErrMissing when SoftHSM2 is not installed
// and ErrConfigured when the process already uses another directory.
func New(dir, label, pin string) (*Token, error) {
	if label == "" || len(label) > 32 {
		return nil, fmt.Errorf("softhsm: token label must be 1 to 32 bytes, got %d", len(label))
	}
	if len(pin) < 4 || len(pin) > 255 {
		return nil, errors.New("softhsm: PIN must be 4 to 255 bytes (SoftHSM2's limits)")
	}
	if err := installed(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	process.Lock()
	defer process.Unlock()
	if err := configure(dir); err != nil {
		return nil, err
	}
	soPIN := make([]byte, 16)
	if _, err := rand.Read(soPIN); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	cmd := exec.Command(utilCommand, "--init-token", "--free",
		"--label", label, "--pin", pin, "--so-pin", hex.EncodeToString(soPIN))
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+process.conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		// The output names the slot and the error, never the PINs; the
		// command line is left out because it holds them.
		return nil, fmt.Errorf("softhsm: %s --init-token failed: %v: %s", utilCommand, err, bytes.TrimSpace(out))
	}
	tok := &Token{Module: DefaultModule, Label: label, PIN: pin, Dir: dir}
	// Check that the module sees the new token: a module that a previous
	// owner left initialised in this process might not.
	if err := tok.do(func(*pkcs11.Ctx, pkcs11.SessionHandle) error { return nil }); err != nil {
		return nil, err
	}
	return tok, nil
}

// installed reports, as an error matching ErrMissing, what of SoftHSM2 is
// missing.
func installed() error {
	if _, err := os.Stat(DefaultModule); err != nil {
		return fmt.Errorf("%w: %v", ErrMissing, err)
	}
	if _, err := exec.LookPath(utilCommand); err != nil {
		return fmt.Errorf("%w: %v", ErrMissing, err)
	}
	return nil
}

// configure writes dir's softhsm2.conf and makes it the process's SoftHSM2
// configuration. It fails if the process already uses another one. The
// caller holds process.
func configure(dir string) error {
	conf := filepath.Join(dir, "softhsm2.conf")
	if process.conf != "" {
		if process.conf != conf {
			return fmt.Errorf("%w: %s", ErrConfigured, process.conf)
		}
		return nil
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return fmt.Errorf("softhsm: %w", err)
	}
	text := "# Written by geoseal's internal/softhsm for a throw-away token.\n" +
		"directories.tokendir = " + tokens + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("softhsm: %w", err)
	}
	// The module reads the variable in C_Initialize, so it must be set
	// before anything in the process initialises SoftHSM2.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return fmt.Errorf("softhsm: %w", err)
	}
	process.conf = conf
	return nil
}

// shared is the token ForTest hands out, created once per process.
var shared struct {
	once sync.Once
	tok  *Token
	err  error
}

// sharedLabel is the label of the shared test token.
const sharedLabel = "geoseal-test"

// Shared returns the process-wide test token, creating it in a new temporary
// directory on first use. Examples use it; tests use ForTest, which reports
// a missing SoftHSM2 properly.
//
// Nothing runs at process exit to remove the directory, and removing it
// earlier would pull the token from under tests still using it; instead its
// name carries the process id, and Shared removes the directories of
// processes that have ended before it makes its own.
func Shared() (*Token, error) {
	shared.once.Do(func() {
		if shared.err = installed(); shared.err != nil {
			return
		}
		removeStale()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", sharedPrefix, os.Getpid()))
		if err != nil {
			shared.err = fmt.Errorf("softhsm: %w", err)
			return
		}
		pin := make([]byte, 8)
		if _, err := rand.Read(pin); err != nil {
			shared.err = fmt.Errorf("softhsm: %w", err)
			return
		}
		shared.tok, shared.err = New(dir, sharedLabel, hex.EncodeToString(pin))
	})
	return shared.tok, shared.err
}

// sharedPrefix starts the names of the shared tokens' directories, followed
// by the process id.
const sharedPrefix = "geoseal-softhsm-"

// removeStale removes the shared-token directories of ended processes. It
// is best effort: an error only leaves a few kilobytes behind.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*-*"))
	for _, dir := range dirs {
		var pid int
		rest := strings.TrimPrefix(filepath.Base(dir), sharedPrefix)
		if _, err := fmt.Sscanf(rest, "%d-", &pid); err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		// Signal 0 checks that the process exists without disturbing it.
		// (Where signals do not exist, the error is another one and the
		// directory stays.)
		proc, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		if err := proc.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
			os.RemoveAll(dir)
		}
	}
}

// ForTest returns the process-wide test token (see Shared and the package
// documentation for why there is one per process). When SoftHSM2 is not
// installed the test fails in CI and is skipped loudly elsewhere.
func ForTest(t testing.TB) *Token {
	t.Helper()
	tok, err := Shared()
	if errors.Is(err, ErrMissing) {
		testenv.Missing(t, "SoftHSM2", err, installHint)
	}
	if err != nil {
		t.Fatalf("creating the SoftHSM2 test token: %v", err)
	}
	return tok
}

// CreateAESKey creates a 256-bit AES key-wrapping key labelled label on the
// token, generated inside the token: a token object that can wrap and unwrap
// keys and nothing else, sensitive and never extractable, as a KEK on a real
// HSM would be.
func (t *Token) CreateAESKey(label string) error {
	return t.createKey(label, func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle, id []byte) error {
		_, err := ctx.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			})
		return err
	})
}

// CreateRSAKey creates an RSA key pair of the given size (at least 2048
// bits), both halves labelled label and sharing a CKA_ID, generated inside
// the token with public exponent 65537. The public key may wrap keys, the
// private key may unwrap them; the private key is sensitive and never
// extractable.
func (t *Token) CreateRSAKey(label string, bits int) error {
	if bits < 2048 || bits > 8192 {
		return fmt.Errorf("softhsm: RSA key size must be 2048 to 8192 bits, got %d", bits)
	}
	return t.createRSAKey(label, bits)
}

// CreateWeakRSAKey is CreateRSAKey for a key of 512 to 2047 bits, too small
// for any keyring to accept: it exists for the tests that check they refuse
// it. CreateRSAKey refuses such sizes so that no test uses one by mistake.
func (t *Token) CreateWeakRSAKey(label string, bits int) error {
	if bits < 512 || bits >= 2048 {
		return fmt.Errorf("softhsm: a weak RSA key has 512 to 2047 bits, got %d", bits)
	}
	return t.createRSAKey(label, bits)
}

func (t *Token) createRSAKey(label string, bits int) error {
	return t.createKey(label, func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle, id []byte) error {
		_, _, err := ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			})
		return err
	})
}

// createKey refuses a label already in use, then runs generate with a fresh
// random CKA_ID in a logged-in read-write session.
func (t *Token) createKey(label string, generate func(*pkcs11.Ctx, pkcs11.SessionHandle, []byte) error) error {
	if label == "" || len(label) > 255 {
		return fmt.Errorf("softhsm: key label must be 1 to 255 bytes, got %d", len(label))
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("softhsm: %w", err)
	}
	process.Lock()
	defer process.Unlock()
	return t.do(func(ctx *pkcs11.Ctx, s pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
			return fmt.Errorf("softhsm: C_FindObjectsInit: %w", err)
		}
		found, _, err := ctx.FindObjects(s, 1)
		if ferr := ctx.FindObjectsFinal(s); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("softhsm: C_FindObjects: %w", err)
		}
		if len(found) > 0 {
			return fmt.Errorf("%w: %q on token %q", ErrKeyExists, label, t.Label)
		}
		if err := generate(ctx, s, id); err != nil {
			return fmt.Errorf("softhsm: generating key %q: %w", label, err)
		}
		return nil
	})
}

// Do runs f in a logged-in read-write session on the token, for tests that
// need PKCS#11 calls of their own (importing known-answer keys as session
// objects, say). Session objects f creates die with the session. Do logs in
// and out, and initialises and finalises the module, only as far as no one
// else in the process already has (see the package documentation).
func (t *Token) Do(f func(ctx *pkcs11.Ctx, session pkcs11.SessionHandle) error) error {
	process.Lock()
	defer process.Unlock()
	return t.do(f)
}

// do runs f in a logged-in read-write session on the token, then undoes
// exactly what it set up: it logs out only if it logged in and finalises the
// module only if it initialised it (see the package documentation). The
// caller holds process.
func (t *Token) do(f func(*pkcs11.Ctx, pkcs11.SessionHandle) error) (err error) {
	ctx := pkcs11.New(t.Module)
	if ctx == nil {
		return fmt.Errorf("%w: cannot load PKCS#11 module %s", ErrMissing, t.Module)
	}
	defer ctx.Destroy()
	switch ierr := ctx.Initialize(); {
	case ierr == nil:
		defer func() {
			if ferr := ctx.Finalize(); err == nil && ferr != nil {
				err = fmt.Errorf("softhsm: C_Finalize: %w", ferr)
			}
		}()
	case errors.Is(ierr, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		// Someone else in the process initialised the module and will
		// finalise it; finalising here would pull it from under them.
	default:
		return fmt.Errorf("softhsm: C_Initialize: %w", ierr)
	}
	slot, err := t.slot(ctx)
	if err != nil {
		return err
	}
	s, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("softhsm: C_OpenSession: %w", err)
	}
	defer ctx.CloseSession(s)
	switch lerr := ctx.Login(s, pkcs11.CKU_USER, t.PIN); {
	case lerr == nil:
		defer func() {
			if lerr := ctx.Logout(s); err == nil && lerr != nil {
				err = fmt.Errorf("softhsm: C_Logout: %w", lerr)
			}
		}()
	case errors.Is(lerr, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)):
		// Logged in by other code in the process, which owns the login.
	default:
		return fmt.Errorf("softhsm: C_Login to token %q: %w", t.Label, lerr)
	}
	return f(ctx, s)
}

// slot finds the slot of the token by its label.
func (t *Token) slot(ctx *pkcs11.Ctx) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("softhsm: C_GetSlotList: %w", err)
	}
	for _, slot := range slots {
		info, err := ctx.GetTokenInfo(slot)
		if err != nil {
			return 0, fmt.Errorf("softhsm: C_GetTokenInfo: %w", err)
		}
		if info.Label == t.Label && info.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			return slot, nil
		}
	}
	return 0, fmt.Errorf("softhsm: no token labelled %q (configuration %s)", t.Label, os.Getenv("SOFTHSM2_CONF"))
}
