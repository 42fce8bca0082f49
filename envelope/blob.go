package envelope

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
	"github.com/geoseal/geoseal/stream"
)

// A BlobClient stores geoseal objects as block blobs in one Azure Blob
// Storage container, and reads them back.
//
// Everything it uploads is encrypted in the process, before a byte leaves
// it, and only after the region guard has allowed the container's storage
// account: the three conditions the EAR and ITAR attach to storing
// technical data abroad (end-to-end encryption, FIPS 140 cryptography, no
// storage in a proscribed country) are checked by the same call that
// writes.
//
// The blob layout makes the operations cheap:
//
//   - The object's header is the blob's first block and the body follows in
//     blocks of BlockSize bytes. Rewrap replaces only the header block: a
//     key rotation moves a few hundred bytes, whatever the blob's size.
//   - The block list is committed only when the whole body has been
//     staged, so a failed or cancelled Upload leaves the previous blob (or
//     no blob) in place, never a partial one. Staged blocks that are never
//     committed are discarded by the service (after a week on Azure).
//   - Metadata records the header length, chunk size and plaintext size, so
//     DownloadRange fetches the header and only the chunks a range covers.
//     Metadata is not authenticated: it only decides what to fetch, and
//     everything fetched is checked against the authenticated header.
//
// Requests go through the container client's pipeline, so azcore's retry,
// logging and telemetry policies (configured in its ClientOptions) apply.
// A BlobClient is safe for concurrent use.
type BlobClient struct {
	container *container.Client
	keyring   keyring.Keyring
	guard     *region.Guard
	opts      BlobClientOptions
}

// BlobClientOptions configure a BlobClient. Nil means the defaults; every
// field can be overridden per call by the operation's options.
type BlobClientOptions struct {
	// BlockSize is the size of the body blocks Upload stages. Zero means
	// DefaultBlockSize.
	BlockSize int64

	// RangeSize is the size of the ranged GETs Download and DownloadRange
	// make. Zero means DefaultRangeSize.
	RangeSize int64

	// Concurrency is how many blocks or ranges are in flight at once.
	// Zero means DefaultConcurrency. Upload holds about BlockSize ×
	// (Concurrency + 1) bytes of buffers, Download RangeSize ×
	// (Concurrency + 2): the first range, which carries the header, is
	// read while the fetcher fills up to Concurrency + 1 more.
	Concurrency int

	// MaxWrappedKeys bounds the wrapped keys an object read may list (see
	// DecryptOptions.MaxWrappedKeys).
	MaxWrappedKeys int

	// CSEv2 reads blobs written with the Azure Storage SDKs' client-side
	// encryption v2 (blob metadata "encryptiondata"). When nil, Download
	// and DownloadRange refuse such blobs with ErrCSEv2NotConfigured.
	CSEv2 CSEv2Reader
}

// Defaults of BlobClientOptions.
const (
	DefaultBlockSize   = 4 << 20
	DefaultConcurrency = 4

	// DefaultRangeSize is larger than DefaultBlockSize because a GET costs
	// the service more per request than a block upload: measured against
	// Azurite, 4 MiB ranges read at a third of the speed of one streaming
	// GET, 16 MiB ranges at about the same (internal/benchcmp).
	DefaultRangeSize = 16 << 20

	// MaxBlockSize is the largest block Upload stages (the service allows
	// more, but a block is held in memory Concurrency + 1 times).
	MaxBlockSize = 256 << 20
	// minBlockSize keeps block counts sane: a blob has at most maxBlocks
	// committed blocks.
	minBlockSize = 64 << 10
	// maxBlocks is the service's limit on committed blocks per blob.
	maxBlocks = 50000
	// maxConcurrency bounds the goroutines and buffers of one call.
	maxConcurrency = 256
)

// Blob metadata written by Upload. Azure lower-cases metadata names.
//
// The values are hints: a reader uses them to plan its requests and then
// checks them against the authenticated header, failing with
// ErrInvalidMetadata on any disagreement.
const (
	// metaVersion marks a blob as a geoseal object; its value is "v1".
	metaVersion        = "geoseal"
	metaVersionValue   = "v1"
	metaHeaderLength   = "geosealheaderlength"
	metaChunkSize      = "geosealchunksize"
	metaPlaintextSize  = "geosealplaintextsize"
	metaSuite          = "geosealsuite"
	metaReservedPrefix = "geoseal"
	// metaCSEv2 is the metadata entry the Azure SDKs' client-side
	// encryption v2 stores its parameters in.
	metaCSEv2 = "encryptiondata"
)

