package raft

import (
	"go.uber.org/zap"
)

// Recovery from a storage fault.
//
// Raft assumes that a node keeps what it made durable: its votes, its term
// and every entry it acknowledged. A node whose storage lost some of that (a
// damaged or truncated log, a wiped directory, a restored backup) could
// otherwise vote for a candidate that lacks committed entries, or count
// toward a quorum for entries it no longer holds, and the cluster would lose
// committed writes although only one disk failed.
//
// Such a node is recovering (HardState.Recovering, made durable): it does
// not vote, does not campaign, and says so on every message, so that the
// leader counts it toward no quorum (commit, reads, lease, quorum checks).
// The leader replicates to it as to anyone, and appends one entry of its own
// term (the repair barrier) after learning that the node is recovering. Once
// that entry is committed without the node and the node holds it, the leader
// tells it (Message.Repaired) and the node votes and counts again. The
// barrier makes the repair safe against a stale leader: an entry that a
// quorum of the other nodes accepted after the node lost its state carries a
// term at least as high as any the node took part in before, and committing
// it commits everything committed before.
//
// A node learns that it is recovering from its storage (which found damage
// and set HardState.Recovering), from a commit index beyond its log at
// startup, or from a peer: every message carries the incarnation the sender
// knows the recipient by (ConfState.Incarnations), and a node that finds
// another one than its own (its storage was replaced under it) starts
// recovering. Its peers meanwhile refuse its votes and acknowledgements,
// unless it says it is recovering.

// stampIncarnations adds the incarnation and recovery fields to an outgoing
// message.
func (r *raft) stampIncarnations(m *Message) {
	m.Incarnation = r.incarnation
	if r.trk.incarnations != nil {
		m.ToIncarnation = r.trk.incarnations[m.To]
	}
	if r.state == StateLeader {
		if r.peersRecovering && (m.Type == MsgApp || m.Type == MsgHeartbeat) {
			if pr := r.trk.progress[m.To]; pr != nil && r.repaired(m.To, pr) {
				m.Recovery = pr.recoveryToken
			}
		}
		return
	}
	m.Recovery = r.recoveryToken
}

// senderRecovering reports whether m says that its sender recovers from a
// storage fault.
func senderRecovering(m *Message) bool {
	return m.Recovery != 0 && m.Type != MsgApp && m.Type != MsgHeartbeat && m.Type != MsgSnap
}

// newRecoveryToken starts a new recovery epoch and returns its token. The
// epoch is made durable with the hard state before the node acknowledges
// anything, and a leader ends a recovery only once the node acknowledged its
// barrier: a token that a crash made the node reuse was never answered.
// Mixing in the incarnation keeps a wiped node, whose count starts again,
// from reusing its former self's tokens.
func (r *raft) newRecoveryToken() uint64 {
	r.recoveryEpoch++
	x := r.incarnation ^ r.recoveryEpoch*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x | 1
}

// isRecovering reports whether this node must neither vote nor campaign.
func (r *raft) isRecovering() bool { return r.recovering && !mutated(mutationIgnoreRecovering) }

// startRecovering makes this node recovering, for the reason given.
func (r *raft) startRecovering(reason string, fields ...zap.Field) {
	if r.recovering {
		return
	}
	r.recovering, r.recoveryToken = true, r.newRecoveryToken()
	r.logger.Error("this node's storage lost state it had promised ("+reason+"): it neither votes nor campaigns "+
		"nor counts toward a quorum until a leader has brought it up to date", append(fields, zap.Uint64("term", r.Term))...)
	if r.state != StateFollower {
		r.becomeFollower(r.Term, None)
	}
}

// checkIncarnations applies the incarnation rules to a message from a peer.
// It reports whether the message may be processed: votes and
// acknowledgements from a member that shows another incarnation than the
// recorded one are not, unless it says it is recovering.
func (r *raft) checkIncarnations(m *Message) bool {
	if m.ToIncarnation != 0 && r.incarnation != 0 && m.ToIncarnation != r.incarnation && !mutated(mutationIgnoreIncarnation) {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap:
			// A leader holds every committed record: if it knows this node
			// by another incarnation, this storage is not the one the
			// cluster knew. (A peer whose own configuration is old, say
			// restored from a backup, could be wrong: it is not trusted.)
			// Unless the cluster is known to have recorded this one: then
			// the message left before the leader applied that record.
			if r.incarnationConfirmed() {
				break
			}
			r.startRecovering("the leader knows this node by another storage incarnation: its data was lost or replaced",
				zap.Uint64("leader", m.From), zap.Uint64("known_incarnation", m.ToIncarnation),
				zap.Uint64("incarnation", r.incarnation))
		case MsgVote, MsgPreVote:
			// The candidate counts on the vote of another storage: it gets
			// none from this one.
			r.logger.Info("rejected vote: the candidate knows this node by another storage incarnation",
				zap.Uint64("from", m.From), zap.Uint64("known_incarnation", m.ToIncarnation),
				zap.Uint64("incarnation", r.incarnation))
			r.send(Message{To: m.From, Type: voteResponseType(m.Type), Reject: true})
			return false
		}
	}
	known := r.trk.incarnations[m.From]
	if m.Incarnation == 0 || known == 0 || m.Incarnation == known || senderRecovering(m) || mutated(mutationIgnoreIncarnation) {
		return true
	}
	switch m.Type {
	case MsgAppResp, MsgHeartbeatResp, MsgVoteResp, MsgPreVoteResp:
		// What counts toward a quorum is refused.
	default:
		// Anything else is not: this node's configuration may be the old
		// one (it lags the record of the sender's new incarnation).
		return true
	}
	if r.warnedIncarnations[m.From] != m.Incarnation {
		if r.warnedIncarnations == nil {
			r.warnedIncarnations = map[uint64]uint64{}
		}
		r.warnedIncarnations[m.From] = m.Incarnation
		r.logger.Warn("refused votes and acknowledgements from a member whose storage was replaced (its data was "+
			"lost or it was re-initialised): it is not counted as its old self. It starts recovering once it hears "+
			"from the leader; if it does not, restart it to join (not bootstrap), or remove it and add it back",
			zap.Uint64("from", m.From), zap.Uint64("known_incarnation", known), zap.Uint64("incarnation", m.Incarnation))
	}
	return false
}

