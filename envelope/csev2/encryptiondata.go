package csev2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/geoseal/geoseal/internal/keyfile"
)

// MaxEncryptionDataSize bounds the JSON encryption data ParseEncryptionData
// accepts. Azure limits all of a blob's metadata to 8 KiB together.
const MaxEncryptionDataSize = 8 << 10

// maxWrappedKeySize bounds the wrapped content key: an RSA-OAEP wrap under
// the largest RSA key accepted (keyfile.MaxRSABits, 16384 bits) is 2048
// bytes, and nothing legitimate is larger.
const maxWrappedKeySize = keyfile.MaxRSABits / 8

// EncryptionData is the content of a blob's "encryptiondata" metadata entry:
// what a reader needs, besides the key-encryption key, to decrypt the blob.
// The JSON field names are those the SDKs write.
type EncryptionData struct {
	WrappedContentKey   WrappedContentKey    `json:"WrappedContentKey"`
	EncryptionAgent     EncryptionAgent      `json:"EncryptionAgent"`
	EncryptedRegionInfo *EncryptedRegionInfo `json:"EncryptedRegionInfo"`
	// KeyWrappingMetadata is free-form; the SDKs record their name and
	// version under "EncryptionLibrary".
	KeyWrappingMetadata map[string]string `json:"KeyWrappingMetadata,omitempty"`
	// EncryptionMode is "FullBlob" for blobs.
	EncryptionMode string `json:"EncryptionMode,omitempty"`
	// ContentEncryptionIV is the AES-CBC IV of protocol 1.0 (CSE v1);
	// protocol 2.x has none, and ignores it.
	ContentEncryptionIV []byte `json:"ContentEncryptionIV,omitempty"`
}

// WrappedContentKey is the wrapped content encryption key and how to unwrap
// it.
type WrappedContentKey struct {
	// KeyID identifies the key-encryption key, for example a versioned Key
	// Vault key URL. A KeyResolver uses it to find the key.
	KeyID string `json:"KeyId"`
	// EncryptedKey is the wrapped NUL-padded protocol string and CEK. In JSON
	// it is standard, padded base64.
	EncryptedKey []byte `json:"EncryptedKey"`
	// Algorithm is the key wrap algorithm, such as "A256KW", "RSA-OAEP" or
	// "RSA-OAEP-256".
	Algorithm string `json:"Algorithm"`
}

