package raft

import (
	"fmt"

	"go.uber.org/zap"
)

// confApplyTracker notices a host that leaves committed configuration
// changes unapplied. The core hands out a committed EntryConfChange in
// Ready.CommittedEntries and counts on the host to pass it to
// ApplyConfChange before acknowledging the entry as applied; a host that
// applies it like any other entry, or skips it, would run with a stale
// membership (a new node never replicated to, a removed one still counted)
// without any error. The tracker remembers the indexes of the changes
// handed out and not yet passed to ApplyConfChange, and reports each one
// the host acknowledges as applied without passing it: a warning, and a
// panic in builds with the invariants tag, where tests must fail on it.
type confApplyTracker struct {
	// pending holds the indexes of the configuration changes handed out and
	// not yet passed to ApplyConfChange, in log order.
	pending []uint64
}

// handedOut records the configuration changes among ents, which the host
// received to apply.
func (t *confApplyTracker) handedOut(ents []Entry) {
	for i := range ents {
		if ents[i].Type == EntryConfChange {
			t.pending = append(t.pending, ents[i].Index)
		}
	}
}

// applied records that the host passed the oldest handed-out change to
// ApplyConfChange (hosts apply them in log order).
func (t *confApplyTracker) applied() {
	if len(t.pending) > 0 {
		t.pending = t.pending[1:]
	}
}

// checkAcked reports the handed-out changes at or below index, which the
// host acknowledged as applied without passing them to ApplyConfChange, and
// forgets them.
func (t *confApplyTracker) checkAcked(r *raft, index uint64) {
	k := 0
	for k < len(t.pending) && t.pending[k] <= index {
		k++
	}
	if k == 0 {
		return
	}
	missed := t.pending[:k]
	r.logger.Warn("committed configuration changes were acknowledged as applied but never passed to ApplyConfChange: this node's membership is stale (the host loop must call ApplyConfChange for every EntryConfChange it applies)",
		zap.Uint64s("indexes", missed))
	if invariantsEnabled {
		panic(fmt.Sprintf("raft: node %d: host acknowledged configuration changes at %v as applied without ApplyConfChange", r.id, missed))
	}
	t.pending = t.pending[k:]
}
