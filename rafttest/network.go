package rafttest

import (
	"slices"

	"github.com/keelraft/raft"
)

// envelope is a message in flight.
type envelope struct {
	m   raft.Message
	due int64  // step at which it arrives
	seq uint64 // send order, to break ties
	// lost marks a message sent into a burst of losses: it never arrives.
	lost bool
}

// simNetwork holds the messages in flight and the links that are cut. It
// delivers each message after a random delay (which reorders them), drops
// and duplicates at the rates of the run, and drops every message on a cut
// link at delivery time.
type simNetwork struct {
	inflight []envelope
	seq      uint64
	// cut[{from, to}] blocks that direction of the link.
	cut map[[2]uint64]bool
	// burst[{from, to}] is the step until which that direction of the
	// link loses every message sent on it.
	burst map[[2]uint64]int64
}

func newSimNetwork() *simNetwork {
	return &simNetwork{cut: map[[2]uint64]bool{}, burst: map[[2]uint64]int64{}}
}

// sendLost puts m in flight as lost: it is dropped on arrival.
func (nw *simNetwork) sendLost(m raft.Message, due int64) {
	nw.send(m, due)
	nw.inflight[len(nw.inflight)-1].lost = true
}

// bursting reports whether the link from -> to loses every message sent
// at step now.
func (nw *simNetwork) bursting(from, to uint64, now int64) bool {
	return nw.burst[[2]uint64{from, to}] > now
}

// send puts m in flight, due at step due.
func (nw *simNetwork) send(m raft.Message, due int64) {
	nw.seq++
	if len(m.Entries) > 0 {
		// The sender may reuse its buffers; a duplicate must not see that.
		m.Entries = slices.Clone(m.Entries)
	}
	nw.inflight = append(nw.inflight, envelope{m: m, due: due, seq: nw.seq})
}

// takeDue removes and returns the messages due at or before now whose
// receiver is ready (ready reports false for a paused node, whose messages
// wait), in arrival order.
func (nw *simNetwork) takeDue(now int64, ready func(id uint64) bool) []envelope {
	var out []envelope
	kept := nw.inflight[:0]
	for _, e := range nw.inflight {
		if e.due <= now && ready(e.m.To) {
			out = append(out, e)
		} else {
			kept = append(kept, e)
		}
	}
	clear(nw.inflight[len(kept):])
	nw.inflight = kept
	slices.SortFunc(out, func(a, b envelope) int {
		if a.due != b.due {
			if a.due < b.due {
				return -1
			}
			return 1
		}
		if a.seq < b.seq {
			return -1
		}
		return 1
	})
	return out
}

// redelay gives every message in flight to id a new arrival step.
func (nw *simNetwork) redelay(id uint64, due func() int64) {
	for i := range nw.inflight {
		if nw.inflight[i].m.To == id {
			nw.inflight[i].due = due()
		}
	}
}

// blocked reports whether the link from -> to is cut.
func (nw *simNetwork) blocked(from, to uint64) bool { return nw.cut[[2]uint64{from, to}] }

// heal restores every cut link.
func (nw *simNetwork) heal() { clear(nw.cut) }

// cutBetween cuts every link between the groups a and b; oneWay cuts only
// a -> b.
func (nw *simNetwork) cutBetween(a, b []uint64, oneWay bool) {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue
			}
			nw.cut[[2]uint64{x, y}] = true
			if !oneWay {
				nw.cut[[2]uint64{y, x}] = true
			}
		}
	}
}
