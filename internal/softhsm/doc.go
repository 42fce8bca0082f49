// Package softhsm creates SoftHSM2 tokens for tests, examples and demos, so
// that the PKCS#11 keyring runs against a real PKCS#11 module instead of a
// mock.
//
// A token lives in a directory of its own: New writes a softhsm2.conf there
// (token files under dir/tokens, file object store, errors-only logging),
// points the process at it with SOFTHSM2_CONF, initialises a token with
// softhsm2-util and then creates keys through PKCS#11 itself, exactly as an
// HSM administrator would on a real HSM.
//
// # One configuration per process
//
// SoftHSM2 reads SOFTHSM2_CONF once, in C_Initialize, and the module is a
// single shared library: every pkcs11.Ctx in a process that loads it sees the
// same library state, whichever package opened it. A process can therefore
// use one SoftHSM2 configuration, hence one token directory. That is why
// [ForTest] hands every test of a test binary the same token (created once,
// behind a sync.Once) instead of a token per test, and why [New] refuses a
// second directory in the same process. Tests that share the token create
// keys with labels of their own.
//
// # Logins are per process too
//
// A PKCS#11 login belongs to the application, not to a session: once any
// code in the process has logged in to a token, every session of the process
// on that token is logged in, and a C_Logout from anyone logs them all out.
// [Token.CreateAESKey] and [Token.CreateRSAKey] log in, and log out again
// only when they were the ones who logged in. Create keys before opening
// keyrings on the token, or while one is open, never concurrently with a
// keyring being opened.
//
// The package needs cgo, as the PKCS#11 binding does; without cgo it is
// empty.
package softhsm
