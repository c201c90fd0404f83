package raft

import "fmt"

// ProgressState is the replication mode a leader uses for one peer.
type ProgressState uint8

const (
	// ProgressStateProbe sends at most one append per heartbeat interval
	// until the peer's matching index is known.
	ProgressStateProbe ProgressState = iota
	// ProgressStateReplicate streams appends optimistically, bounded by the
	// inflight window.
	ProgressStateReplicate
	// ProgressStateSnapshot waits for a snapshot to be installed; no
	// appends are sent.
	ProgressStateSnapshot
)

// String returns the state's name.
func (s ProgressState) String() string {
	switch s {
	case ProgressStateProbe:
		return "StateProbe"
	case ProgressStateReplicate:
		return "StateReplicate"
	case ProgressStateSnapshot:
		return "StateSnapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// Progress is a leader's view of one peer's log. Only its own methods change
// its fields.
type Progress struct {
	// Match is the highest index known to be replicated on the peer.
	// Invariant: Match < Next.
	Match uint64
	// Next is the index of the next entry to send.
	Next uint64
	// State is the replication mode.
	State ProgressState
	// PendingSnapshot is the index of the snapshot being sent, while State
	// is ProgressStateSnapshot.
	PendingSnapshot uint64
	// RecentActive reports whether the peer was heard from within the last
	// election timeout.
	RecentActive bool

	// leaseStart is one more than the leader's lease clock when it sent the
	// latest heartbeat the peer acknowledged this term (0: none): the
	// peer's leader lease runs from no earlier than that.
	leaseStart uint64

	// lastHeard is the leader's tick count when the peer was last heard
	// from (or when it became a member, or this leader took office).
	lastHeard uint64
	// MsgAppFlowPaused reports, in probe state, that an append was sent and
	// no answer or heartbeat response arrived since.
	MsgAppFlowPaused bool
	// IsLearner reports whether the peer is a learner.
	IsLearner bool
	// Recovering reports that the peer said its storage lost state it had
	// promised (HardState.Recovering): it counts toward no quorum until
	// the leader has repaired it.
	Recovering bool

	// incarnation is the storage incarnation the peer last sent (0: none),
	// and recoveryToken the token of its recovery (Message.Recovery).
	incarnation   uint64
	recoveryToken uint64
	// repairBarrier, while Recovering, is the index of an entry this
	// leader appended after learning so; once it is committed without the
	// peer and the peer holds it, the peer is up to date again (0: not
	// chosen yet).
	repairBarrier uint64

	// peerCommit is the commit index the peer last reported, capped at the
	// leader's.
	peerCommit uint64

	// lastAppendTick is the leader's tick count on the lease's clock (the
	// clock heartbeats are stamped with) when the newest append to the
	// peer that carried entries was sent.
	lastAppendTick uint64

	// sentCommit is the highest commit index sent to the peer this term.
	// The peer knows min(sentCommit, what it held then) is committed.
	sentCommit uint64

	inflights *inflights
}

func newProgress(next uint64, maxInflight int, maxInflightBytes uint64, isLearner bool) *Progress {
	return &Progress{
		Next:      next,
		inflights: newInflights(maxInflight, maxInflightBytes),
		IsLearner: isLearner,
	}
}

// resetForTerm forgets what was learned about the peer in earlier terms:
// nothing is known to match, and the next append starts at next.
func (pr *Progress) resetForTerm(match, next uint64) {
	pr.resetState(ProgressStateProbe)
	pr.Match = match
	pr.Next = next
	pr.RecentActive = false
	pr.sentCommit = 0
	pr.peerCommit = 0
	pr.leaseStart = 0
	pr.Recovering = false
	pr.repairBarrier = 0
	pr.recoveryToken = 0
}

// counts reports whether the peer's acknowledgements count toward a quorum:
// a recovering peer's do not.
func (pr *Progress) counts() bool { return !pr.Recovering || mutated(mutationIgnoreRecovering) }

// ackHeartbeat records that the peer answered a heartbeat sent at tick sent.
func (pr *Progress) ackHeartbeat(sent uint64) { pr.leaseStart = max(pr.leaseStart, sent+1) }

// markActive records that the peer was heard from at tick now.
func (pr *Progress) markActive(now uint64) {
	pr.RecentActive = true
	pr.lastHeard = now
}

// expireActivity clears RecentActive if the peer was not heard from within
// window ticks before now.
func (pr *Progress) expireActivity(now, window uint64) {
	if now-pr.lastHeard >= window {
		pr.RecentActive = false
	}
}

// updatePeerCommit records the commit index the peer reported.
func (pr *Progress) updatePeerCommit(c uint64) { pr.peerCommit = max(pr.peerCommit, c) }

// resetState enters state with an empty inflight window.
func (pr *Progress) resetState(state ProgressState) {
	pr.MsgAppFlowPaused = false
	pr.PendingSnapshot = 0
	pr.State = state
	pr.inflights.reset()
}

// becomeProbe returns to probing from the entry after Match (or after the
// snapshot that was being sent).
func (pr *Progress) becomeProbe() {
	if pr.State == ProgressStateSnapshot {
		pendingSnapshot := pr.PendingSnapshot
		pr.resetState(ProgressStateProbe)
		pr.Next = max(pr.Match+1, pendingSnapshot+1)
		return
	}
	pr.resetState(ProgressStateProbe)
	pr.Next = pr.Match + 1
}

// becomeReplicate starts streaming from the entry after Match.
func (pr *Progress) becomeReplicate() {
	pr.resetState(ProgressStateReplicate)
	pr.Next = pr.Match + 1
}

// becomeSnapshot waits for the peer to install the snapshot at snapshotIndex.
func (pr *Progress) becomeSnapshot(snapshotIndex uint64) {
	pr.resetState(ProgressStateSnapshot)
	pr.PendingSnapshot = snapshotIndex
}

// sentCommitIndex records that commit index c was sent to the peer.
func (pr *Progress) sentCommitIndex(c uint64) { pr.sentCommit = max(pr.sentCommit, c) }

// canBumpCommit reports whether the peer holds committed entries that it
// has not been told are committed.
func (pr *Progress) canBumpCommit(committed uint64) bool {
	return pr.sentCommit < min(committed, pr.Match)
}

// sentEntries records that an append carrying n entries up to lastIndex, of
// the given total size, was sent at tick now.
func (pr *Progress) sentEntries(lastIndex, bytes uint64, n int, now uint64) {
	if n > 0 {
		pr.lastAppendTick = now
	}
	switch pr.State {
	case ProgressStateReplicate:
		if n > 0 {
			pr.inflights.add(lastIndex, bytes)
			pr.Next = lastIndex + 1
		}
	case ProgressStateProbe:
		pr.MsgAppFlowPaused = true
	}
}

// maybeUpdate records that the peer holds the log up to n. It reports whether
// Match advanced.
func (pr *Progress) maybeUpdate(n uint64) bool {
	updated := false
	if pr.Match < n {
		pr.Match = n
		updated = true
		pr.MsgAppFlowPaused = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejected append whose previous index was rejected,
// with matchHint the highest index the peer might match. It reports whether
// Next moved (false means the rejection is stale).
func (pr *Progress) maybeDecrTo(rejected, matchHint uint64) bool {
	if pr.State == ProgressStateReplicate {
		// Appends are pipelined: a rejection of an index at or below Match
		// is an old answer.
		if rejected <= pr.Match {
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	// In probe state only the latest append (at Next-1) is meaningful.
	if pr.Next-1 != rejected {
		return false
	}
	pr.Next = max(min(rejected, matchHint+1), pr.Match+1)
	pr.MsgAppFlowPaused = false
	return true
}

// isLogRegression reports whether a rejection of the append at index
// rejected, whose answer says the peer's log matches at most up to
// matchHint, shows that the peer lost entries it had acknowledged: in probe
// state the one append in flight is at Match, and a peer that still held
// its acknowledged entries would have accepted it.
func (pr *Progress) isLogRegression(rejected, matchHint uint64) bool {
	return pr.State == ProgressStateProbe && rejected == pr.Next-1 && rejected <= pr.Match && matchHint < pr.Match
}

// becomeRegressed records that the peer lost acknowledged entries (a
// damaged tail cut off at recovery, a restored backup): it is known to hold
// only the log up to match, and the leader probes from next (> match) to
// bring it back up to date.
func (pr *Progress) becomeRegressed(match, next uint64) {
	pr.resetState(ProgressStateProbe)
	pr.Match = match
	pr.Next = max(next, match+1)
	pr.sentCommit = min(pr.sentCommit, match)
	pr.peerCommit = min(pr.peerCommit, match)
}

// maybeResendLostAppends is called when the peer answered a heartbeat the
// leader sent at tick sent. If every append still in the inflight window
// went out at an earlier tick, the peer would have answered them before or
// with the heartbeat had they arrived: they are presumed lost (a dropped
// connection, a full receive queue, a crash of the peer), and the leader
// probes from Match again instead of waiting for acknowledgements that will
// never come. Appends that were merely slow are acknowledged later and
// harmlessly. It reports whether the peer went back to probing.
func (pr *Progress) maybeResendLostAppends(sent uint64) bool {
	if pr.State != ProgressStateReplicate || pr.inflights.len() == 0 || pr.lastAppendTick >= sent {
		return false
	}
	if mutated(mutationStalledWindow) {
		return false
	}
	pr.becomeProbe()
	return true
}

// resume lets a paused probe send again (on a heartbeat response).
func (pr *Progress) resume() { pr.MsgAppFlowPaused = false }

// isPaused reports whether no append should be sent to the peer now.
func (pr *Progress) isPaused() bool {
	switch pr.State {
	case ProgressStateProbe:
		return pr.MsgAppFlowPaused
	case ProgressStateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// InflightCount returns the number of appends sent and not yet acknowledged.
func (pr *Progress) InflightCount() int { return pr.inflights.len() }

// String summarises the progress for logs and test output.
func (pr *Progress) String() string {
	s := fmt.Sprintf("%s match=%d next=%d", pr.State, pr.Match, pr.Next)
	if pr.IsLearner {
		s += " learner"
	}
	if pr.isPaused() {
		s += " paused"
	}
	if pr.PendingSnapshot > 0 {
		s += fmt.Sprintf(" pendingSnap=%d", pr.PendingSnapshot)
	}
	if n := pr.inflights.len(); n > 0 {
		s += fmt.Sprintf(" inflight=%d", n)
		if pr.inflights.full() {
			s += "[full]"
		}
	}
	return s
}
