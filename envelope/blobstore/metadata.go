package blobstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/geoseal/geoseal/envelope/csev2"
	"github.com/geoseal/geoseal/internal/format"
	"github.com/geoseal/geoseal/stream"
)

// Blob metadata written by Upload. Azure lower-cases metadata names (and
// HTTP canonicalizes them), so they are matched without regard to case.
//
// The values are hints: a reader uses them to plan its requests and then
// checks them against the authenticated header, failing with
// ErrInvalidMetadata on any disagreement.
const (
	metaVersion        = "geoseal" // marks a geoseal object; its value is "v1"
	metaVersionValue   = "v1"
	metaHeaderLength   = "geosealheaderlength"
	metaChunkSize      = "geosealchunksize"
	metaPlaintextSize  = "geosealplaintextsize"
	metaSuite          = "geosealsuite"
	metaReservedPrefix = "geoseal"

	// Under SealNames: the sealed logical name and the sealed user
	// metadata (FORMAT.md, "Sealed names, metadata and tags").
	metaSealedName     = "geosealname"
	metaSealedMetadata = "geosealmetadata"
)

// The formats a blob can have, as Properties.Format and ListItem.Format
// report them.
const (
	// FormatGeoseal is a geoseal object (FORMAT.md).
	FormatGeoseal = "geoseal"
	// FormatCSEv2 is the client-side encryption v2 of the Azure Storage
	// SDKs, read when ClientOptions.CSEv2 is set.
	FormatCSEv2 = "azure-cse-v2"
	// FormatCSEv1 is the SDKs' older client-side encryption (AES-CBC, no
	// integrity), recognized in listings; this package does not read it.
	FormatCSEv1 = "azure-cse-v1"
	// FormatNotEncrypted is a blob whose metadata marks no encryption. A
	// geoseal object whose metadata was removed lists as not encrypted
	// too: Open and GetProperties read its header and know better.
	FormatNotEncrypted = "not-encrypted"
	// FormatUnknown is a blob whose encryption metadata this package does
	// not understand (an "encryptiondata" entry of another protocol, or
	// malformed).
	FormatUnknown = "unknown"
)

// objectMetadata is the geoseal metadata of a blob, as parsed (not yet
// trusted).
type objectMetadata struct {
	headerLength  int
	chunkSize     int
	suite         stream.Suite
	plaintextSize int64
}

// metadataValue returns the value of the entry named k (case-insensitively).
func metadataValue(md map[string]*string, k string) (string, bool) {
	for name, v := range md {
		if strings.EqualFold(name, k) && v != nil {
			return *v, true
		}
	}
	return "", false
}

