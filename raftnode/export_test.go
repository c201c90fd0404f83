package raftnode

import (
	"context"
	"sync"
	"time"

	"github.com/keelraft/raft"
)

// This file exports, to the package's external tests only, what they need
// to drive a Node's time.

// ManualClock is a clock that moves only when a test advances it, for
// pausing a Node deterministically: advancing it without ticks is a pause
// the process did not see (as under SIGSTOP).
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
	c   chan time.Time
}

// NewManualClock returns a manual clock at an arbitrary start.
func NewManualClock() *ManualClock {
	return &ManualClock{now: time.Unix(1_000_000, 0), c: make(chan time.Time, 1)}
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker returns the channel Advance ticks; d is ignored.
func (c *ManualClock) NewTicker(time.Duration) (<-chan time.Time, func()) {
	return c.c, func() {}
}

// Advance moves the clock forward by d and then, if tick, delivers one
// tick, dropped if one is still pending (as a time.Ticker drops them).
func (c *ManualClock) Advance(d time.Duration, tick bool) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	if tick {
		select {
		case c.c <- now:
		default:
		}
	}
}

// SetClockForTesting makes n run on c instead of the system clock. It must
// be called before Start.
func (n *Node) SetClockForTesting(c *ManualClock) { n.clock = c }

// ProposeConfChangeForTesting proposes cc as it is (Node's own calls make
// only simple changes), as AddVoter does, and returns the membership once
// this node applied it.
func (n *Node) ProposeConfChangeForTesting(ctx context.Context, cc raft.ConfChange) (raft.ConfState, error) {
	res, err := n.propose(ctx, []raft.Entry{{Type: raft.EntryConfChange, Data: cc.Marshal()}})
	if err != nil {
		return raft.ConfState{}, err
	}
	cs, _ := res[0].(raft.ConfState)
	return cs, nil
}
