package raftnode

import "time"

// nodeClock is the time a Node's loop runs on: a ticker that wakes it about
// every tick interval, and a clock whose readings say how much time passed.
// The system clock is the only one outside tests; tests inject a manual one
// to pause a node deterministically.
type nodeClock interface {
	// Now returns the current time. Only differences between readings are
	// used, so a reading must carry a monotonic clock (as time.Now's do).
	Now() time.Time
	// NewTicker returns a channel that receives a value about every d,
	// keeping at most one pending as a time.Ticker does, and the function
	// that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// systemClock is the process's clock: time.Now and time.NewTicker.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
