//go:build !race

package raft

// benchRaceEnabled reports whether the race detector is on; allocation
// counts are not meaningful under it.
const benchRaceEnabled = false