// EncryptionAgent names the protocol and the content encryption algorithm.
type EncryptionAgent struct {
	Protocol            string `json:"Protocol"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

// EncryptedRegionInfo gives the region layout.
type EncryptedRegionInfo struct {
	// DataLength is the plaintext length of a full region.
	DataLength int64 `json:"DataLength"`
	// NonceLength is the length of each region's nonce; always 12.
	NonceLength int `json:"NonceLength"`
}

// ParseEncryptionData parses and checks the JSON of an "encryptiondata"
// metadata entry. It returns an error matching ErrUnsupportedProtocol for
// anything but protocol 2.0 or 2.1 with AES_GCM_256 or protocol 1.0 with
// AES_CBC_256 (which the readers decrypt only with ReaderOptions.ReadCSEv1),
// and one matching
// ErrInvalidEncryptionData for malformed JSON, missing fields, a nonce length
// other than 12, a region length outside [MinRegionLength, MaxRegionLength],
// a 1.0 ContentEncryptionIV that is not 16 bytes, or input longer than
// MaxEncryptionDataSize. Member names must be spelled
// exactly as the SDKs write them and appear once per object: a name that
// differs only in case from one this package reads, or a repeated name, is
// ErrInvalidEncryptionData. Other members are ignored, as the SDKs do.
func ParseEncryptionData(b []byte) (*EncryptionData, error) {
	if len(b) > MaxEncryptionDataSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d accepted", ErrInvalidEncryptionData, len(b), MaxEncryptionDataSize)
	}
	// encoding/json matches member names without regard to case and keeps
	// the last of duplicates; the SDKs' readers (Python's dict lookups,
	// Java's Jackson) match names exactly. Check the names first, so that
	// no spelling an SDK would not read is read here.
	if err := checkMemberNames(b); err != nil {
		return nil, err
	}
	var ed EncryptionData
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ed); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEncryptionData, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidEncryptionData)
	}
	if err := ed.validate(); err != nil {
		return nil, err
	}
	return &ed, nil
}

// validate checks what a reader relies on. The checks are the union of the
// SDKs' own: an SDK that would refuse the metadata is not contradicted here.
func (ed *EncryptionData) validate() error {
	switch ed.EncryptionAgent.Protocol {
	case Protocol20, Protocol21:
		if err := ed.validateV2(); err != nil {
			return err
		}
	case Protocol10:
		if err := ed.validateV1(); err != nil {
			return err
		}
	case "":
		return fmt.Errorf("%w: no EncryptionAgent.Protocol", ErrUnsupportedProtocol)
	default:
		return fmt.Errorf("%w: protocol %q (this package reads 2.0 and 2.1, and 1.0 when asked)", ErrUnsupportedProtocol, ed.EncryptionAgent.Protocol)
	}
	wk := ed.WrappedContentKey
	if wk.KeyID == "" {
		return fmt.Errorf("%w: no WrappedContentKey.KeyId", ErrInvalidEncryptionData)
	}
	if wk.Algorithm == "" {
		return fmt.Errorf("%w: no WrappedContentKey.Algorithm", ErrInvalidEncryptionData)
	}
	if len(wk.EncryptedKey) == 0 || len(wk.EncryptedKey) > maxWrappedKeySize {
		return fmt.Errorf("%w: wrapped key of %d bytes", ErrInvalidEncryptionData, len(wk.EncryptedKey))
	}
	return nil
}

// validateV2 checks the members protocol 2.x needs.
func (ed *EncryptionData) validateV2() error {
	if ed.EncryptionAgent.EncryptionAlgorithm != algorithmAESGCM256 {
		return fmt.Errorf("%w: encryption algorithm %q, want %s", ErrUnsupportedProtocol, ed.EncryptionAgent.EncryptionAlgorithm, algorithmAESGCM256)
	}
	ri := ed.EncryptedRegionInfo
	if ri == nil {
		return fmt.Errorf("%w: no EncryptedRegionInfo", ErrInvalidEncryptionData)
	}
	if ri.NonceLength != nonceSize {
		return fmt.Errorf("%w: nonce length %d, want %d", ErrInvalidEncryptionData, ri.NonceLength, nonceSize)
	}
	if ri.DataLength < MinRegionLength || ri.DataLength > MaxRegionLength {
		return fmt.Errorf("%w: region length %d outside [%d, %d]", ErrInvalidEncryptionData, ri.DataLength, MinRegionLength, MaxRegionLength)
	}
	return nil
}

// Marshal returns the JSON to store under MetadataKey, after the checks
// ParseEncryptionData makes.
func (ed *EncryptionData) Marshal() ([]byte, error) {
	if err := ed.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ed)
}

// regionLength is the plaintext length of a full region.
func (ed *EncryptionData) regionLength() int64 { return ed.EncryptedRegionInfo.DataLength }

// memberNames are the JSON member names this package reads, per object.
var memberNames = map[string][]string{
	"":                    {"WrappedContentKey", "EncryptionAgent", "EncryptedRegionInfo", "KeyWrappingMetadata", "EncryptionMode", "ContentEncryptionIV"},
	"WrappedContentKey":   {"KeyId", "EncryptedKey", "Algorithm"},
	"EncryptionAgent":     {"Protocol", "EncryptionAlgorithm"},
	"EncryptedRegionInfo": {"DataLength", "NonceLength"},
}

// checkMemberNames walks the JSON in b and refuses, in any object, a member
// name given twice and, in the objects this package reads (the root and its
// members named in memberNames), a name that matches one this package reads
// only without regard to case. Malformed JSON is left to the decoder.
func checkMemberNames(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	// The walk stops at the first syntax error (the decoder reports it).
	// It must not go on: after an error Token consumes nothing and More
	// may still say true, so a loop over an object or array would never
	// end.
	token := func() (json.Token, error) {
		t, err := dec.Token()
		if err != nil {
			return nil, errMalformedJSON
		}
		return t, nil
	}
	// walk reads one value; object is the name memberNames knows it by, or
	// "-" when it is no object this package reads.
	var walk func(object string) error
	walk = func(object string) error {
		tok, err := token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('['):
			for dec.More() {
				if err := walk("-"); err != nil {
					return err
				}
			}
			if _, err := token(); err != nil {
				return err
			}
		case json.Delim('{'):
			seen := make(map[string]bool)
			for dec.More() {
				t, err := token()
				if err != nil {
					return err
				}
				name, _ := t.(string)
				if seen[name] {
					return fmt.Errorf("%w: member %q appears twice", ErrInvalidEncryptionData, name)
				}
				seen[name] = true
				for _, k := range memberNames[object] {
					if strings.EqualFold(name, k) && name != k {
						return fmt.Errorf("%w: member %q, which the SDKs spell %q", ErrInvalidEncryptionData, name, k)
					}
				}
				child := "-"
				if object == "" {
					child = name
				}
				if err := walk(child); err != nil {
					return err
				}
			}
			if _, err := token(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(""); err != errMalformedJSON {
		return err
	}
	return nil
}

// errMalformedJSON ends checkMemberNames' walk; it never leaves it.
var errMalformedJSON = errors.New("csev2: malformed JSON")
