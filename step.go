package raft

import (
	"fmt"

	"go.uber.org/zap"
)

// Step advances the state machine with one message. It first applies the
// rules every role shares (§5.1: a higher term makes the node a follower of
// that term, a stale term is answered or ignored; votes), then hands the
// message to the role's step function.
func (r *raft) Step(m Message) error {
	if m.Incarnation|m.ToIncarnation != 0 && m.From != None && m.From != r.id && !r.checkIncarnations(&m) {
		return nil
	}
	switch {
	case m.Term == 0:
		// A local message, or a forwarded proposal or read request.
	case m.Term > r.Term:
		if !r.stepHigherTerm(m) {
			return nil
		}
	case m.Term < r.Term:
		r.stepStaleTerm(m)
		return nil
	}

	switch m.Type {
	case MsgHup:
		r.hup()
	case MsgVote, MsgPreVote:
		r.handleVoteRequest(m)
	case MsgProp:
		return r.stepProposal(m)
	case MsgPropResp:
		r.handlePropResp(m)
	default:
		return r.step(r, m)
	}
	return nil
}

// checkEntrySizes refuses proposed entries whose data exceeds
// maxEntrySize: whatever role the node has, it neither appends nor
// forwards an entry that its transport may be unable to carry.
func (r *raft) checkEntrySizes(ents []Entry) error {
	if r.maxEntrySize == 0 {
		return nil
	}
	return oversizedEntry(ents, r.maxEntrySize)
}

// oversizedEntry returns an error wrapping ErrProposalTooLarge, naming the
// first entry whose Data is longer than max bytes, or nil if none is.
func oversizedEntry(ents []Entry, max uint64) error {
	for i := range ents {
		if n := ents[i].payloadSize(); n > max {
			return fmt.Errorf("%w: entry %d carries %d bytes, the limit is %d", ErrProposalTooLarge, i, n, max)
		}
	}
	return nil
}

// stepHigherTerm handles a message from a later term. It reports whether the
// message should still be processed.
func (r *raft) stepHigherTerm(m Message) bool {
	r.logger.Debug("received a message with higher term",
		zap.Uint64("term", r.Term), zap.Stringer("type", m.Type),
		zap.Uint64("from", m.From), zap.Uint64("msg_term", m.Term))
	if (m.Type == MsgVote || m.Type == MsgPreVote) && !isTransferVote(m) && r.inLease() &&
		(m.From != r.lead || mutated(mutationLeaseVoteFromLeader)) {
		// This node heard from a live leader within the election timeout:
		// a vote request now comes from a node that lost touch, and
		// honouring it would depose a healthy leader. A request from that
		// leader itself is honoured: it no longer leads (it campaigns), and
		// the lease is its own to give up.
		r.logger.Debug("ignored a vote request within the leader lease",
			zap.Stringer("type", m.Type), zap.Uint64("from", m.From), zap.Uint64("msg_term", m.Term),
			zap.Uint64("leader", r.lead), zap.Int("elapsed_ticks", r.electionElapsed))
		return false
	}
	switch {
	case m.Type == MsgPreVote:
		// A pre-vote never changes the receiver's term.
	case m.Type == MsgPreVoteResp && !m.Reject:
		// A granted pre-vote carries the term the candidate will campaign
		// at; the candidate moves to it only once it wins the pre-vote.
	case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
		// Only a leader sends these, so m.From leads m.Term.
		r.becomeFollower(m.Term, m.From)
	case m.Type == MsgVote:
		// Only a granted vote restarts the election timer
		// (handleVoteRequest). A node that refuses candidates whose logs
		// are behind its own must still time out and campaign itself.
		elapsed := r.electionElapsed
		r.becomeFollower(m.Term, None)
		r.electionElapsed = elapsed
	default:
		r.becomeFollower(m.Term, None)
	}
	return true
}

// inLease reports whether this node heard from a leader within the election
// timeout (or, with lease-based reads, restarted within it), with
// CheckQuorum on.
func (r *raft) inLease() bool {
	return r.checkQuorum && (r.lead != None || r.restartLease) && r.electionElapsed < r.electionTimeout
}

