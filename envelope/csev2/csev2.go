// Package csev2 reads and writes Azure Storage client-side encryption v2
// ("CSE v2"), the format of the .NET, Java and Python azure-storage-blob
// SDKs, so that Go services can read the blobs those SDKs wrote and write
// blobs they read.
//
// # The format in one paragraph
//
// A CSE v2 blob is a sequence of encryption regions. Each region holds up to
// DataLength bytes of plaintext (4 MiB unless protocol 2.1 says otherwise)
// sealed with AES-256-GCM under one random 256-bit content encryption key
// (CEK) and laid out as nonce(12) || ciphertext || tag(16); the last region
// may be short. Nothing else is in the blob body. The CEK, prefixed by the
// protocol string padded with NUL bytes to 8 bytes ("2.0\x00\x00\x00\x00\x00"),
// is wrapped by a key-encryption key (KEK) and stored with the key id and
// wrap algorithm in the blob's "encryptiondata" metadata, a JSON document
// described by [EncryptionData]. FORMAT.md (section "Azure client-side
// encryption v2") gives the exact layout with links to the SDK sources.
//
// # Reading
//
// [ParseEncryptionData] parses the metadata; [NewReader] decrypts a stream of
// regions and [NewReaderAt] decrypts random ranges, touching only the regions a
// range covers. Both find the KEK through a [KeyResolver] by the key id in the
// metadata and check, after unwrapping, that the CEK was wrapped together with
// the protocol the metadata names (the SDKs' downgrade protection). The
// metadata's wrap algorithm is not trusted: a key is asked only for the
// algorithms of its [KeyType] (A256KW for AES, RSA-OAEP-256 and RSA-OAEP for
// RSA), and every unwrap failure is one opaque [ErrUnwrap]. Every
// region is authenticated before any of its plaintext is returned, and every
// region's nonce must be the one its position gets under one of the three
// SDKs' counter schemes (see [NonceScheme]), which detects regions moved,
// duplicated or dropped within a blob, as the 2026 .NET and Java SDKs do.
//
// Reading works in every FIPS 140 mode: regions are opened with
// [crypto/cipher.NewGCMWithRandomNonce], whose Open takes exactly the
// nonce || ciphertext || tag layout of a region. The content key must then be
// unwrapped inside a validated module too: RSA-OAEP-256 (local or in Key
// Vault), or A256KW in Key Vault, Managed HSM or an HSM. A256KW with a
// [LocalAESKEK] runs in geoseal's own key wrap code and RSA-OAEP uses SHA-1:
// under GODEBUG=fips140=only both are refused with [ErrNotApproved].
//
// # Reading CSE v1, and only reading it
//
// Protocol 1.0 ("CSE v1": AES-256-CBC over the whole blob, the IV in the
// metadata) is what the SDKs wrote before mid-2022, and the Python SDK's
// default still. It has NO INTEGRITY: anyone who can write to the container
// can change what a v1 blob decrypts to, and nothing notices. The readers
// decrypt it only when [ReaderOptions].ReadCSEv1 is set (off by default, so
// that a caller who did not ask never gets unauthenticated data), whole or by
// range (a range is decrypted from the block before it, its IV), and report
// every failure of its body with one error, [ErrV1Decrypt], checking the
// padding in constant time so that the reader is no padding oracle. Nothing
// here writes v1. Read such blobs to convert them.
//
// # Writing
//
// [NewWriter] encrypts a stream into CSE v2 and gives the metadata to store.
// Protocol 2.0 with 4 MiB regions is the default, which every SDK version that
// knows CSE v2 reads; protocol 2.1 with a custom region length is used on
// request. Region nonces are counters, as in the SDKs. Counter nonces need
// [crypto/cipher.NewGCM], which GODEBUG=fips140=only forbids: in that mode
// writing fails with an error matching [ErrNotApproved].
//
// # What the format does not protect
//
// CSE v2 has no end-of-blob marker: a blob cut at a region boundary decrypts
// as a shorter blob, in every SDK and here. The metadata itself is not
// authenticated beyond the protocol string bound into the wrapped key. Prefer
// geoseal's own envelope format for new data; use this package to interoperate.
//
// The blob helpers [Download], [DownloadRange] and [Upload] do the same over
// azblob clients and the "encryptiondata" metadata entry.
package csev2

import (
	"errors"
	"fmt"

	"github.com/geoseal/geoseal/internal/fips"
)

