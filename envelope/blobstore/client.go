package blobstore

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/names"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// A Client stores geoseal objects as block blobs in one Azure Blob Storage
// container and reads them back. It is safe for concurrent use by many
// goroutines. Its only state per blob is a bounded cache (16 MiB) of the
// ciphertext of headers and final chunks it opened, valid while the
// blob's ETag is unchanged, which spares two GETs when a blob is opened
// again; nothing in it is trusted without being authenticated again.
// Besides, it keeps the ciphertext buffers of its finished calls (blocks,
// fetched ranges; never plaintext) for the next ones, until the garbage
// collector reclaims them, so that a service moving blob after blob does
// not allocate tens of MiB per call.
type Client struct {
	container *container.Client
	keyring   keyring.Keyring
	guard     *region.Guard
	opts      ClientOptions
	opened    openCache
	buffers   bufferPool // ciphertext buffers, reused from call to call
	names     nameKeyCache
	public    map[string]bool // ClientOptions.PublicTagNames
}

// ClientOptions configure a Client. Nil means the defaults; the transfer
// settings can be overridden per call by the operation's options.
type ClientOptions struct {
	// BlockSize fixes the size of the body blocks Upload stages, from 64
	// KiB to MaxBlockSize. Zero (the default) lets Upload choose (see
	// Upload): DefaultBlockSize, or the smallest size that fits a source
	// that reports its size, growing with a stream of unknown length.
	BlockSize int64

	// RangeSize is the largest ranged GET a read makes. Zero means
	// DefaultRangeSize.
	RangeSize int64

	// Concurrency is how many blocks or ranges one call has in flight.
	// Zero means DefaultConcurrency. Upload holds about BlockSize ×
	// (Concurrency + 1) bytes of buffers, a sequential read RangeSize ×
	// Concurrency.
	Concurrency int

	// MaxWrappedKeys bounds the wrapped keys an object read may list (see
	// envelope.DecryptOptions.MaxWrappedKeys).
	MaxWrappedKeys int

	// RequireContext lists encryption-context pairs every read through
	// this client requires (Open, Download, GetProperties, ServeBlob), in
	// addition to those of the call's own options. A service that serves
	// the objects of one project from an HTTP handler sets it here.
	RequireContext keyring.Context

	// CSEv2 resolves the key-encryption keys of blobs written with the
	// client-side encryption v2 of the Azure Storage SDKs for .NET, Java
	// and Python (blob metadata "encryptiondata"), so that a service moving
	// to geoseal reads its old blobs through the same client. Nil (the
	// default) refuses such blobs with ErrCSEv2NotConfigured. CSE v2 has
	// no encryption context: a read that requires one refuses CSE v2
	// blobs with envelope.ErrContextMismatch.
	CSEv2 csev2.KeyResolver

	// ReadCSEv1 lets the reads open blobs in the SDKs' older client-side
	// encryption, CSE v1 (protocol 1.0, AES-256-CBC: what they wrote
	// before mid-2022, and the Python SDK's default still), with the keys
	// CSEv2 resolves. CSE v1 has NO INTEGRITY: whoever can write to the
	// container can change what such a blob decrypts to, and nothing
	// notices. Off by default, and such blobs are then refused with
	// ErrCSEv1NotEnabled, so that a client that did not ask never returns
	// unauthenticated data; Properties.Format tells a caller that did
	// which blobs it read that way. Set it only to read old blobs until
	// they are converted (Migrate). A read that requires an encryption
	// context refuses CSE v1 blobs as it refuses CSE v2 ones.
	ReadCSEv1 bool

	// Logger, when set, receives the reason ServeBlob answered with an
	// error status (the client is told only the status). Nothing secret is
	// logged.
	Logger *slog.Logger

	// SealNames keeps blob names, user metadata and index tags from the
	// storage service (see "Sealed names" in the package documentation).
	// Every name the client's methods take and return is then a logical
	// name, stored as keyed hashes of its segments; metadata is sealed,
	// tags become tokens, and an HTTP header that could describe the
	// content is refused (ErrClearHTTPHeader). The container's name key
	// is created, wrapped by the client's keyring, by the first sealed
	// Upload.
	SealNames bool

	// PublicTagNames lists index tag names stored as they are under
	// SealNames (their values still become tokens), for tags that
	// describe nothing, such as "retention". Other tag names become
	// tokens too.
	PublicTagNames []string
}