// stepStaleTerm handles a message from an earlier term. Requests are
// answered with the current term so that a deposed leader or a stale
// candidate learns it and steps down (§5.1); anything else is dropped.
func (r *raft) stepStaleTerm(m Message) {
	switch m.Type {
	case MsgApp, MsgHeartbeat:
		r.send(Message{To: m.From, Type: MsgAppResp})
	case MsgVote, MsgPreVote:
		r.send(Message{To: m.From, Type: voteResponseType(m.Type), Reject: true})
	case MsgPropResp:
		r.handlePropResp(m)
	default:
		if ce := r.logger.Check(zap.DebugLevel, "ignored a message with lower term"); ce != nil {
			ce.Write(zap.Uint64("term", r.Term), zap.Stringer("type", m.Type),
				zap.Uint64("from", m.From), zap.Uint64("msg_term", m.Term))
		}
	}
}

// handleVoteRequest grants a vote to a candidate of the current term if this
// node has not voted for another in this term and the candidate's log is at
// least as up to date as its own (§5.2, §5.4.1). A pre-vote for a later term
// is granted on the log check alone and changes nothing here.
func (r *raft) handleVoteRequest(m Message) {
	respType := voteResponseType(m.Type)
	if r.isRecovering() {
		r.logger.Info("rejected vote: this node is recovering from a storage fault", zap.Stringer("type", m.Type),
			zap.Uint64("to", m.From), zap.Uint64("term", r.Term))
		r.send(Message{To: m.From, Type: respType, Reject: true})
		return
	}
	canVote := r.Vote == m.From || (r.Vote == None && r.lead == None) ||
		(m.Type == MsgPreVote && m.Term > r.Term)
	if canVote && r.raftLog.isUpToDate(m.Index, m.LogTerm) {
		r.logger.Debug("granted vote", zap.Stringer("type", m.Type), zap.Uint64("to", m.From),
			zap.Uint64("term", m.Term), zap.Uint64("candidate_last_index", m.Index),
			zap.Uint64("candidate_last_term", m.LogTerm))
		// The response carries the term asked for: for a pre-vote that is
		// a future term, which the candidate recognises as a grant.
		r.send(Message{To: m.From, Term: m.Term, Type: respType})
		if m.Type == MsgVote {
			r.electionElapsed = 0
			r.Vote = m.From
		}
		return
	}
	if !r.trk.isVoter(r.id) && r.trk.isVoter(m.From) && !r.raftLog.isUpToDate(m.Index, m.LogTerm) {
		r.caretakeAsked = true
	}
	r.logger.Debug("rejected vote", zap.Stringer("type", m.Type), zap.Uint64("to", m.From), zap.Uint64("term", r.Term),
		zap.Uint64("vote", r.Vote), zap.Uint64("candidate_last_index", m.Index),
		zap.Uint64("candidate_last_term", m.LogTerm), zap.Uint64("last_index", r.raftLog.lastIndex()),
		zap.Uint64("last_term", r.raftLog.lastTerm()))
	r.send(Message{To: m.From, Type: respType, Reject: true})
}

func stepLeader(r *raft, m Message) error {
	switch m.Type {
	case MsgBeat:
		r.bcastHeartbeat()
		return nil
	case MsgCheckQuorum:
		r.checkQuorumActive()
		return nil
	case MsgProp:
		return r.handleProposal(m)
	case MsgReadIndex:
		r.handleReadIndex(m)
		return nil
	case MsgTransferLeader:
		// m.From is the requester (this leader, or a follower that
		// forwarded the request), which need not be a member: a removed
		// leader that keeps leading must still be able to hand over.
		return r.handleTransferLeader(m)
	}
	pr := r.trk.progress[m.From]
	if pr == nil {
		if ce := r.logger.Check(zap.DebugLevel, "no progress for sender"); ce != nil {
			ce.Write(zap.Uint64("from", m.From), zap.Stringer("type", m.Type))
		}
		return nil
	}
	response := m.Type == MsgAppResp || m.Type == MsgHeartbeatResp
	if response && (m.Incarnation != pr.incarnation || m.Recovery != 0 || pr.Recovering) {
		// What the peer says of its storage counts before its answer does.
		r.noteRecoveryState(&m, pr)
	}
	switch m.Type {
	case MsgAppResp:
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		r.handleHeartbeatResponse(m, pr)
	case MsgSnapStatus:
		r.handleSnapStatus(m, pr)
	case MsgUnreachable:
		// The peer may have lost appends in flight: probe from Match again.
		if pr.State == ProgressStateReplicate {
			pr.becomeProbe()
		}
	}
	if response && r.incarnationsUnrecorded {
		r.maybeRecordIncarnations()
	}
	return nil
}

