//go:build race

package stream

// raceEnabled: the race detector makes sync.Pool drop items at random.
const raceEnabled = true
