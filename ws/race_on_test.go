//go:build race

package ws_test

// raceEnabled: the race detector is on, and sync.Pool drops items at
// random, so allocation counts of pooled paths mean nothing.
const raceEnabled = true
