package blobstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/geoseal/geoseal/internal/names"
)

// Blob index tags under SealNames: each value becomes a keyed token
// (names.Keys.TagValue), and each name too unless ClientOptions lists it
// as public. The service can still answer equality queries, because the
// same tag always gives the same token, which is also what it learns:
// which blobs share a tag value (not the value).

// maxTags is the service's limit on index tags per blob.
const maxTags = 10

// checkTags refuses, before any request, a tag set the service would
// refuse at the commit: too many tags, names or values too long, or, in
// the clear, characters index tags cannot hold. Tokens are always valid.
func (c *Client) checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("blobstore: %d index tags, at most %d", len(tags), maxTags)
	}
	for k, v := range tags {
		if err := names.CheckTag(k, v); err != nil {
			return err
		}
		if c.opts.SealNames && !c.public[k] {
			continue
		}
		if !validTagText(k) {
			return fmt.Errorf("blobstore: tag name %q: only letters, digits, space and + - . / : = _ are allowed", k)
		}
		if !c.opts.SealNames && !validTagText(v) {
			return fmt.Errorf("blobstore: tag %q: value %q: only letters, digits, space and + - . / : = _ are allowed", k, v)
		}
	}
	return nil
}

// validTagText reports whether s uses only the characters the service
// allows in a tag name or value.
func validTagText(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" +-./:=_", r):
		default:
			return false
		}
	}
	return true
}

// storedTags returns the tags as the service stores them: as given, or
// under SealNames as tokens.
func (c *Client) storedTags(keys *names.Keys, tags map[string]string) map[string]string {
	if keys == nil || len(tags) == 0 {
		return tags
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		name := k
		if !c.public[k] {
			name = keys.TagName(k)
		}
		out[name] = keys.TagValue(k, v)
	}
	return out
}

// FindBlobsByTagsOptions configure NewFindBlobsByTagsPager. Nil means the
// defaults.
type FindBlobsByTagsOptions struct {
	// MaxResults bounds the items of a page (the service's default, 5000,
	// when zero).
	MaxResults int32
	// Marker resumes a search where a previous page's NextMarker left it.
	Marker *string
}

// NewFindBlobsByTagsPager lists the blobs of the container whose index
// tags include every pair of tags, with the service's Find Blobs by Tags,
// a page at a time. Under SealNames it computes the tokens the pairs are
// stored as, and the items have their logical names.
//
// Only equality is supported: the service sees tokens, which keep
// equality and nothing else (and so shows which blobs share a value).
// Each item costs a HEAD besides the page's request, to read the blob's
// metadata; a blob deleted in between is left out. The service indexes
// tags asynchronously: a blob just tagged may take a moment to be found.
func (c *Client) NewFindBlobsByTagsPager(tags map[string]string, opts *FindBlobsByTagsOptions) *runtime.Pager[ListResponse] {
	if opts == nil {
		opts = &FindBlobsByTagsOptions{}
	}
	marker := opts.Marker
	more := true
	var where string
	var keys *names.Keys
	return runtime.NewPager(runtime.PagingHandler[ListResponse]{
		More: func(ListResponse) bool { return more },
		Fetcher: func(ctx context.Context, _ *ListResponse) (ListResponse, error) {
			if where == "" {
				var err error
				where, keys, err = c.tagQuery(ctx, tags)
				if errors.Is(err, ErrNoNameKey) {
					// Nothing was sealed in the container: no blob has
					// these tokens.
					more = false
					return ListResponse{}, nil
				}
				if err != nil {
					return ListResponse{}, err
				}
			}
			fo := &container.FilterBlobsOptions{Marker: marker}
			if opts.MaxResults > 0 {
				fo.MaxResults = &opts.MaxResults
			}
			page, err := c.container.FilterBlobs(ctx, where, fo)
			if err != nil {
				return ListResponse{}, err
			}
			resp := ListResponse{}
			if page.NextMarker != nil && *page.NextMarker != "" {
				resp.NextMarker = page.NextMarker
			}
			marker, more = resp.NextMarker, resp.NextMarker != nil
			for _, it := range page.Blobs {
				if it == nil || it.Name == nil {
					continue
				}
				st, err := stat(ctx, c.container.NewBlobClient(*it.Name), nil)
				if isNotFound(err) {
					continue
				}
				if err != nil {
					return ListResponse{}, err
				}
				resp.Items = append(resp.Items, describeBlob(keys, *it.Name, st.metadata, st.size, st.etag, st.lastModified))
			}
			return resp, nil
		},
	})
}

// tagQuery returns the Find Blobs by Tags expression that matches tags.
func (c *Client) tagQuery(ctx context.Context, tags map[string]string) (string, *names.Keys, error) {
	if len(tags) == 0 {
		return "", nil, fmt.Errorf("blobstore: find blobs by tags: no tags")
	}
	if err := c.checkTags(tags); err != nil {
		return "", nil, err
	}
	var keys *names.Keys
	if c.opts.SealNames {
		var err error
		if keys, err = c.nameKeys(ctx, false); err != nil {
			return "", nil, err
		}
	}
	stored := c.storedTags(keys, tags)
	// Tag text holds no quote (checkTags), and tokens are base32.
	terms := make([]string, 0, len(stored))
	for k, v := range stored {
		terms = append(terms, fmt.Sprintf("\"%s\" = '%s'", k, v))
	}
	slices.Sort(terms)
	return strings.Join(terms, " AND "), keys, nil
}