// checkQuorumActive steps down if a quorum was not heard from within the
// election timeout, and refreshes each peer's RecentActive.
func (r *raft) checkQuorumActive() {
	window := uint64(r.electionTimeout)
	if !r.trk.quorumActive(r.id, window) {
		r.logger.Warn("stepped down to follower since quorum is not active", zap.Uint64("term", r.Term))
		r.becomeFollower(r.Term, None)
		return
	}
	for id, pr := range r.trk.progress {
		if id != r.id {
			pr.expireActivity(r.trk.now, window)
		}
	}
}

// handleProposal appends proposed entries and replicates them.
func (r *raft) handleProposal(m Message) error {
	if len(m.Entries) == 0 {
		r.logger.Warn("dropped a proposal without entries", zap.Uint64("from", m.From))
		return ErrProposalDropped
	}
	if r.trk.progress[r.id] == nil {
		// This leader was removed from the configuration.
		return ErrProposalDropped
	}
	if r.leadTransferee != None {
		r.logger.Debug("dropped a proposal during leadership transfer", zap.Uint64("target", r.leadTransferee))
		return ErrTransferInProgress
	}
	if r.stepDownIndex != 0 {
		r.logger.Debug("dropped a proposal: this leader was removed and is stepping down")
		return ErrProposalDropped
	}
	confIndex := -1
	for i := range m.Entries {
		if m.Entries[i].Type != EntryConfChange {
			continue
		}
		if confIndex >= 0 {
			return fmt.Errorf("%w: one proposal carries two configuration changes", ErrPendingConfChange)
		}
		if err := r.checkConfChangeProposal(&m.Entries[i]); err != nil {
			r.logger.Info("refused a configuration change proposal", zap.Uint64("from", m.From), zap.Error(err))
			return err
		}
		confIndex = i
	}
	if !r.appendEntry(m.Entries...) {
		if ce := r.logger.Check(zap.DebugLevel, "dropped a proposal: uncommitted tail is full"); ce != nil {
			ce.Write(zap.Uint64("uncommitted_size", r.uncommittedSize), zap.Uint64("max", r.maxUncommittedSize))
		}
		return ErrProposalDropped
	}
	if confIndex >= 0 {
		r.pendingConfIndex = m.Entries[confIndex].Index
	}
	r.bcastAppend()
	return nil
}

// handleAppendResponse updates the peer's progress from its answer to an
// append, backs off on a rejection, and commits what a quorum now holds.
func (r *raft) handleAppendResponse(m Message, pr *Progress) {
	pr.markActive(r.trk.now)
	pr.updatePeerCommit(min(m.Commit, r.raftLog.committed))
	if r.stepDownIndex != 0 {
		defer r.maybeStepDownAfterRemoval()
	}
	if m.Reject {
		r.handleAppendRejection(m, pr)
		return
	}
	if m.Index > r.raftLog.lastIndex() {
		r.logger.Warn("dropped an append acknowledgement beyond the last index",
			zap.Uint64("from", m.From), zap.Uint64("index", m.Index), zap.Uint64("last_index", r.raftLog.lastIndex()))
		return
	}
	if !pr.maybeUpdate(m.Index) {
		return
	}
	switch pr.State {
	case ProgressStateProbe:
		pr.becomeReplicate()
	case ProgressStateSnapshot:
		if pr.Match+1 >= r.raftLog.firstIndex() {
			pr.becomeProbe()
			pr.becomeReplicate()
		}
	case ProgressStateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.bcastAppend()
		r.releasePendingReadIndexMessages()
	} else if m.From != r.id && pr.canBumpCommit(r.raftLog.committed) {
		// The peer holds committed entries it does not know are committed
		// (it was paused when the commit index last moved).
		r.sendAppend(m.From)
	}
	// The acknowledgement may have opened the window for several appends
	// (probe to replicate, or freed inflights): fill it, commit or not.
	for r.maybeSendAppend(m.From, false) {
	}
	if m.From == r.leadTransferee {
		r.maybeSendTimeoutNow(m.From)
	}
}

