package raft

import "fmt"

// checkInvariants panics if the node's state breaks an invariant of the
// implementation. It is a bug detector for tests built with -tags
// invariants; in normal builds it compiles to nothing.
func (r *raft) checkInvariants() {
	if !invariantsEnabled {
		return
	}
	if err := r.invariantViolation(); err != nil {
		panic(fmt.Sprintf("raft: invariant violated on node %d: %v", r.id, err))
	}
}

// invariantViolation describes the first broken invariant, or returns nil.
func (r *raft) invariantViolation() error {
	l := r.raftLog
	last := l.lastIndex()
	switch {
	case l.applied > l.applying || l.applying > l.committed:
		return fmt.Errorf("want applied (%d) <= applying (%d) <= committed (%d)", l.applied, l.applying, l.committed)
	case l.committed > last:
		return fmt.Errorf("commit index %d beyond last index %d", l.committed, last)
	case l.unstable.offsetInProgress < l.unstable.offset ||
		l.unstable.offsetInProgress > l.unstable.offset+uint64(len(l.unstable.entries)):
		return fmt.Errorf("unstable in-progress offset %d outside [%d, %d]", l.unstable.offsetInProgress,
			l.unstable.offset, l.unstable.offset+uint64(len(l.unstable.entries)))
	case l.lastTerm() > r.Term:
		return fmt.Errorf("last log term %d above current term %d", l.lastTerm(), r.Term)
	case r.state == StateLeader && r.lead != r.id:
		return fmt.Errorf("leader's lead is %d", r.lead)
	}
	for i, e := range l.unstable.entries {
		if e.Index != l.unstable.offset+uint64(i) {
			return fmt.Errorf("unstable entry %d has index %d, want %d", i, e.Index, l.unstable.offset+uint64(i))
		}
		if i > 0 && e.Term < l.unstable.entries[i-1].Term {
			return fmt.Errorf("unstable entry %d has term %d below its predecessor's %d", e.Index, e.Term, l.unstable.entries[i-1].Term)
		}
	}
	if r.state == StateLeader {
		for _, id := range r.trk.memberIDs() {
			pr := r.trk.progress[id]
			if pr.Match >= pr.Next {
				return fmt.Errorf("peer %d: match %d >= next %d", id, pr.Match, pr.Next)
			}
			if pr.Match > last {
				return fmt.Errorf("peer %d: match %d beyond last index %d", id, pr.Match, last)
			}
		}
	}
	return nil
}