// Errors of the blob client, matched with errors.Is. Errors of the object
// format (ErrBodyTampered, ErrHeaderTampered, ErrCommitment, a
// *keyring.NoMatchError...) pass through as they are; errors of the service
// are *azcore.ResponseError values in the chain.
var (
	// ErrBlobChanged means the blob was replaced or modified while it was
	// being read or rewrapped (its ETag changed). Nothing was written, and
	// nothing read from the new version was returned. Retry the operation.
	ErrBlobChanged = errors.New("envelope: blob changed during the operation")

	// ErrInvalidMetadata means the geoseal metadata of a blob is malformed
	// or disagrees with the object's authenticated header or the blob's
	// size. The blob was modified by something other than a geoseal
	// client, or is damaged.
	ErrInvalidMetadata = errors.New("envelope: blob metadata does not match the object")

	// ErrHeaderNotInOwnBlock means Rewrap found a blob whose first
	// committed block is not exactly the object's header (the blob was
	// written by something other than BlobClient.Upload, in one piece):
	// it cannot be rewrapped in place. Download it and upload it again.
	ErrHeaderNotInOwnBlock = errors.New("envelope: the object's header is not the blob's first block")

	// ErrTooManyBlocks means an upload would exceed the service's limit of
	// 50,000 blocks per blob. Raise UploadOptions.BlockSize.
	ErrTooManyBlocks = errors.New("envelope: blob would exceed 50,000 blocks")

	// ErrCSEv2NotConfigured means the blob is encrypted with the Azure
	// SDKs' client-side encryption v2 and BlobClientOptions.CSEv2 is nil.
	ErrCSEv2NotConfigured = errors.New("envelope: blob uses Azure client-side encryption v2, and no CSEv2 reader is configured")
)

// NewBlobClient returns a client that writes and reads geoseal objects in
// the container c, wrapping data keys with kr and asking guard, before
// anything is written, whether the container's storage account may hold
// the data.
//
// guard is required. To write without a region policy, say so with a guard
// built from region.Unrestricted(): the omission must be visible in code
// review, not a nil.
func NewBlobClient(c *container.Client, kr keyring.Keyring, guard *region.Guard, opts *BlobClientOptions) (*BlobClient, error) {
	if c == nil {
		return nil, errors.New("envelope: nil container client")
	}
	if kr == nil {
		return nil, errors.New("envelope: nil keyring")
	}
	if guard == nil {
		return nil, errors.New("envelope: nil region guard (build one from region.Unrestricted() to write without a region policy)")
	}
	bc := &BlobClient{container: c, keyring: kr, guard: guard}
	if opts != nil {
		bc.opts = *opts
	}
	if _, _, err := bc.uploadTransfer(0, 0); err != nil {
		return nil, err
	}
	if _, _, err := bc.downloadTransfer(0, 0); err != nil {
		return nil, err
	}
	return bc, nil
}

// uploadTransfer returns the block size and concurrency of an upload: the
// call's options, else the client's, else the defaults.
func (c *BlobClient) uploadTransfer(blockSize int64, concurrency int) (int64, int, error) {
	return c.transfer(blockSize, c.opts.BlockSize, DefaultBlockSize, concurrency)
}

// downloadTransfer is uploadTransfer for ranged GETs.
func (c *BlobClient) downloadTransfer(rangeSize int64, concurrency int) (int64, int, error) {
	return c.transfer(rangeSize, c.opts.RangeSize, DefaultRangeSize, concurrency)
}

func (c *BlobClient) transfer(size, clientSize, defaultSize int64, concurrency int) (int64, int, error) {
	blockSize := size
	if blockSize == 0 {
		blockSize = clientSize
	}
	if blockSize == 0 {
		blockSize = defaultSize
	}
	if concurrency == 0 {
		concurrency = c.opts.Concurrency
	}
	if concurrency == 0 {
		concurrency = DefaultConcurrency
	}
	if blockSize < minBlockSize || blockSize > MaxBlockSize {
		return 0, 0, fmt.Errorf("envelope: block or range size %d outside %d..%d", blockSize, minBlockSize, MaxBlockSize)
	}
	if concurrency < 1 || concurrency > maxConcurrency {
		return 0, 0, fmt.Errorf("envelope: concurrency %d outside 1..%d", concurrency, maxConcurrency)
	}
	return blockSize, concurrency, nil
}

