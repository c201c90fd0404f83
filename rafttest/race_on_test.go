//go:build race

package rafttest

// raceEnabled reports that the race detector is on: the chaos tests then
// run fewer seeds by default, since every run is several times slower.
const raceEnabled = true