// handleAppendRejection moves the peer's Next back using the hint it sent:
// its entry at RejectHint has term LogTerm, so every index after the last
// one where our term is <= LogTerm is skipped in one round trip.
func (r *raft) handleAppendRejection(m Message, pr *Progress) {
	nextProbeIdx := m.RejectHint
	if m.LogTerm > 0 {
		nextProbeIdx, _ = r.raftLog.findConflictByTerm(m.RejectHint, m.LogTerm)
	}
	if pr.isLogRegression(m.Index, nextProbeIdx) && !mutated(mutationIgnoreLogRegression) {
		// The peer's committed entries match ours; beyond them nothing
		// it holds is known.
		r.handleLogRegression(m.From, pr, min(m.Commit, nextProbeIdx), nextProbeIdx+1)
		r.sendAppend(m.From)
		return
	}
	if !pr.maybeDecrTo(m.Index, nextProbeIdx) {
		return
	}
	if ce := r.logger.Check(zap.DebugLevel, "append rejected, backing off"); ce != nil {
		ce.Write(zap.Uint64("from", m.From),
			zap.Uint64("rejected_index", m.Index), zap.Uint64("hint", m.RejectHint),
			zap.Uint64("hint_term", m.LogTerm), zap.Stringer("progress", pr))
	}
	if pr.State == ProgressStateReplicate {
		pr.becomeProbe()
	}
	r.sendAppend(m.From)
}

// handleLogRegression reacts to a peer whose log went backwards: it lost
// entries it had acknowledged (its disk lost a tail, or it was restored from
// an old backup). The peer is no longer counted for what it lost, and the
// leader brings it back up to date from next.
func (r *raft) handleLogRegression(id uint64, pr *Progress, match, next uint64) {
	r.logger.Warn("a follower's log went backwards: it lost entries it had acknowledged; bringing it back up to date",
		zap.Uint64("follower", id), zap.Uint64("acknowledged_index", pr.Match),
		zap.Uint64("matches_up_to", match), zap.Uint64("term", r.Term))
	pr.becomeRegressed(match, next)
}

// handleHeartbeatResponse resumes a paused probe and catches a lagging peer up.
func (r *raft) handleHeartbeatResponse(m Message, pr *Progress) {
	sent := min(m.Index, r.trk.leaseNow())
	pr.markActive(r.trk.now)
	pr.ackHeartbeat(sent)
	pr.updatePeerCommit(min(m.Commit, r.raftLog.committed))
	if r.stepDownIndex != 0 {
		defer r.maybeStepDownAfterRemoval()
	}
	if m.Reject && m.RejectHint < pr.Match && !mutated(mutationIgnoreLogRegression) {
		// The heartbeat's commit index was at most Match, and the peer's
		// log ends before it.
		r.handleLogRegression(m.From, pr, min(m.Commit, m.RejectHint), m.RejectHint+1)
	}
	if pr.maybeResendLostAppends(sent) {
		if ce := r.logger.Check(zap.DebugLevel, "appends presumed lost: probing the peer again"); ce != nil {
			ce.Write(zap.Uint64("to", m.From), zap.Stringer("progress", pr))
		}
	}
	pr.resume()
	if pr.Match < r.raftLog.lastIndex() {
		r.sendAppend(m.From)
	} else if pr.Recovering && pr.peerCommit < min(r.raftLog.committed, pr.Match) {
		// A recovering peer takes no commit index from a heartbeat
		// (handleHeartbeat): an append carries it.
		r.sendAppend(m.From)
	}
	if len(m.Context) > 0 {
		r.handleReadAck(m.From, m.Context)
	}
}

// handleSnapStatus reacts to the host's report on sending a snapshot.
func (r *raft) handleSnapStatus(m Message, pr *Progress) {
	if pr.State != ProgressStateSnapshot {
		return
	}
	// On failure the next heartbeat response retries from Match; on
	// success the peer's acknowledgement moves it to replicate. Either way,
	// pause until the peer answers, so that a snapshot still being applied
	// is not followed by a flood of appends.
	if m.Reject {
		r.logger.Info("snapshot failed to send", zap.Uint64("to", m.From))
	}
	pr.becomeProbe()
	pr.MsgAppFlowPaused = true
}

