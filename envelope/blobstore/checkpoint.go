package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Checkpoints: the durable state of a job, one small JSON blob per shard,
//
//	.geoseal/jobs/NAME/shard-I-of-N
//
// in the container the job walks. It holds the listing marker a rerun
// resumes from, the name of the blob whose snapshots or versions that
// page of the listing starts with if that blob is done (skip), and the
// outcomes counted before it. Every write is
// conditional on the ETag the worker last saw (If-None-Match: * for the
// first), so of two workers given the same job and shard, the second to
// write fails with ErrCheckpointConflict instead of both advancing it. A
// worker writes once when it starts (which claims the shard) and once
// after each page of the listing. Nothing else is kept anywhere: a job
// survives the loss of every machine that ran it.

const (
	checkpointFormat = "geoseal-checkpoint/1"
	// maxCheckpointSize bounds what a worker reads back: a checkpoint is
	// a marker and a few counts.
	maxCheckpointSize = 64 << 10
	maxJobName        = 64
)

// checkpointState is the content of a checkpoint blob.
type checkpointState struct {
	Format    string           `json:"format"`
	Job       string           `json:"job"`
	Operation string           `json:"operation"`
	Params    string           `json:"params,omitempty"`
	Prefix    string           `json:"prefix"`
	Shard     int              `json:"shard"`
	Shards    int              `json:"shards"`
	Marker    string           `json:"marker"`
	Skip      string           `json:"skip,omitempty"`
	Done      bool             `json:"done"`
	Counts    map[string]int64 `json:"counts"`
	Updated   time.Time        `json:"updated"`

	resumed bool // read from an existing checkpoint
}

// checkJobName accepts 1 to 64 letters, digits, dots, dashes and
// underscores, not starting with a dot: a job name becomes part of a blob
// name.
func checkJobName(job string) error {
	ok := len(job) > 0 && len(job) <= maxJobName && job[0] != '.'
	for i := 0; ok && i < len(job); i++ {
		c := job[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
	}
	if !ok {
		return fmt.Errorf("blobstore: job name %q: want 1 to %d letters, digits, '.', '-' or '_', not starting with '.'", job, maxJobName)
	}
	return nil
}

// checkpointName is the blob a job's shard records its progress in.
func checkpointName(job string, shard, shards int) string {
	return jobsPrefix + job + "/shard-" + strconv.Itoa(shard) + "-of-" + strconv.Itoa(max(shards, 1))
}

// A checkpointer writes the checkpoint of one job's shard.
type checkpointer struct {
	bb    *blockblob.Client
	state checkpointState
	etag  *azcore.ETag // of the last write or read; nil: no checkpoint yet
}

// openCheckpoint reads the job's checkpoint for spec's shard, or starts
// one, and claims the shard by writing it. A finished job is returned as
// it is, without a write.
func openCheckpoint(ctx context.Context, ctr *container.Client, spec *walkSpec) (*checkpointer, checkpointState, error) {
	name := checkpointName(spec.job, spec.shard, spec.shards)
	cp := &checkpointer{bb: ctr.NewBlockBlobClient(name)}
	want := checkpointState{
		Format: checkpointFormat, Job: spec.job, Operation: spec.op, Params: spec.params,
		Prefix: spec.prefix, Shard: spec.shard, Shards: max(spec.shards, 1), Counts: map[string]int64{},
	}
	st, etag, err := readCheckpoint(ctx, cp.bb)
	switch {
	case isNotFound(err):
		st = want
	case err != nil:
		return nil, st, fmt.Errorf("blobstore: reading the checkpoint %s: %w", name, err)
	default:
		if st.Operation != want.Operation || st.Params != want.Params || st.Prefix != want.Prefix ||
			st.Shard != want.Shard || st.Shards != want.Shards || st.Job != want.Job {
			return nil, st, fmt.Errorf("%w: %s records %s of prefix %q, shard %d of %d; this run is %s of prefix %q, shard %d of %d (or for another target)",
				ErrJobMismatch, name, st.Operation, st.Prefix, st.Shard, st.Shards, want.Operation, want.Prefix, want.Shard, want.Shards)
		}
		st.resumed = true
		cp.etag = &etag
	}
	cp.state = st
	if st.Done {
		return cp, st, nil
	}
	if err := cp.save(ctx, st.Marker, st.Skip, st.Counts, false); err != nil {
		return nil, st, err
	}
	return cp, st, nil
}

// readCheckpoint reads and parses a checkpoint blob.
func readCheckpoint(ctx context.Context, bb *blockblob.Client) (checkpointState, azcore.ETag, error) {
	var st checkpointState
	resp, err := bb.DownloadStream(ctx, nil)
	if err != nil {
		return st, "", err
	}
	defer resp.Body.Close()
	if resp.ETag == nil {
		return st, "", errNoETag
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckpointSize+1))
	if err != nil {
		return st, "", err
	}
	st, err = parseCheckpoint(data)
	return st, *resp.ETag, err
}

// parseCheckpoint decodes a checkpoint. What it accepts is what save
// writes: one JSON object of the known fields, the known format, no
// negative count. Anything else is not a checkpoint of ours.
func parseCheckpoint(data []byte) (checkpointState, error) {
	var st checkpointState
	if len(data) > maxCheckpointSize {
		return st, fmt.Errorf("%w: a checkpoint of more than %d bytes", ErrJobMismatch, maxCheckpointSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || dec.More() || st.Format != checkpointFormat {
		return checkpointState{}, fmt.Errorf("%w: not a %s checkpoint (%v)", ErrJobMismatch, checkpointFormat, err)
	}
	for k, v := range st.Counts {
		if v < 0 {
			return checkpointState{}, fmt.Errorf("%w: count %q is %d", ErrJobMismatch, k, v)
		}
	}
	if st.Counts == nil {
		st.Counts = map[string]int64{}
	}
	return st, nil
}

// save records the marker a rerun resumes from and the outcomes counted
// before it, conditional on the checkpoint being as this worker last saw
// it. It keeps counts: the caller hands over a map it no longer changes.
func (cp *checkpointer) save(ctx context.Context, marker, skip string, counts map[string]int64, done bool) error {
	st := cp.state
	st.Marker, st.Skip, st.Counts, st.Done, st.Updated = marker, skip, counts, done, time.Now().UTC()
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ac := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{}}
	if cp.etag != nil {
		ac.ModifiedAccessConditions.IfMatch = cp.etag
	} else {
		anyETag := azcore.ETagAny
		ac.ModifiedAccessConditions.IfNoneMatch = &anyETag
	}
	ct := "application/json"
	resp, err := cp.bb.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
		AccessConditions: ac,
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: &ct},
	})
	if err == nil {
		cp.state, cp.etag = st, resp.ETag
		return nil
	}
	if !errors.Is(blobChanged(err), ErrBlobChanged) {
		return fmt.Errorf("blobstore: writing the checkpoint %s: %w", cp.bb.URL(), err)
	}
	// A retry of a write whose response was lost fails its own condition:
	// if what is there is what was sent, the write is this worker's.
	if got, etag, rerr := readCheckpoint(ctx, cp.bb); rerr == nil {
		if again, _ := json.Marshal(got); bytes.Equal(again, data) {
			cp.state, cp.etag = st, &etag
			return nil
		}
	}
	return fmt.Errorf("%w (%s): %w", ErrCheckpointConflict, cp.bb.URL(), err)
}
