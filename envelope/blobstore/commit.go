package blobstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// commitTimeout bounds a commit, and the read-back after a failed one,
// once everything is staged (see commit).
const commitTimeout = 30 * time.Second

// committed describes a block list the service committed.
type committed struct {
	etag         *azcore.ETag
	lastModified *time.Time
	versionID    *string
}

// commit makes ids the blob's committed block list, and is certain of the
// outcome:
//
//   - It runs under its own deadline, detached from ctx's cancellation:
//     once the data is staged, a cancelled caller must not leave unknown
//     whether the service applied the commit.
//   - After any failure it reads the committed block list back. ids[0] is
//     a block ID no other writer uses (it carries a random upload ID), so
//     if the blob's block list is ids, the commit happened: a lost
//     response, or a retry that failed the precondition the first attempt
//     had already changed. commit then reports success.
//   - Otherwise the commit did not happen, and the error says why
//     (ErrBlobChanged when another writer got there first). Only when the
//     read-back fails too is the outcome unknown: ErrCommitUncertain.
func commit(ctx context.Context, bb *blockblob.Client, ids []string, opts *blockblob.CommitBlockListOptions) (committed, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	resp, err := bb.CommitBlockList(ctx, ids, opts)
	if err == nil {
		return committed{etag: resp.ETag, lastModified: resp.LastModified, versionID: resp.VersionID}, nil
	}
	bl, rerr := bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	switch {
	case rerr == nil && sameIDs(bl.BlockList.CommittedBlocks, ids):
		return committed{etag: bl.ETag, lastModified: bl.LastModified}, nil
	case rerr == nil || isNotFound(rerr):
		return committed{}, fmt.Errorf("committing (not committed): %w", blobChanged(err))
	}
	return committed{}, fmt.Errorf("%w: committing: %w; reading the block list back: %w", ErrCommitUncertain, err, rerr)
}

// sameIDs reports whether a committed block list is exactly ids.
func sameIDs(blocks []*blockblob.Block, ids []string) bool {
	return slices.EqualFunc(blocks, ids, func(b *blockblob.Block, id string) bool {
		return b != nil && b.Name != nil && *b.Name == id
	})
}
