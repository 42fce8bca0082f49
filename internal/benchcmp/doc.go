// Package benchcmp compares the speed of geoseal's stream package with raw
// AES-256-GCM and with other Go streaming-encryption libraries (tink-go,
// minio/sio, age). It is a separate module so that those libraries never
// enter geoseal's own go.mod.
//
// Run from this directory:
//
//	go test -run '^$' -bench 'RawGCM|Geoseal|Tink|Sio|Age' -benchtime 3x -count 3
//
// which prints the usual benchmark lines and then a table of MB/s and each
// row's ratio to raw AES-256-GCM (best of the -count runs, since the CPU is
// usually shared). cmd/rss measures the peak memory of a 4 GiB stream:
//
//	go run ./cmd/rss            # add -decrypt to also decrypt and check it
package benchcmp