// incarnationConfirmed reports whether the cluster is known to have recorded
// this storage's incarnation: the configuration this node applied records
// it, or a leader repaired this node since it started (which it does only
// once the record is in force).
func (r *raft) incarnationConfirmed() bool {
	return r.incarnationRepaired || (r.incarnation != 0 && r.trk.incarnations[r.id] == r.incarnation)
}

// noteRecoveryState records, on a leader, what a peer's response says about
// its storage: whether it recovers, and its incarnation.
func (r *raft) noteRecoveryState(m *Message, pr *Progress) {
	newIncarnation := m.Incarnation != pr.incarnation
	pr.incarnation = m.Incarnation
	newRecovery := senderRecovering(m) && m.Recovery != pr.recoveryToken
	switch {
	case !senderRecovering(m):
		pr.Recovering, pr.repairBarrier, pr.recoveryToken = false, 0, 0
	case newRecovery:
		// A recovery this leader has not seen: it may have lost more
		// since an earlier one, so it needs a barrier of its own.
		pr.Recovering, pr.repairBarrier, pr.recoveryToken = true, 0, m.Recovery
		r.peersRecovering = true
		r.logger.Warn("a follower is recovering from a storage fault: it counts toward no quorum until it is repaired",
			zap.Uint64("follower", m.From), zap.Uint64("term", r.Term))
	}
	// Whether the peer's incarnation needs recording depends on both its
	// incarnation and whether it recovers (maybeRecordIncarnations).
	if (newIncarnation || newRecovery) && m.Incarnation != 0 && m.Incarnation != r.trk.incarnations[m.From] {
		r.incarnationsUnrecorded = true
	}
	// The barrier: an empty entry of this term, appended after learning
	// that the follower recovers (retried should the append be refused).
	if pr.Recovering && pr.repairBarrier == 0 && r.appendEntry(Entry{}) {
		pr.repairBarrier = r.raftLog.lastIndex()
		r.bcastAppend()
	}
}

// repaired reports whether the leader may tell the recovering peer that it
// is up to date again: the barrier is committed without it, the peer holds
// it, and the peer's current incarnation is the recorded one.
func (r *raft) repaired(id uint64, pr *Progress) bool {
	if !pr.Recovering || pr.repairBarrier == 0 {
		return false
	}
	if pr.incarnation != 0 && r.trk.incarnations[id] != pr.incarnation {
		return false
	}
	return r.raftLog.committed >= pr.repairBarrier && pr.Match >= pr.repairBarrier
}

// maybeFinishRecovery ends this follower's recovery when its leader says
// this very recovery is complete and its commit index lies in the leader's
// term.
func (r *raft) maybeFinishRecovery(m *Message) {
	if !r.recovering || m.Recovery != r.recoveryToken || m.From != r.lead ||
		(m.ToIncarnation != 0 && m.ToIncarnation != r.incarnation) {
		return
	}
	if r.raftLog.zeroTermOnOutOfBounds(r.raftLog.term(r.raftLog.committed)) != r.Term {
		return
	}
	r.recovering, r.recoveryToken = false, 0
	r.incarnationRepaired = true
	if r.Vote == None {
		// It may have voted in this term before it lost its state: it
		// votes for no one else in it.
		r.Vote = r.lead
	}
	r.logger.Info("repaired from the leader: this node votes and counts toward quorums again",
		zap.Uint64("leader", r.lead), zap.Uint64("term", r.Term), zap.Uint64("commit", r.raftLog.committed))
}

// maybeRecordIncarnations has a leader propose recording the incarnations
// of members (itself included) that the configuration does not know yet,
// or that changed for a member that is recovering.
func (r *raft) maybeRecordIncarnations() {
	if !r.incarnationsUnrecorded || r.state != StateLeader || r.trk.isJoint() || r.stepDownIndex != 0 ||
		r.leadTransferee != None || r.pendingConfIndex > r.raftLog.applied || !r.committedEntryInCurrentTerm() {
		return
	}
	r.incarnationsUnrecorded = false
	var changes []ConfChangeSingle
	for _, id := range r.trk.memberIDs() {
		pr := r.trk.progress[id]
		inc := pr.incarnation
		if id == r.id {
			inc = r.incarnation
		}
		known := r.trk.incarnations[id]
		if inc == 0 || inc == known || (known != 0 && (id == r.id || !pr.Recovering)) {
			continue
		}
		changes = append(changes, ConfChangeSingle{Type: ConfChangeRecordIncarnation, NodeID: id, Incarnation: inc})
	}
	if len(changes) == 0 {
		return
	}
	cc := ConfChange{Changes: changes}
	if !r.appendEntry(Entry{Type: EntryConfChange, Data: cc.Marshal()}) {
		r.incarnationsUnrecorded = true
		return
	}
	r.pendingConfIndex = r.raftLog.lastIndex()
	r.logger.Debug("proposed recording storage incarnations", zap.Stringer("change", cc),
		zap.Uint64("index", r.pendingConfIndex))
	r.bcastAppend()
}
