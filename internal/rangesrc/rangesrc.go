// Package rangesrc marks the source of a ranged read that holds only the
// chunks of one range, for the one caller that needs it: the blob client,
// which serves a ranged read with one round of requests for the header and
// the chunks the range covers, and so never has the final chunk of a range
// that stops short of the end.
//
// stream.NewReaderAt authenticates the final chunk of its source when it
// opens it, so that ReaderAt.Size is trusted. Given a Partial, it does not:
// every chunk a ReadAt returns is still authenticated, bound to its index,
// and the final chunk is opened as final, so a read that reaches the end
// detects a stream cut or extended at a chunk boundary; but until such a
// read, Size is only the size the caller claimed, and a stream cut short at
// a chunk boundary reads without error in the ranges it still holds.
//
// The package is internal so that this weaker mode stays out of the public
// API: code outside the module cannot name Partial, so every ReaderAt a
// user opens has a trusted Size.
package rangesrc

import "io"

// Partial is a source of which only the chunks of a range will be read.
type Partial struct{ io.ReaderAt }
