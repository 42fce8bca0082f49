// Package envelope turns a keyring and a stream of chunks into one
// self-describing encrypted object. Package envelope/blobstore stores such
// objects in Azure Blob Storage.
//
// # Objects
//
// An object is a header followed by a body:
//
//	header: magic, version, suite, chunk size, message id, key commitment,
//	        encryption context, wrapped data keys, header tag
//	body:   the plaintext in chunks sealed by package stream
//
// Encrypt draws a random 256-bit data key (DEK) for each object and has a
// keyring.Wrapper wrap it for every recipient. The keys that do the work are
// derived from the DEK with HKDF-SHA-256, salted with the object's random
// 256-bit message id: the content key seals the body, the header key
// authenticates the header, and a commitment to the DEK is stored in the
// header. Decrypt unwraps the DEK with a keyring.Unwrapper, recomputes the
// commitment and compares it in constant time, verifies the header tag, and
// only then reads the body, which yields no byte of a chunk before the
// chunk authenticates. The object bytes plus a keyring that can unwrap one
// of its wrapped keys are all it takes to decrypt; FORMAT.md at the root of
// the module specifies the bytes exactly.
//
// For most uses:
//
//	w, err := envelope.Encrypt(ctx, dst, kr, &envelope.EncryptOptions{
//		Context: keyring.Context{"project": "x-57"},
//	})
//	// write the plaintext to w, then
//	err = w.Close()
//
//	r, err := envelope.Decrypt(ctx, src, kr, &envelope.DecryptOptions{
//		RequireContext: keyring.Context{"project": "x-57"},
//	})
//	defer r.Close() // once err is nil: stops its goroutines, if any
//
// DecryptAt opens an object for random access (an io.ReaderAt over a file
// or a blob): it authenticates the final chunk on open, so its Size is
// trusted, and reads only the chunks a range needs. Inspect shows a header
// without any key, for audit. Rewrap replaces the wrapped keys of an
// object, to rotate or revoke a key-encryption key, without touching the
// body.
//
// # Azure Blob Storage
//
// Package envelope/blobstore writes and reads such objects as block blobs:
// it asks its region guard before it uploads a byte, stores the header in
// a block of its own so that a key rotation replaces one block and leaves
// the body's blocks untouched, and serves reads by fetching only the
// chunks they need. The format is the same as Encrypt's: a downloaded blob
// decrypts with Decrypt.
//
// # Why the commitment
//
// An object may be wrapped for several recipients. Without a commitment a
// malicious writer could wrap a different DEK for each and craft a body that
// opens differently under each of them. The commitment pins one DEK: a
// recipient whose wrapped key yields another fails with ErrCommitment
// before reading anything.
//
// # The encryption context
//
// The context (keyring.Context) is a set of non-secret string pairs stored
// in the clear and authenticated by the header tag. Keyrings built on
// AES-GCM also bind it to the wrapped key. DecryptOptions.RequireContext
// makes Decrypt refuse an object whose context lacks the expected pairs:
// use it to make sure the object you read is the one you meant (a file
// swapped for another encrypted to the same key fails).
//
// # Errors
//
// Failures are values matched with errors.Is and errors.As: ErrNotGeoseal,
// ErrUnsupportedVersion, ErrUnsupportedSuite, ErrInvalidHeader, the
// keyring's *keyring.NoMatchError, ErrCommitment, ErrHeaderTampered,
// ErrContextMismatch and ErrBodyTampered. A failed decryption never
// returns unauthenticated plaintext.
//
// # FIPS 140
//
// The default suite, AES-256-GCM with random nonces, and the derivations
// (HKDF-SHA-256, HMAC-SHA-256) are FIPS 140 approved. In FIPS 140-only mode
// (GODEBUG=fips140=only) the XChaCha20-Poly1305 suite
// (stream.ChaCha20Poly1305) is refused, on writing and on reading, with an
// error matching stream.ErrNotApproved.
//
// # Compatibility
//
// The format is versioned. Version 1 is specified in FORMAT.md and pinned
// by the test vectors in testdata/vectors: a change that alters them is a
// new version, and this package keeps reading every version it ever wrote.
package envelope
