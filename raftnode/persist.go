package raftnode

import (
	"time"

	"github.com/keelraft/raft"
)

// runPersist is the persist goroutine: it writes every queued Ready with
// one Save, sends their MessagesAfterPersist, then has the loop acknowledge
// them in order.
func (n *Node) runPersist() {
	defer n.wg.Done()
	var batch []raft.Ready
	for {
		batch = batch[:0]
		select {
		case <-n.stopc:
			return
		case rd := <-n.persistc:
			batch = append(batch, rd)
		}
	drain:
		for {
			select {
			case rd := <-n.persistc:
				batch = append(batch, rd)
			default:
				break drain
			}
		}
		hs, ents, snap := nodeMergeReadies(batch)
		if !hs.IsEmpty() || len(ents) > 0 || !snap.IsEmpty() {
			start := time.Now()
			if err := n.storage.Save(hs, ents, snap); err != nil {
				n.fail("saving to storage", err)
				return
			}
			n.counters.persistNanos.Add(uint64(time.Since(start)))
			n.counters.persistCount.Add(1)
			n.counters.persistedReadies.Add(uint64(len(batch)))
		}
		for i := range batch {
			if len(batch[i].MessagesAfterPersist) > 0 {
				n.transport.Send(batch[i].MessagesAfterPersist)
			}
		}
		n.persistedc <- len(batch) // never blocks: one report per batch of in-flight Readies
		clear(batch)
	}
}

// nodeMergeReadies merges the writes of consecutive Readies into one: the
// latest snapshot, the last non-empty hard state, and the entries as the log
// would hold them after writing each Ready in turn (later entries replace
// earlier ones at the same or higher indexes; a snapshot replaces the whole
// log before it).
func nodeMergeReadies(batch []raft.Ready) (raft.HardState, []raft.Entry, raft.Snapshot) {
	var (
		hs    raft.HardState
		ents  []raft.Entry
		owned bool
		snap  raft.Snapshot
	)
	for i := range batch {
		rd := &batch[i]
		if !rd.Snapshot.IsEmpty() {
			snap = rd.Snapshot
			ents, owned = nil, false
		}
		if len(rd.Entries) > 0 {
			ents, owned = nodeAppendEntries(ents, owned, rd.Entries)
		}
		if !rd.HardState.IsEmpty() {
			hs = rd.HardState
		}
	}
	return hs, ents, snap
}

// nodeAppendEntries returns ents with more written over it, replacing the
// entries at more[0].Index and after. It never writes into the backing
// array of more, nor into that of ents unless owned reports that ents is
// its own (made by an earlier call); it reports whether the result is.
func nodeAppendEntries(ents []raft.Entry, owned bool, more []raft.Entry) ([]raft.Entry, bool) {
	if len(ents) == 0 {
		return more, false
	}
	first := more[0].Index
	switch {
	case first <= ents[0].Index:
		return more, false
	case first <= ents[len(ents)-1].Index+1:
		ents = ents[:first-ents[0].Index]
	}
	// Past the last entry a gap cannot happen between Readies of one
	// node; it is passed on for the storage to refuse (ErrLogGap).
	if !owned {
		out := make([]raft.Entry, len(ents), 2*(len(ents)+len(more)))
		copy(out, ents)
		ents = out
	}
	return append(ents, more...), true
}