// Defaults and limits of ClientOptions and the per-call options.
const (
	// DefaultBlockSize is the smallest block Upload chooses by itself.
	DefaultBlockSize = 4 << 20

	// DefaultRangeSize is larger than DefaultBlockSize because a GET costs
	// the service more per request than a block upload: measured against
	// Azurite, 4 MiB ranges read at a third of the speed of one streaming
	// GET, 16 MiB ranges at about the same (internal/benchcmp).
	DefaultRangeSize = 16 << 20

	DefaultConcurrency = 4

	// MaxBlockSize is the service's largest block (API version 2019-12-12
	// and later). Upload reaches it only for the largest streams.
	MaxBlockSize = 4000 << 20

	// minBlockSize keeps block and range counts sane.
	minBlockSize = 64 << 10
	// maxBlocks is the service's limit on committed blocks per blob.
	maxBlocks = 50000
	// maxConcurrency bounds the goroutines and buffers of one call.
	maxConcurrency = 256
)

// Errors of the blob client, matched with errors.Is. Errors of the object
// format (envelope.ErrBodyTampered, envelope.ErrHeaderTampered,
// envelope.ErrCommitment, envelope.ErrContextMismatch, a
// *keyring.NoMatchError...) pass through as they are; errors of the service
// are *azcore.ResponseError values in the chain (bloberror.HasCode finds
// their codes).
var (
	// ErrBlobChanged means another writer changed the blob while this call
	// was reading or writing it (its ETag changed, or its uncommitted
	// blocks were discarded by another commit). Nothing was written, and
	// nothing read from the other version was returned. Retry the call.
	ErrBlobChanged = errors.New("blobstore: blob changed during the operation")

	// ErrNotGeoseal means the blob is not a geoseal object. It is the same
	// value as envelope.ErrNotGeoseal.
	ErrNotGeoseal = envelope.ErrNotGeoseal

	// ErrTooLarge means an upload cannot fit in one block blob: its size
	// needs more than 50,000 blocks of MaxBlockSize. When the source
	// reports its size, Upload returns it before sending any request.
	ErrTooLarge = errors.New("blobstore: too large for one block blob")

	// ErrTooManyBlocks means an upload with a fixed BlockSize would exceed
	// the service's limit of 50,000 blocks per blob. Raise BlockSize, or
	// leave it zero so that Upload sizes the blocks itself.
	ErrTooManyBlocks = errors.New("blobstore: blob would exceed 50,000 blocks")

	// ErrCommitUncertain means a commit failed in a way that leaves open
	// whether the service applied it (a lost response), and reading the
	// blob back to find out failed too. Read the blob to know.
	ErrCommitUncertain = errors.New("blobstore: commit may or may not have been applied")

	// ErrInvalidMetadata means the geoseal metadata of a blob is malformed
	// or disagrees with the object's authenticated header or the blob's
	// size. The blob was modified by something other than a geoseal
	// client, or is damaged.
	ErrInvalidMetadata = errors.New("blobstore: blob metadata does not match the object")

	// ErrHeaderNotInOwnBlock means Rewrap found a blob whose first
	// committed block is not exactly the object's header (the blob was
	// written by something other than Upload, in one piece): it cannot be
	// rewrapped in place. Download it and upload it again.
	ErrHeaderNotInOwnBlock = errors.New("blobstore: the object's header is not the blob's first block")

	// ErrCSEv2NotConfigured means the blob is encrypted with the Azure
	// SDKs' client-side encryption v2 and ClientOptions.CSEv2 is nil.
	ErrCSEv2NotConfigured = errors.New("blobstore: blob uses Azure client-side encryption v2, and no CSEv2 key resolver is configured")

	// ErrCSEv1NotEnabled means the blob is encrypted with the Azure SDKs'
	// client-side encryption v1, which has no integrity protection, and
	// ClientOptions.ReadCSEv1 is off.
	ErrCSEv1NotEnabled = errors.New("blobstore: blob uses Azure client-side encryption v1 (AES-CBC, no integrity protection), which this client reads only with ReadCSEv1")

	// ErrInvalidName means a name cannot be used: under SealNames, a
	// logical name that is empty, longer than 1024 bytes, of more than 37
	// segments, with an empty segment (a leading, trailing or doubled
	// "/") or not UTF-8; in any mode, the name of the container's name
	// key. It is returned before any request.
	ErrInvalidName = names.ErrInvalidName

	// ErrNameTampered means, under SealNames, that a blob's sealed name or
	// sealed metadata does not authenticate: it was altered, copied from
	// another blob, sealed under another name key, or it belongs to
	// another object than the one the blob holds (the body was swapped).
	// Nothing of the blob is returned.
	ErrNameTampered = names.ErrTampered

	// ErrNoNameKey means, under SealNames, that the container has no name
	// key yet, so no sealed name exists in it: the first sealed Upload
	// creates it. The service's bloberror.BlobNotFound is in the chain.
	ErrNoNameKey = errors.New("blobstore: the container has no name key (nothing was uploaded with SealNames)")

	// ErrClearHTTPHeader means, under SealNames, that an Upload was given
	// an HTTP header that can describe the content (Content-Disposition,
	// Content-Language, Content-Encoding, Content-MD5, a Content-Type
	// other than application/octet-stream, a Cache-Control with other than
	// standard directives), which the service would store in the clear.
	// Nothing was sent.
	ErrClearHTTPHeader = errors.New("blobstore: HTTP header refused: it would describe the content in the clear")
)

