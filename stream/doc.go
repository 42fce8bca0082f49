// Package stream encrypts and decrypts streams of any length with a
// chunked AEAD: the plaintext is cut into chunks of a fixed size, and each
// chunk is sealed on its own, so a stream is encrypted and decrypted in
// constant memory, in parallel, and read at random offsets without
// decrypting what comes before.
//
// Most users want package envelope instead: it generates the key, wraps it
// with a keyring, writes a self-describing header and calls this package
// for the body. Use stream directly only to build such a format yourself.
//
// # Keys
//
// The key is a 32-byte content key that must be uniformly random (from
// crypto/rand, or derived with HKDF from such a key) and used for one
// stream only. Nonces are random, so the safety margin is counted per key:
// one key must seal at most 2^32 chunks in total (MaxChunks), which is why a
// key must not be reused across streams. envelope derives a fresh content
// key for every object.
//
// The constructors expand the key into the cipher's own state and keep no
// reference to the caller's slice: zero it as soon as the Writer, Reader or
// ReaderAt is made, as envelope does. (The expanded key inside crypto/aes or
// chacha20poly1305 cannot be wiped from outside; it becomes garbage with the
// stream.)
//
// # Format
//
// Chunk i of the stream is nonce || ciphertext || tag, as produced by the
// suite's random-nonce AEAD (28 bytes of overhead for AES-256-GCM, 40 for
// XChaCha20-Poly1305). Every chunk holds ChunkSize bytes of plaintext but
// the final one, which holds 1 to ChunkSize bytes, or 0 if the plaintext is
// empty. Each chunk's additional data is Options.AAD, then i as a
// big-endian uint64, then 0x01 for the final chunk or 0x00 for the others.
// The exact layout and size arithmetic are in FORMAT.md.
//
// So a Reader detects modification, reordering, duplication and removal of
// chunks, truncation at any byte, and bytes appended after the final chunk,
// and returns no byte of a chunk before it authenticates. Sizes follow from
// the layout: EncryptedSize and PlaintextSize convert between them, and
// NewReaderAt finds chunk i at offset i × (ChunkSize + overhead).
//
// # Errors
//
// A Reader or ReaderAt that refuses ciphertext returns a *ChunkError naming
// the chunk, wrapping ErrAuthentication (modified, reordered, wrong key or
// AAD), ErrTruncated (the final chunk is missing: never io.EOF),
// ErrTrailingData or ErrTooLarge; match them with errors.Is. Bad options and
// keys fail in the constructors with a descriptive error, and sizes no
// Writer produces with ErrInvalidSize.
//
// # Limits
//
// ChunkSize is a power of two from 4 KiB to 16 MiB (DefaultChunkSize is
// 64 KiB); a stream has at most 2^32 chunks, 256 TiB at the default chunk
// size. A Writer or Reader holds at most 2 × ChunkSize × (Concurrency + 2)
// bytes of buffers (a ciphertext and a plaintext buffer per chunk in
// flight) whatever the length of the stream, and allocates nothing per
// chunk once running.
//
// # Goroutines
//
// With Options.Concurrency > 1 a Writer or Reader seals or opens chunks on
// that many goroutines of its own. They exit at the end of the stream, on
// the first error, or on Close, which returns only once they have: Close
// every Writer, and every Reader not read to the end. One abandoned
// without Close keeps them until the garbage collector finds it
// unreachable.
//
// # FIPS 140
//
// The default suite, AES-256-GCM, uses only crypto/cipher.NewGCMWithRandomNonce
// and works under GODEBUG=fips140=only. ChaCha20Poly1305 is refused there
// with ErrNotApproved.
package stream
