package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/stream"
)

// UploadOptions configure Upload. Nil means the defaults.
type UploadOptions struct {
	// Context is the encryption context (see EncryptOptions.Context). It is
	// stored, in the clear, in the object's header, not in blob metadata.
	Context keyring.Context

	// ChunkSize and Suite are those of EncryptOptions.
	ChunkSize int
	Suite     stream.Suite

	// BlockSize and Concurrency override the client's (see
	// BlobClientOptions).
	BlockSize   int64
	Concurrency int

	// Metadata is stored with the blob, next to the entries Upload adds
	// (names starting with "geoseal", which Metadata must not use, nor
	// "encryptiondata"). Metadata is in the clear: no secrets in it.
	Metadata map[string]*string

	// Tags are the blob index tags, also in the clear.
	Tags map[string]string

	// HTTPHeaders are the blob's HTTP headers (content type...).
	HTTPHeaders *blob.HTTPHeaders

	// AccessConditions make the commit conditional: for example
	// IfNoneMatch: to.Ptr(azcore.ETagAny) to never overwrite a blob, or
	// IfMatch to replace only the version read before. A condition that
	// fails leaves the existing blob untouched and returns the service's
	// error (bloberror.ConditionNotMet or bloberror.BlobAlreadyExists).
	// A lease ID in them is sent with every block.
	AccessConditions *blob.AccessConditions

	// Progress, when set, is called after each block is staged with the
	// number of bytes of the blob (header and encrypted body) staged so
	// far. Calls are sequential and the count increases.
	Progress func(bytesStaged int64)
}

// Upload encrypts what r yields into a new geoseal object and stores it as
// the block blob blobName, replacing any blob of that name only when all
// of it has been staged.
//
// Before anything else, and before a byte is sent, Upload asks the
// client's region guard about the container's storage account; a refusal
// is returned as it is (a *region.Violation that errors.As finds). Then it
// wraps a fresh data key with the client's keyring, stages the header as
// the first block, and encrypts r into body blocks staged Concurrency at a
// time while r is still being read. Only when r is exhausted and every
// block is staged does it commit the block list, with opts' metadata, tags
// and access conditions: until then the previous blob, if any, is what
// readers see. If anything fails, or ctx is cancelled, Upload stops
// reading r, waits for the requests in flight, and returns the error with
// nothing committed. Memory stays at about BlockSize × (Concurrency + 1)
// whatever the size of r.
func (c *BlobClient) Upload(ctx context.Context, blobName string, r io.Reader, opts *UploadOptions) (UploadResponse, error) {
	if opts == nil {
		opts = &UploadOptions{}
	}
	blockSize, concurrency, err := c.uploadTransfer(opts.BlockSize, opts.Concurrency)
	if err != nil {
		return UploadResponse{}, err
	}
	if err := checkUserMetadata(opts.Metadata); err != nil {
		return UploadResponse{}, err
	}
	if r == nil {
		return UploadResponse{}, errors.New("envelope: nil reader")
	}

	// The guard decides before any byte leaves, before even the keyring is
	// asked (a remote keyring call says nothing about the data, but there
	// is no reason to make it for a write that will not happen).
	decision, err := c.guard.CheckURL(ctx, c.container.URL())
	if err != nil {
		return UploadResponse{}, fmt.Errorf("envelope: upload of %q refused: %w", blobName, err)
	}

	header, body, err := format.New(ctx, c.keyring, &format.Params{
		Context:   opts.Context,
		ChunkSize: opts.ChunkSize,
		Suite:     opts.Suite,
	})
	if err != nil {
		return UploadResponse{}, err
	}
	defer body.Zero()
	body.Options.Concurrency = cryptoConcurrency(concurrency)

	bb := c.container.NewBlockBlobClient(blobName)
	st, err := newStager(ctx, bb, int(blockSize), concurrency, opts)
	if err != nil {
		return UploadResponse{}, err
	}
	src := &countingReader{r: r, ctx: st.ctx}
	sizes, err := st.run(header, func(dst io.Writer) error {
		sw, err := stream.NewWriter(dst, body.Key, &body.Options)
		if err != nil {
			return err
		}
		if _, err := io.Copy(sw, src); err != nil {
			sw.Close() // stops the sealing goroutines; the stager refuses the final chunk
			return err
		}
		return sw.Close()
	})
	if err != nil {
		return UploadResponse{}, fmt.Errorf("envelope: upload of %q: %w", blobName, err)
	}

	md := make(map[string]*string, len(opts.Metadata)+4)
	for k, v := range opts.Metadata {
		md[k] = v
	}
	if err := setObjectMetadata(md, len(header), &body.Options, src.n); err != nil {
		return UploadResponse{}, err
	}

	resp, err := bb.CommitBlockList(ctx, st.ids, &blockblob.CommitBlockListOptions{
		Metadata:         md,
		Tags:             opts.Tags,
		HTTPHeaders:      opts.HTTPHeaders,
		AccessConditions: opts.AccessConditions,
	})
	if err != nil {
		return UploadResponse{}, fmt.Errorf("envelope: upload of %q: committing: %w", blobName, err)
	}
	return UploadResponse{
		ETag:          resp.ETag,
		LastModified:  resp.LastModified,
		VersionID:     resp.VersionID,
		Size:          src.n,
		EncryptedSize: sizes,
		Decision:      decision,
	}, nil
}

// setObjectMetadata records what readers need to plan ranged reads.
func setObjectMetadata(md map[string]*string, headerLen int, body *stream.Options, plaintextSize int64) error {
	code, err := format.SuiteCode(body.Suite)
	if err != nil {
		return err
	}
	s := func(v string) *string { return &v }
	md[metaVersion] = s(metaVersionValue)
	md[metaHeaderLength] = s(strconv.Itoa(headerLen))
	md[metaChunkSize] = s(strconv.Itoa(body.ChunkSize))
	md[metaSuite] = s(strconv.Itoa(int(code)))
	md[metaPlaintextSize] = s(strconv.FormatInt(plaintextSize, 10))
	return nil
}

