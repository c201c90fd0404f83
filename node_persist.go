package raft

import "slices"

// runPersist is the persist goroutine: it writes every queued Ready with
// one Save, sends their MessagesAfterPersist, then has the loop acknowledge
// them in order.
func (n *Node) runPersist() {
	defer n.wg.Done()
	var batch []Ready
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
			if err := n.storage.Save(hs, ents, snap); err != nil {
				n.fail("saving to storage", err)
				return
			}
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
func nodeMergeReadies(batch []Ready) (HardState, []Entry, Snapshot) {
	var (
		hs   HardState
		ents []Entry
		snap Snapshot
	)
	for i := range batch {
		rd := &batch[i]
		if !rd.Snapshot.IsEmpty() {
			snap = rd.Snapshot
			ents = nil
		}
		if len(rd.Entries) > 0 {
			ents = nodeAppendEntries(ents, rd.Entries)
		}
		if !rd.HardState.IsEmpty() {
			hs = rd.HardState
		}
	}
	return hs, ents, snap
}

// nodeAppendEntries returns ents with more written over it, replacing the
// entries at more[0].Index and after. It never writes into the backing
// array of ents or more (both belong to Readies).
func nodeAppendEntries(ents, more []Entry) []Entry {
	if len(ents) == 0 {
		return more
	}
	first := more[0].Index
	switch {
	case first <= ents[0].Index:
		return more
	case first > ents[len(ents)-1].Index+1:
		// A gap cannot happen between Readies of one node; pass it on
		// for the storage to refuse (ErrLogGap).
		return append(slices.Clip(ents), more...)
	}
	kept := ents[:first-ents[0].Index]
	out := make([]Entry, 0, len(kept)+len(more))
	out = append(out, kept...)
	return append(out, more...)
}