// cryptoConcurrency is how many goroutines seal or open chunks for a call
// moving data with the given I/O concurrency: enough to keep the cores
// busy, no more (AES-GCM outruns the network on one core; on many cores
// and a fast link it no longer does).
func cryptoConcurrency(io int) int {
	n := min(io, runtime.GOMAXPROCS(0))
	if n <= 1 {
		return 0
	}
	return n
}

// objectMetadata is the geoseal metadata of a blob, as parsed (not yet
// trusted).
type objectMetadata struct {
	headerLength  int
	chunkSize     int
	suite         stream.Suite
	plaintextSize int64
}

// parseObjectMetadata reads the geoseal entries of a blob's metadata. ok is
// false when the blob does not carry them.
func parseObjectMetadata(md map[string]*string) (m objectMetadata, ok bool, err error) {
	get := func(k string) (string, bool) {
		for name, v := range md {
			if strings.EqualFold(name, k) && v != nil {
				return *v, true
			}
		}
		return "", false
	}
	v, ok := get(metaVersion)
	if !ok {
		return m, false, nil
	}
	if v != metaVersionValue {
		return m, true, fmt.Errorf("%w: %s=%q", ErrInvalidMetadata, metaVersion, v)
	}
	num := func(k string, lo, hi int64) (int64, error) {
		s, ok := get(k)
		if !ok {
			return 0, fmt.Errorf("%w: %s missing", ErrInvalidMetadata, k)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%w: %s=%q", ErrInvalidMetadata, k, s)
		}
		return n, nil
	}
	hl, err := num(metaHeaderLength, int64(format.MinHeaderSize), format.MaxHeaderSize)
	if err != nil {
		return m, true, err
	}
	cs, err := num(metaChunkSize, format.MinChunkSize, format.MaxChunkSize)
	if err != nil {
		return m, true, err
	}
	if err := format.CheckChunkSize(int(cs)); err != nil {
		return m, true, fmt.Errorf("%w: %s=%d", ErrInvalidMetadata, metaChunkSize, cs)
	}
	sc, err := num(metaSuite, 0, 255)
	if err != nil {
		return m, true, err
	}
	suite, err := format.SuiteFromCode(uint8(sc))
	if err != nil {
		return m, true, fmt.Errorf("%w: %s=%d", ErrInvalidMetadata, metaSuite, sc)
	}
	ps, err := num(metaPlaintextSize, 0, 1<<62)
	if err != nil {
		return m, true, err
	}
	return objectMetadata{headerLength: int(hl), chunkSize: int(cs), suite: suite, plaintextSize: ps}, true, nil
}

// hasMetadata reports whether md has an entry named k (case-insensitively).
func hasMetadata(md map[string]*string, k string) bool {
	for name := range md {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// blobChanged turns a failed precondition on the ETag a call pinned into
// ErrBlobChanged, keeping the service error in the chain.
func blobChanged(err error) error {
	if bloberror.HasCode(err, bloberror.ConditionNotMet) {
		return fmt.Errorf("%w: %w", ErrBlobChanged, err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == 412 {
		return fmt.Errorf("%w: %w", ErrBlobChanged, err)
	}
	return err
}

// UploadResponse describes a committed upload.
type UploadResponse struct {
	// ETag and LastModified are those of the committed blob.
	ETag         *azcore.ETag
	LastModified *time.Time
	// VersionID is set when the account has blob versioning on.
	VersionID *string
	// Size is the plaintext size, EncryptedSize the blob's size (header
	// and body).
	Size, EncryptedSize int64
	// Decision is the region guard's decision that allowed the upload.
	Decision *region.Decision
}

// RewrapResponse describes a rewrapped blob.
type RewrapResponse struct {
	// ETag and LastModified are those of the blob after the rewrap.
	ETag         *azcore.ETag
	LastModified *time.Time
	// WrappedKeys are the blob's wrapped keys after the rewrap.
	WrappedKeys []keyring.WrappedKey
	// HeaderSize is the size of the new header block.
	HeaderSize int
}