// parseObjectMetadata reads the geoseal entries of a blob's metadata. ok is
// false when the blob does not carry them.
func parseObjectMetadata(md map[string]*string) (m objectMetadata, ok bool, err error) {
	v, ok := metadataValue(md, metaVersion)
	if !ok {
		return m, false, nil
	}
	if v != metaVersionValue {
		return m, true, fmt.Errorf("%w: %s=%q", ErrInvalidMetadata, metaVersion, v)
	}
	num := func(k string, lo, hi int64) (int64, error) {
		s, ok := metadataValue(md, k)
		if !ok {
			return 0, fmt.Errorf("%w: %s missing", ErrInvalidMetadata, k)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%w: %s=%q", ErrInvalidMetadata, k, s)
		}
		return n, nil
	}
	hl, err := num(metaHeaderLength, int64(format.MinHeaderSize), int64(format.MaxHeaderSize))
	if err != nil {
		return m, true, err
	}
	cs, err := num(metaChunkSize, int64(format.MinChunkSize), int64(format.MaxChunkSize))
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

// setObjectMetadata records in md what readers need to plan ranged reads.
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

// isReservedMetadata reports whether a metadata name belongs to geoseal or
// to the SDKs' client-side encryption.
func isReservedMetadata(name string) bool {
	lk := strings.ToLower(name)
	return strings.HasPrefix(lk, metaReservedPrefix) || lk == csev2.MetadataKey
}

// checkUserMetadata refuses metadata names the client owns: a caller must
// not be able to make a blob look like a geoseal (or CSE) object with other
// parameters than its header's.
func checkUserMetadata(md map[string]*string) error {
	for k := range md {
		if isReservedMetadata(k) {
			return fmt.Errorf("blobstore: metadata name %q is reserved", k)
		}
	}
	return nil
}

// maxClearMetadata is what user metadata may take of the service's 8 KiB
// for all of a blob's metadata, leaving room for geoseal's own entries.
const maxClearMetadata = 8<<10 - 512

// checkClearMetadata refuses, before any request, user metadata the
// service would refuse at the commit (after the whole body was sent):
// names that are not C# identifiers (the service's rule), values that are
// not printable ASCII (HTTP headers carry them), or more than
// maxClearMetadata bytes in all. Sealed metadata has no such limits.
func checkClearMetadata(md map[string]*string) error {
	size := 0
	for k, v := range md {
		if !isIdentifier(k) {
			return fmt.Errorf("blobstore: metadata name %q: names are letters, digits and '_', not starting with a digit", k)
		}
		if v == nil {
			return fmt.Errorf("blobstore: metadata %q has no value", k)
		}
		for i := 0; i < len(*v); i++ {
			if c := (*v)[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("blobstore: metadata %q: values are printable ASCII (seal the metadata to store other text)", k)
			}
		}
		size += len(k) + len(*v)
	}
	if size > maxClearMetadata {
		return fmt.Errorf("blobstore: %d bytes of metadata, at most %d", size, maxClearMetadata)
	}
	return nil
}

func isIdentifier(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// userMetadata returns md without the reserved entries.
func userMetadata(md map[string]*string) map[string]*string {
	out := make(map[string]*string, len(md))
	for k, v := range md {
		if !isReservedMetadata(k) {
			out[k] = v
		}
	}
	return out
}

// formatOf classifies a blob by its metadata alone. A blob carrying both
// geoseal and CSE entries is geoseal: the header decides, and a forged
// "encryptiondata" entry cannot divert it.
func formatOf(md map[string]*string) string {
	if _, ok := metadataValue(md, metaVersion); ok {
		return FormatGeoseal
	}
	v, ok := metadataValue(md, csev2.MetadataKey)
	if !ok {
		return FormatNotEncrypted
	}
	ed, err := csev2.ParseEncryptionData([]byte(v))
	switch {
	case err != nil:
		return FormatUnknown
	case ed.EncryptionAgent.Protocol == csev2.Protocol10:
		return FormatCSEv1
	}
	return FormatCSEv2
}

// listedSize returns the plaintext size a listing reports for a blob of
// the given format and stored size, from its metadata (not authenticated),
// or -1 when the metadata does not say.
func listedSize(f string, md map[string]*string, stored int64) int64 {
	switch f {
	case FormatGeoseal:
		m, _, err := parseObjectMetadata(md)
		if err != nil {
			return -1
		}
		want := stream.EncryptedSize(m.plaintextSize, &stream.Options{ChunkSize: m.chunkSize, Suite: m.suite})
		if want < 0 || int64(m.headerLength)+want != stored {
			return -1
		}
		return m.plaintextSize
	case FormatCSEv2:
		v, _ := metadataValue(md, csev2.MetadataKey)
		ed, err := csev2.ParseEncryptionData([]byte(v))
		if err != nil || ed.EncryptedRegionInfo == nil {
			return -1
		}
		return cseV2PlaintextSize(stored, ed.EncryptedRegionInfo.DataLength)
	case FormatNotEncrypted:
		return stored
	}
	return -1
}

// cseV2PlaintextSize is the plaintext size of a CSE v2 blob of the given
// stored size: every region carries csev2.Overhead bytes of nonce and tag
// (FORMAT.md, "Azure client-side encryption v2"). It returns -1 for a size
// no writer produces.
func cseV2PlaintextSize(stored, regionLength int64) int64 {
	if regionLength <= 0 || stored < 0 {
		return -1
	}
	region := regionLength + csev2.Overhead
	regions := (stored + region - 1) / region
	if rest := stored % region; rest != 0 && rest < csev2.Overhead {
		return -1
	}
	return stored - regions*csev2.Overhead
}

var errNoETag = errors.New("blobstore: the service sent no ETag")