func stepCandidate(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		if ce := r.logger.Check(zap.DebugLevel, "no leader at term; dropping proposal"); ce != nil {
			ce.Write(zap.Uint64("term", r.Term))
		}
		return ErrProposalDropped
	case MsgTransferLeader:
		return ErrNotLeader
	case MsgApp:
		r.becomeFollower(m.Term, m.From)
		r.handleAppendEntries(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case MsgVoteResp, MsgPreVoteResp:
		r.handleVoteResponse(m)
	}
	return nil
}

// handleVoteResponse counts a vote for this (pre-)candidate and acts on the
// result.
func (r *raft) handleVoteResponse(m Message) {
	preCandidate := r.state == StatePreCandidate
	if preCandidate != (m.Type == MsgPreVoteResp) {
		return // an answer to an earlier phase
	}
	// A recovering voter refuses; a grant that says otherwise is not
	// counted.
	granted, rejected, res := r.poll(m.From, !m.Reject && (!senderRecovering(&m) || mutated(mutationIgnoreRecovering)))
	r.logger.Debug("received vote response", zap.Stringer("type", m.Type), zap.Uint64("from", m.From),
		zap.Bool("rejected", m.Reject), zap.Int("granted", granted), zap.Int("rejected_votes", rejected),
		zap.Uint64("term", r.Term))
	r.actOnVoteResult(res)
}

// actOnVoteResult takes office, moves from the pre-vote to the election, or
// gives up, as the tally of a (pre-)candidate's votes says.
func (r *raft) actOnVoteResult(res voteResult) {
	preCandidate := r.state == StatePreCandidate
	switch res {
	case voteWon:
		if !r.mayCampaign() {
			// A configuration change applied since the campaign began
			// removed or demoted this node, and it may not act as a
			// caretaker either: it may not lead.
			r.logger.Warn("won an election but is no longer a voter: not taking office", zap.Uint64("term", r.Term))
			r.becomeFollower(r.Term, None)
			return
		}
		if preCandidate {
			r.campaign(campaignElection)
			return
		}
		r.becomeLeader()
		r.bcastAppend()
	case voteLost:
		r.becomeFollower(r.Term, None)
	}
}