// checkUserMetadata refuses metadata names the blob client owns: a caller
// must not be able to make a blob look like a geoseal (or CSE v2) object
// with other parameters than its header's.
func checkUserMetadata(md map[string]*string) error {
	for k := range md {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, metaReservedPrefix) || lk == metaCSEv2 {
			return fmt.Errorf("envelope: metadata name %q is reserved", k)
		}
	}
	return nil
}

// countingReader counts the plaintext read and stops at cancellation, so
// that a cancelled upload stops consuming its source.
type countingReader struct {
	r   io.Reader
	ctx context.Context
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A stager cuts what is written to it into blocks and stages them, up to
// concurrency at a time, each from its own buffer. Buffers are reused:
// there are at most concurrency + 1 of them, one being filled and the
// others being sent, so the memory an upload takes does not depend on its
// length. The first failure cancels the other requests and makes every
// later Write fail.
type stager struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	bb     *blockblob.Client
	stage  *blockblob.StageBlockOptions

	uploadID  [16]byte
	blockSize int
	ids       []string // block IDs in order, header first

	cur     []byte        // the block being filled
	free    chan []byte   // buffers not in use
	nbufs   int           // buffers allocated so far
	maxBufs int           // concurrency + 1
	slots   chan struct{} // one per request in flight
	wg      sync.WaitGroup

	mu       sync.Mutex // guards staged and serializes progress calls
	staged   int64
	progress func(int64)
}

func newStager(ctx context.Context, bb *blockblob.Client, blockSize, concurrency int, opts *UploadOptions) (*stager, error) {
	s := &stager{
		bb:        bb,
		blockSize: blockSize,
		free:      make(chan []byte, concurrency+1),
		maxBufs:   concurrency + 1,
		slots:     make(chan struct{}, concurrency),
		progress:  opts.Progress,
	}
	if opts.AccessConditions != nil && opts.AccessConditions.LeaseAccessConditions != nil {
		s.stage = &blockblob.StageBlockOptions{LeaseAccessConditions: opts.AccessConditions.LeaseAccessConditions}
	}
	rand.Read(s.uploadID[:])
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	return s, nil
}

// run stages header as a block of its own, then what body writes, and
// waits for every request. It returns the total size staged. On failure
// every goroutine it started has exited when it returns.
func (s *stager) run(header []byte, body func(io.Writer) error) (int64, error) {
	defer s.cancel(nil)
	err := func() error {
		if _, err := s.Write(header); err != nil {
			return err
		}
		if err := s.cut(); err != nil {
			return err
		}
		if err := body(s); err != nil {
			return err
		}
		return s.cut()
	}()
	if err != nil {
		s.cancel(err) // a no-op if a request failed first: that failure is the cause
	}
	s.wg.Wait()
	// The cause is the first failure (or the cancellation of the caller's
	// context), not the errors it provoked in the requests still running.
	if cause := context.Cause(s.ctx); cause != nil {
		return 0, cause
	}
	return s.staged, nil
}

// Write copies p into blocks, staging each one as it fills.
func (s *stager) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := context.Cause(s.ctx); err != nil {
			return n, err
		}
		if s.cur == nil {
			buf, err := s.buffer()
			if err != nil {
				return n, err
			}
			s.cur = buf[:0]
		}
		m := copy(s.cur[len(s.cur):s.blockSize], p)
		s.cur = s.cur[:len(s.cur)+m]
		p = p[m:]
		n += m
		if len(s.cur) == s.blockSize {
			if err := s.cut(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// buffer returns a free block buffer, allocating one while fewer than
// maxBufs exist, or else waiting for a request to return one.
func (s *stager) buffer() ([]byte, error) {
	select {
	case b := <-s.free:
		return b, nil
	default:
	}
	if s.nbufs < s.maxBufs {
		s.nbufs++
		return make([]byte, s.blockSize), nil
	}
	select {
	case b := <-s.free:
		return b, nil
	case <-s.ctx.Done():
		return nil, context.Cause(s.ctx)
	}
}

// cut ends the current block, if it holds anything, and stages it.
func (s *stager) cut() error {
	if len(s.cur) == 0 {
		return nil
	}
	buf := s.cur
	s.cur = nil
	if len(s.ids) >= maxBlocks {
		s.free <- buf[:cap(buf)]
		return ErrTooManyBlocks
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		s.free <- buf[:cap(buf)]
		return context.Cause(s.ctx)
	}
	n := len(s.ids)
	id := blockID(s.uploadID, uint64(n))
	s.ids = append(s.ids, id)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		_, err := s.bb.StageBlock(s.ctx, id, streaming.NopCloser(bytes.NewReader(buf)), s.stage)
		s.free <- buf[:cap(buf)]
		if err != nil {
			s.cancel(fmt.Errorf("staging block %d: %w", n, err))
			return
		}
		s.mu.Lock()
		s.staged += int64(len(buf))
		if s.progress != nil {
			s.progress(s.staged)
		}
		s.mu.Unlock()
	}()
	return nil
}

// blockID returns the ID of block n of an upload. Every ID a BlobClient
// writes has the same length, as the service requires of the blocks of
// one blob (Rewrap mixes a new header block with the old body blocks): 24
// bytes, the upload's random ID and the block number, in base64.
func blockID(upload [16]byte, n uint64) string {
	var raw [24]byte
	copy(raw[:], upload[:])
	binary.BigEndian.PutUint64(raw[16:], n)
	return base64.StdEncoding.EncodeToString(raw[:])
}
