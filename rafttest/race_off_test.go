//go:build !race

package rafttest

// raceEnabled reports that the race detector is on.
const raceEnabled = false