// Protocol versions of CSE v2 this package reads and writes. Protocol 1.0
// (AES-CBC, deprecated by the SDKs as insecure) is read only on request: see
// Protocol10.
const (
	// Protocol20 is "2.0": AES-256-GCM in 4 MiB regions.
	Protocol20 = "2.0"
	// Protocol21 is "2.1": as 2.0, with the region length taken from the
	// metadata (the Java and .NET SDKs let uploads choose it).
	Protocol21 = "2.1"
)

const (
	// MetadataKey is the blob metadata entry that holds the JSON encryption data.
	MetadataKey = "encryptiondata"

	// algorithmAESGCM256 is the only content encryption algorithm of CSE v2.
	algorithmAESGCM256 = "AES_GCM_256"

	// DefaultRegionLength is the plaintext length of a full region in
	// protocol 2.0, and the default for 2.1.
	DefaultRegionLength = 4 << 20

	// MinRegionLength and MaxRegionLength bound the region length of
	// protocol 2.1, as the Java SDK's BlobClientSideEncryptionOptions does.
	MinRegionLength = 16
	MaxRegionLength = 1 << 30

	// nonceSize and tagSize are the sizes of a region's GCM nonce and tag.
	nonceSize = 12
	tagSize   = 16

	// Overhead is what each region adds to its plaintext: a 12-byte GCM
	// nonce and a 16-byte tag.
	Overhead = nonceSize + tagSize

	// cekSize is the size of the content encryption key, and versionPrefixSize
	// the size of the NUL-padded protocol string wrapped in front of it.
	cekSize           = 32
	versionPrefixSize = 8

	// encryptionMode is the EncryptionMode every SDK writes for blobs.
	encryptionMode = "FullBlob"
)

// Errors returned by this package. They are matched with errors.Is; region
// failures also come as a *RegionError that says which region failed.
var (
	// ErrNotEncrypted means a blob has no "encryptiondata" metadata.
	ErrNotEncrypted = errors.New("csev2: blob has no client-side encryption metadata")

	// ErrInvalidEncryptionData means the encryption data is not well-formed
	// JSON of the expected shape, or a value in it is out of range.
	ErrInvalidEncryptionData = errors.New("csev2: invalid encryption data")

	// ErrUnsupportedProtocol means the encryption data names a protocol or
	// algorithm other than CSE v2 (2.0 or 2.1, AES_GCM_256) and CSE v1 (1.0,
	// AES_CBC_256), or names 1.0 to a reader not given
	// ReaderOptions.ReadCSEv1.
	ErrUnsupportedProtocol = errors.New("csev2: unsupported client-side encryption protocol")

	// ErrUnwrap means the content key did not unwrap: the key-encryption
	// key refused the metadata's wrap algorithm (only A256KW for AES keys,
	// RSA-OAEP-256 and RSA-OAEP for RSA keys reach a key), the key or the
	// vault failed (wrong key, corrupted or forged wrapped key, a service
	// error), or what unwrapped is not a content key for the protocol the
	// metadata names (a downgrade). The error does not say which: telling
	// them apart would help an attacker who forges metadata. The detail goes
	// to ReaderOptions.Logger.
	ErrUnwrap = errors.New("csev2: cannot unwrap the content key")

	// ErrKeyNotFound means the key resolver has no key-encryption key with
	// the key id the encryption data names.
	ErrKeyNotFound = errors.New("csev2: key-encryption key not found")

	// ErrAuthentication means a region failed GCM authentication: wrong key,
	// or modified or cut ciphertext.
	ErrAuthentication = errors.New("csev2: region authentication failed")

	// ErrTruncated means the ciphertext ends inside a region's nonce or tag,
	// or is shorter than its declared size.
	ErrTruncated = errors.New("csev2: ciphertext truncated")

	// ErrRegionOrder means a region's nonce is not the one its position gets
	// under the nonce scheme of the rest of the blob: regions were reordered,
	// duplicated or dropped.
	ErrRegionOrder = errors.New("csev2: region out of order")

	// ErrNotApproved matches errors of operations refused because they would
	// use an algorithm that is not FIPS 140 approved while the process runs
	// with GODEBUG=fips140=only: writing (counter nonces with cipher.NewGCM)
	// and RSA-OAEP with SHA-1. It also matches keyring.ErrNotApproved and
	// errors.ErrUnsupported.
	ErrNotApproved = fips.NotApproved("csev2: algorithm not approved in FIPS 140-only mode")
)

// A RegionError reports a failure in one region. It unwraps to one of
// ErrAuthentication, ErrTruncated or ErrRegionOrder.
type RegionError struct {
	// Index is the 0-based index of the region in the blob.
	Index int64
	Err   error
}

func (e *RegionError) Error() string { return fmt.Sprintf("%v (region %d)", e.Err, e.Index) }
func (e *RegionError) Unwrap() error { return e.Err }