// NewClient returns a client that writes and reads geoseal objects in the
// container c, wrapping data keys with kr and asking guard, before
// anything is written, whether the container's storage account may hold
// the data. Requests go through c's pipeline, so the retry, logging and
// telemetry policies of its azcore.ClientOptions apply.
//
// guard is required. To write without a region policy, say so with a guard
// built from region.Unrestricted(): the omission must be visible in code
// review, not a nil.
func NewClient(c *container.Client, kr keyring.Keyring, guard *region.Guard, opts *ClientOptions) (*Client, error) {
	if c == nil {
		return nil, errors.New("blobstore: nil container client")
	}
	if kr == nil {
		return nil, errors.New("blobstore: nil keyring")
	}
	if guard == nil {
		return nil, errors.New("blobstore: nil region guard (build one from region.Unrestricted() to write without a region policy)")
	}
	cl := &Client{container: c, keyring: kr, guard: guard, names: newNameKeyCache()}
	if opts != nil {
		cl.opts = *opts
		cl.opts.RequireContext = maps.Clone(opts.RequireContext)
		cl.opts.PublicTagNames = slices.Clone(opts.PublicTagNames)
	}
	for _, t := range cl.opts.PublicTagNames {
		if err := names.CheckTag(t, ""); err != nil {
			return nil, fmt.Errorf("blobstore: public tag name: %w", err)
		}
		if cl.public == nil {
			cl.public = map[string]bool{}
		}
		cl.public[t] = true
	}
	if cl.opts.BlockSize != 0 {
		if err := checkSize("block", cl.opts.BlockSize); err != nil {
			return nil, err
		}
	}
	if _, err := cl.transfer(0, 0); err != nil {
		return nil, err
	}
	return cl, nil
}

// transferSettings are the range size and concurrency of one call.
type transferSettings struct {
	rangeSize   int64
	concurrency int
}

// transfer returns a call's range size and concurrency: the call's
// options, else the client's, else the defaults.
func (c *Client) transfer(rangeSize int64, concurrency int) (transferSettings, error) {
	t := transferSettings{
		rangeSize:   firstNonZero(rangeSize, c.opts.RangeSize, DefaultRangeSize),
		concurrency: int(firstNonZero(int64(concurrency), int64(c.opts.Concurrency), DefaultConcurrency)),
	}
	if err := checkSize("range", t.rangeSize); err != nil {
		return t, err
	}
	if t.concurrency < 1 || t.concurrency > maxConcurrency {
		return t, fmt.Errorf("blobstore: concurrency %d outside 1..%d", t.concurrency, maxConcurrency)
	}
	return t, nil
}

func checkSize(what string, n int64) error {
	if n < minBlockSize || n > MaxBlockSize {
		return fmt.Errorf("blobstore: %s size %d outside %d..%d", what, n, minBlockSize, MaxBlockSize)
	}
	return nil
}

func firstNonZero(v ...int64) int64 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

// requireContext merges the client's required context with a call's. The
// second result is false when they require different values for one key:
// no object can satisfy both.
func (c *Client) requireContext(call keyring.Context) (keyring.Context, bool) {
	if len(c.opts.RequireContext) == 0 {
		return call, true
	}
	if len(call) == 0 {
		return c.opts.RequireContext, true
	}
	merged := maps.Clone(c.opts.RequireContext)
	for k, v := range call {
		if w, ok := merged[k]; ok && w != v {
			return nil, false
		}
		merged[k] = v
	}
	return merged, true
}
