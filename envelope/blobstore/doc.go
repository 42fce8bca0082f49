// Package blobstore stores geoseal objects in Azure Blob Storage: a client
// a Go service can build on to keep export-controlled technical data
// encrypted end to end in a storage account the region guard allows, and
// to serve it back.
//
// # Writing
//
// A Client (NewClient) wraps a container.Client, a keyring and a region
// guard. Upload encrypts a stream in the process, before a byte leaves it,
// and only after the guard has allowed the container's storage account:
// the three conditions the EAR and ITAR attach to storing technical data
// abroad (end-to-end encryption, FIPS 140 cryptography, no storage in a
// proscribed country) are checked by the call that writes.
//
//	client, err := blobstore.NewClient(containerClient, kr, guard, nil)
//	_, err = client.Upload(ctx, "part.step", file, &blobstore.UploadOptions{
//		Context: keyring.Context{"project": "x-57"},
//	})
//
// An upload stages blocks and commits the block list only when everything
// is staged, so a failed or cancelled upload leaves the previous blob (or
// none) in place. Two writers of one blob cannot mix: the commit is
// conditional on the ETag the upload started from, and the loser gets
// ErrBlobChanged, early. A commit whose outcome a lost response left open
// is read back, so Upload reports what happened.
//
// # Reading
//
// Open returns a Blob, an io.ReadSeeker and io.ReaderAt over the
// plaintext that fails early (missing blob, no key, a header or final
// chunk that does not authenticate, a context mismatch) and then fetches
// only the chunks each read needs, ramping up to parallel ranged GETs for
// sequential reads. Download returns a whole blob or a range of it at
// full speed; GetProperties the authenticated size, context and wrapped
// keys without the body; ServeBlob serves a blob over HTTP with Range and
// conditional requests, as http.ServeContent serves a file; NewListPager
// lists a container with each blob's format from metadata alone; Delete
// deletes. Every read is conditional on the ETag the blob had when it was
// opened, and every chunk is authenticated before any byte of it is
// returned.
//
// A service serving blobs over HTTP wraps ServeBlob in a handler:
//
//	mux.HandleFunc("GET /files/{name...}", func(w http.ResponseWriter, r *http.Request) {
//		client.ServeBlob(w, r, r.PathValue("name"))
//	})
//
// with ClientOptions.RequireContext set to the context pairs every object
// it serves must carry, and a keyring.Cache in front of a remote keyring
// (Key Vault, an HSM): every open unwraps the object's data key, and the
// cache makes that one call per object rather than per request. The
// Client itself remembers the ciphertext of the headers and final chunks
// it opened, so an unchanged blob opened again costs a HEAD instead of
// three requests.
//
// # Blob layout
//
// The object's header is the blob's first block and the body follows in
// blocks. Rewrap replaces only the header block: a key rotation moves a
// few hundred bytes, whatever the blob's size (RewrapAll does a
// container; see below). Blob metadata records the header length, chunk size and
// plaintext size, so reads plan their requests without reading first.
// Metadata is not authenticated: it only decides what to fetch, and
// everything fetched is checked against the authenticated header
// (ErrInvalidMetadata on disagreement). The bytes of a blob are exactly a
// geoseal object (FORMAT.md): a downloaded blob decrypts with
// envelope.Decrypt.
//
// # Container-wide work
//
// RewrapAll rotates the keys of a container and Audit reports what it
// holds; both walk it with one walker, built for containers of millions
// of blobs:
//
//   - The listing (5000 blobs per request, with metadata, snapshots and
//     versions) decides what to read; bodies are never read, headers are
//     (one ranged GET per geoseal object, 13 bytes of a blob without
//     metadata, nothing for Azure client-side encryption).
//   - Shard and Shards split the container between workers that do not
//     talk to each other: a blob belongs to shard
//     uint64(SHA-256(name)[:8]) mod Shards (big-endian), with its snapshots
//     and versions. Run N workers with shards 0 to N-1, on whatever engine
//     you have (a Kubernetes Indexed Job, Azure Batch, N shells).
//   - A Job name makes a rotation resumable: each shard records its
//     progress after every page of the listing in a small blob under
//     .geoseal/jobs/NAME/ in the container itself, written conditionally
//     on its ETag so that two workers given the same shard cannot both
//     advance it (ErrCheckpointConflict). A rerun of the job resumes after
//     the last record. Walks never visit .geoseal/jobs/.
//   - Outcomes stream out one by one (Results); nothing is kept per blob,
//     so memory is bounded by a page of the listing.
//   - KMSRate paces the keyring calls of a worker, and a KMS that
//     throttles (429, Retry-After) makes all of the worker's goroutines
//     back off together, then try again.
//
// A blob already wrapped for exactly the new keys costs a rotation one
// request and no KMS call, so rerunning a rotation, with or without a job,
// is cheap.
//
// # Azure client-side encryption, and migrating from it
//
// With ClientOptions.CSEv2 set, the reads also open blobs written with the
// client-side encryption v2 of the Azure Storage SDKs for .NET, Java and
// Python, through package csev2. It is off by default. CSE v2 has no
// encryption context, so a read that requires one refuses such blobs.
//
// CSE v1 (AES-CBC, what the SDKs wrote before mid-2022 and the Python
// SDK's default still) has no integrity protection at all: a modified v1
// blob decrypts, without an error, to other plaintext. The reads open it
// only with ClientOptions.ReadCSEv1 as well, and report it as FormatCSEv1.
//
// Migrate converts such blobs into geoseal objects in place, a container
// (or a shard of it) at a time, each committed only if the blob is still
// the one it read, keeping metadata and tags:
//
//	client, err := blobstore.NewClient(containerClient, newKeys, guard,
//		&blobstore.ClientOptions{CSEv2: csev2.Keys(oldKEK)})
//	resp, err := client.Migrate(ctx, &blobstore.MigrateOptions{
//		From: []string{blobstore.FormatCSEv1, blobstore.FormatCSEv2},
//		Job:  "retire-cse",
//	})
//
// A geoseal object converted from CSE v1 is only as trustworthy as the v1
// blob was: its results carry ErrNoIntegrity.
//
// # Sealed names
//
// The body is encrypted, but a blob's name, metadata, index tags and HTTP
// headers are stored in the clear, and for technical data that is often
// where it shows first: "programs/x57/wing-spar-rev-C.step". With
// ClientOptions.SealNames, a client keeps them from the service, with
// only FIPS 140 validated primitives (FORMAT.md, "Sealed names, metadata
// and tags", specifies it):
//
//   - Every name the client takes or returns is a logical name. It is
//     stored as the keyed HMAC-SHA-256 of each of its "/"-separated
//     segments (chained, so equal segments in different directories
//     differ), in base32, so that Open finds a blob with one computation,
//     and NewListPager lists a "directory" by prefix. The logical name is
//     sealed with AES-256-GCM in the blob's metadata, bound to the stored
//     name and the object, so listings show it and it cannot be moved to
//     another blob (ErrNameTampered).
//   - User metadata is sealed the same way, as one value; geoseal's own
//     entries (format, header length, chunk size, sizes) stay readable
//     and hold nothing the user wrote.
//   - Index tags become keyed tokens, which NewFindBlobsByTagsPager can
//     still find by equality.
//   - HTTP headers that can describe the content are refused
//     (ErrClearHTTPHeader).
//
// The keys come from one random 256-bit name key per container, stored in
// it as a geoseal object (.geoseal/names.key) wrapped by the client's
// keyring like any data key, created by the first sealed Upload
// (If-None-Match *, so two first writers agree on one), unwrapped once
// per Client and cached. A RewrapAll of the whole container rotates it
// with the rest (a client without SealNames can Rewrap it alone, by its
// name); a client whose keyring cannot unwrap it gets the keyring's
// *keyring.NoMatchError.
//
// What still shows: each blob's size (and so the plaintext's, within a
// chunk's overhead), how many segments its name has and which blobs share
// a directory, roughly how long the name and the metadata are (padded to
// 32 bytes), which blobs share a tag value, the encryption context (in
// the header, in the clear as always: put nothing technical in it), and
// timing and access patterns. A name may have at most 37 segments and
// 1024 bytes; a longer one fails with ErrInvalidName before any request.
// Whoever can write to the container can delete or replace the name key
// (and with a public-key keyring, plant one): existing names then no
// longer resolve, which is noticed, and new ones would be sealed under
// the planted key, so guard write access to the container as you guard
// the data.
//
// # Errors
//
// Errors are values matched with errors.Is and errors.As: the client's own
// (ErrBlobChanged, ErrNotGeoseal, ErrTooLarge, ErrInvalidMetadata...),
// the object format's from package envelope (ErrBodyTampered,
// ErrHeaderTampered, ErrCommitment, ErrContextMismatch), the keyring's
// (*keyring.NoMatchError), the guard's (*region.Violation) and the
// service's (*azcore.ResponseError; bloberror.HasCode finds its code).
// Requests go through the container client's pipeline, so azcore's retry,
// logging and telemetry policies apply.
package blobstore
