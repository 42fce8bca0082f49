package blobstore

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// DeleteOptions configure Delete. Nil means the defaults.
type DeleteOptions struct {
	// DeleteSnapshots deletes the blob's snapshots with it. Without it, a
	// blob that has snapshots is not deleted (the service's
	// bloberror.SnapshotsPresent). Snapshots hold the object as it was
	// when they were taken, under the keys of that time: rotating a key
	// does not reach them.
	DeleteSnapshots bool

	// AccessConditions make the deletion conditional (IfMatch an ETag to
	// delete only the version read before). A condition that fails
	// returns an error matching ErrBlobChanged.
	AccessConditions *blob.AccessConditions
}

// DeleteResponse describes a deletion.
type DeleteResponse struct {
	blob.DeleteResponse
	// StoredName is the name of the blob deleted: the name given, or under
	// SealNames the name it was stored as.
	StoredName string
}

// Delete deletes the blob name (and, with opts.DeleteSnapshots, its
// snapshots). It reads nothing: any blob can be deleted, geoseal or not,
// except the container's name key, which would take every sealed name
// with it (ErrInvalidName). Under SealNames name is a logical name. With
// soft delete on in the account, the blob can still be undeleted for the
// retention period, with its old keys.
func (c *Client) Delete(ctx context.Context, name string, opts *DeleteOptions) (DeleteResponse, error) {
	if opts == nil {
		opts = &DeleteOptions{}
	}
	if err := c.checkName(name); err != nil {
		return DeleteResponse{}, fmt.Errorf("blobstore: delete %q: %w", name, err)
	}
	t, err := c.target(ctx, name, false)
	if err != nil {
		return DeleteResponse{}, fmt.Errorf("blobstore: delete %q: %w", name, err)
	}
	o := &blob.DeleteOptions{AccessConditions: opts.AccessConditions}
	if opts.DeleteSnapshots {
		include := blob.DeleteSnapshotsOptionTypeInclude
		o.DeleteSnapshots = &include
	}
	resp, err := c.container.NewBlobClient(t.stored).Delete(ctx, o)
	if err != nil {
		return DeleteResponse{}, fmt.Errorf("blobstore: delete %q: %w", name, blobChanged(err))
	}
	return DeleteResponse{DeleteResponse: resp, StoredName: t.stored}, nil
}
