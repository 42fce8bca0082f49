package blobstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/geoseal/geoseal/internal/names"
)

// What an Upload under SealNames stores beside the object: the sealed name
// and the sealed metadata as two metadata entries, the metadata set always
// (empty or not, so that its absence says nothing), and HTTP headers only
// if they say nothing about the content.

// checkSealedUpload refuses, before any request, what an Upload under
// SealNames could not store without showing it: metadata that cannot be
// sealed (a nil value, more than names.MaxMetadataSize bytes encoded) and
// HTTP headers that describe the content.
func checkSealedUpload(opts *UploadOptions) error {
	if _, err := encodeUserMetadata(opts.Metadata); err != nil {
		return err
	}
	return checkSealedHTTPHeaders(opts.HTTPHeaders)
}

// encodeUserMetadata encodes user metadata for sealing.
func encodeUserMetadata(md map[string]*string) ([]byte, error) {
	m := make(map[string]string, len(md))
	for k, v := range md {
		if v == nil {
			return nil, fmt.Errorf("blobstore: metadata %q has no value", k)
		}
		m[k] = *v
	}
	return names.EncodeMetadata(m)
}

// sealEntries adds to md, the metadata of the blob t.stored about to hold
// the object with the given message id, its sealed name and metadata.
func sealEntries(md map[string]*string, t uploadTarget, user map[string]*string, messageID [names.MessageIDSize]byte) error {
	sn, err := t.keys.Seal(names.Name, []byte(t.logical), t.stored, messageID)
	if err != nil {
		return err
	}
	payload, err := encodeUserMetadata(user)
	if err != nil {
		return err
	}
	sm, err := t.keys.Seal(names.Metadata, payload, t.stored, messageID)
	if err != nil {
		return err
	}
	md[metaSealedName] = &sn
	md[metaSealedMetadata] = &sm
	return nil
}

// octetStream is the one Content-Type a sealed blob may have: the
// service's default, which says nothing.
const octetStream = "application/octet-stream"

// checkSealedHTTPHeaders refuses the HTTP headers the service would store
// in the clear and that can carry a name or describe the content.
func checkSealedHTTPHeaders(h *blob.HTTPHeaders) error {
	if h == nil {
		return nil
	}
	set := func(v *string) bool { return v != nil && *v != "" }
	var refused []string
	if set(h.BlobContentType) && !strings.EqualFold(strings.TrimSpace(*h.BlobContentType), octetStream) {
		refused = append(refused, "Content-Type other than "+octetStream)
	}
	if set(h.BlobContentDisposition) {
		refused = append(refused, "Content-Disposition")
	}
	if set(h.BlobContentLanguage) {
		refused = append(refused, "Content-Language")
	}
	if set(h.BlobContentEncoding) {
		refused = append(refused, "Content-Encoding")
	}
	if len(h.BlobContentMD5) > 0 {
		// A hash of the plaintext identifies it to anyone holding a copy.
		refused = append(refused, "Content-MD5")
	}
	if set(h.BlobCacheControl) && !standardCacheControl(*h.BlobCacheControl) {
		refused = append(refused, "Cache-Control with other than standard directives")
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: %s (SealNames is on)", ErrClearHTTPHeader, strings.Join(refused, ", "))
	}
	return nil
}

// standardCacheControl reports whether v is made only of the standard
// Cache-Control directives (RFC 9111, RFC 8246, RFC 5861), with numbers
// as arguments: nothing a user could write a name into. Only HTTP's
// optional whitespace (space, tab) may surround a directive; TrimSpace
// would also let through form feeds, vertical tabs and Unicode spaces.
func standardCacheControl(v string) bool {
	for d := range strings.SplitSeq(v, ",") {
		name, arg, hasArg := strings.Cut(strings.Trim(d, " \t"), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store", "no-transform", "must-revalidate", "proxy-revalidate",
			"must-understand", "private", "public", "immutable":
			if hasArg {
				return false
			}
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if _, err := strconv.ParseUint(arg, 10, 32); !hasArg || err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}