func stepFollower(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		return r.forwardProposal(m)
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppendEntries(m)
		r.maybeFinishRecovery(&m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
		r.maybeFinishRecovery(&m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTransferLeader:
		return r.forwardTransferLeader(m)
	case MsgTimeoutNow:
		r.handleTimeoutNow(m)
	case MsgReadIndex:
		r.forwardReadIndex(m)
	case MsgReadIndexResp:
		r.handleReadIndexResp(m)
	}
	return nil
}

// forwardTransferLeader passes a transfer request to the leader.
func (r *raft) forwardTransferLeader(m Message) error {
	if r.lead == None {
		return ErrNotLeader
	}
	m.To = r.lead
	r.send(m)
	return nil
}

// forwardProposal sends a proposal to the leader, if one is known and
// forwarding is enabled.
func (r *raft) forwardProposal(m Message) error {
	if r.lead == None {
		if ce := r.logger.Check(zap.DebugLevel, "no leader at term; dropping proposal"); ce != nil {
			ce.Write(zap.Uint64("term", r.Term))
		}
		return ErrProposalDropped
	}
	if r.disableProposalForwarding {
		if ce := r.logger.Check(zap.DebugLevel, "not forwarding proposal: forwarding is disabled"); ce != nil {
			ce.Write(zap.Uint64("leader", r.lead))
		}
		return ErrProposalDropped
	}
	m.To = r.lead
	r.send(m)
	return nil
}

// handleAppendEntries is the follower's side of replication: the
// consistency check, appending, and the answer with a backtracking hint.
func (r *raft) handleAppendEntries(m Message) {
	if m.Index < r.raftLog.committed {
		// Everything up to the commit index is known to match.
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.raftLog.committed})
		return
	}
	lastNew, ok, err := r.raftLog.maybeAppend(m.Index, m.LogTerm, m.Entries)
	if err != nil {
		r.logger.Error("dropped an append that would overwrite committed entries",
			zap.Uint64("from", m.From), zap.Uint64("index", m.Index), zap.Error(err))
		return
	}
	if ok {
		r.raftLog.commitTo(min(m.Commit, lastNew))
		r.send(Message{To: m.From, Type: MsgAppResp, Index: lastNew})
		return
	}
	// Our entry at m.Index does not have term m.LogTerm. Hint at the last
	// index that might match: at or below our last index, with a term no
	// higher than m.LogTerm.
	hintIndex := min(m.Index, r.raftLog.lastIndex())
	hintIndex, hintTerm := r.raftLog.findConflictByTerm(hintIndex, m.LogTerm)
	if ce := r.logger.Check(zap.DebugLevel, "rejected append"); ce != nil {
		ce.Write(zap.Uint64("from", m.From),
			zap.Uint64("index", m.Index), zap.Uint64("log_term", m.LogTerm),
			zap.Uint64("hint_index", hintIndex), zap.Uint64("hint_term", hintTerm))
	}
	r.send(Message{To: m.From, Type: MsgAppResp, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
}

// handleHeartbeat advances the commit index (clamped to the local log) and
// answers.
func (r *raft) handleHeartbeat(m Message) {
	resp := Message{To: m.From, Type: MsgHeartbeatResp, Index: m.Index, Context: m.Context}
	if last := r.raftLog.lastIndex(); m.Commit > last {
		// The leader caps the commit index at what we acknowledged, so
		// we lost acknowledged entries (or the leader is faulty): say so,
		// and the leader sends them again.
		r.logger.Warn("heartbeat commit index beyond the last index: this node lost acknowledged entries",
			zap.Uint64("from", m.From), zap.Uint64("commit", m.Commit), zap.Uint64("last_index", last))
		resp.Reject, resp.RejectHint = true, last
	}
	if !r.recovering {
		r.raftLog.commitTo(min(m.Commit, r.raftLog.lastIndex()))
	}
	// A recovering node's log may hold, below the leader's Match for it,
	// entries overwritten since it lost state (an old backup): a heartbeat
	// proves nothing about them, so it commits only what an append
	// checked (handleAppendEntries).
	r.send(resp)
}

// handleSnapshot installs a snapshot from the leader if it is newer than the
// commit index, and acknowledges the resulting log position.
func (r *raft) handleSnapshot(m Message) {
	s := *m.Snapshot
	if r.restore(s) {
		r.logger.Info("restored snapshot", zap.Uint64("index", s.Metadata.Index), zap.Uint64("term", s.Metadata.Term))
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.raftLog.lastIndex()})
		return
	}
	r.logger.Info("ignored snapshot", zap.Uint64("index", s.Metadata.Index),
		zap.Uint64("term", s.Metadata.Term), zap.Uint64("committed", r.raftLog.committed))
	r.send(Message{To: m.From, Type: MsgAppResp, Index: r.raftLog.committed})
}

// restore resets the log and configuration to snapshot s. It returns false
// if s is not newer than the commit index (or the log already holds its
// last entry, in which case the commit index moves to it).
func (r *raft) restore(s Snapshot) bool {
	if s.Metadata.Index <= r.raftLog.committed {
		return false
	}
	if r.raftLog.matchTerm(s.Metadata.Index, s.Metadata.Term) {
		r.raftLog.commitTo(s.Metadata.Index)
		return false
	}
	if r.hasUnappliedConfChanges() && !mutated(mutationSnapshotOvertakesConfChange) {
		// The host may still apply those changes (it may hold them in a
		// Ready already): restoring the snapshot's configuration first
		// would have them applied on top of it. The leader sends the
		// snapshot again once this node answers.
		r.logger.Info("deferred a snapshot until committed configuration changes are applied",
			zap.Uint64("index", s.Metadata.Index), zap.Uint64("applied", r.raftLog.applied),
			zap.Uint64("committed", r.raftLog.committed))
		return false
	}
	r.raftLog.restore(s)
	r.trk.applyConfState(s.Metadata.ConfState, r.raftLog.lastIndex()+1)
	return true
}
