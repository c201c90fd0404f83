package raft

import (
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"
)

// checkConfChangeProposal decides whether a leader may append the
// configuration change carried by e. It refuses, at propose time, a second
// change while one is pending (not yet applied), a change before this
// leader has committed an entry of its own term (the single-server change
// race, Ongaro 2015), and a change that is invalid against the current
// configuration.
func (r *raft) checkConfChangeProposal(e *Entry) error {
	var cc ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		return err
	}
	if r.pendingConfIndex > r.raftLog.applied {
		return fmt.Errorf("%w: change at index %d is not yet applied (applied %d)",
			ErrPendingConfChange, r.pendingConfIndex, r.raftLog.applied)
	}
	if !r.committedEntryInCurrentTerm() {
		return fmt.Errorf("%w: the leader has not yet committed an entry of its term; retry", ErrProposalDropped)
	}
	if _, err := nextConfState(r.trk.confState(), cc); err != nil {
		return err
	}
	return nil
}

// applyConfChange switches to the configuration that cc produces, once the
// host applies its entry. An invalid change is refused with an error and
// changes nothing; since every node applies the same entries in the same
// order, every node refuses it alike.
func (r *raft) applyConfChange(cc ConfChange) (ConfState, error) {
	cs, err := nextConfState(r.trk.confState(), cc)
	if err != nil {
		r.logger.Warn("refused a configuration change", zap.Stringer("change", cc), zap.Error(err))
		return cs, err
	}
	lvl := zap.InfoLevel
	if onlyRecordsIncarnations(cc) {
		lvl = zap.DebugLevel // bookkeeping: the membership is the same
	}
	r.logger.Log(lvl, "applied a configuration change", zap.Stringer("change", cc),
		zap.Uint64s("voters", cs.Voters), zap.Uint64s("outgoing", cs.VotersOutgoing),
		zap.Uint64s("learners", cs.Learners))
	r.switchToConfig(cs)
	return cs, nil
}

// switchToConfig installs cs and lets a leader react: step down if it is no
// longer a voter, commit what the new quorum holds, and start replicating
// to new members.
func (r *raft) switchToConfig(cs ConfState) {
	before := slices.Collect(maps.Keys(r.trk.progress))
	r.trk.applyConfState(cs, r.raftLog.lastIndex()+1)
	for _, id := range before {
		if r.trk.progress[id] == nil {
			if r.removedMembers == nil {
				r.removedMembers = map[uint64]bool{}
			}
			r.removedMembers[id] = true
		}
	}
	for id := range r.trk.progress {
		delete(r.removedMembers, id)
	}
	if r.state != StateLeader {
		return
	}
	if !r.trk.isVoter(r.id) {
		if !r.disableStepDownOnRemoval {
			r.stepDownIndex = max(r.raftLog.applying, 1)
			// The step-down must finish within an election timeout.
			r.electionElapsed = 0
			r.logger.Info("no longer a voter: stepping down once a remaining voter has caught up",
				zap.Uint64("removal_index", r.stepDownIndex))
		} else {
			r.logger.Info("leading on although no longer a voter (DisableStepDownOnRemoval)")
		}
	}
	if r.leadTransferee != None && !r.trk.isVoter(r.leadTransferee) {
		r.abortLeaderTransfer()
	}
	if r.maybeCommit() {
		r.releasePendingReadIndexMessages()
	}
	r.bcastAppend()
	r.maybeStepDownAfterRemoval()
}

// maybeStepDownAfterRemoval completes the step-down of a leader that removed
// itself. It waits for a remaining voter that holds the whole log and knows
// the removal is committed — until one does, the others may still count
// this node in their configuration and need it to learn of the change —
// then tells that voter to campaign at once and steps down, so the rest
// elect a leader without waiting for an election timeout.
func (r *raft) maybeStepDownAfterRemoval() {
	if r.state != StateLeader || r.stepDownIndex == 0 {
		return
	}
	last := r.raftLog.lastIndex()
	for _, id := range r.trk.voterIDs() {
		pr := r.trk.progress[id]
		if id == r.id || pr.Match != last || pr.peerCommit < r.stepDownIndex || pr.Recovering {
			continue // a recovering voter may not campaign
		}
		r.logger.Info("stepping down: no longer a voter", zap.Uint64("term", r.Term), zap.Uint64("successor", id))
		r.send(Message{To: id, Type: MsgTimeoutNow})
		r.becomeFollower(r.Term, None)
		return
	}
	// Make sure the voters learn the commit index.
	for _, id := range r.trk.voterIDs() {
		if pr := r.trk.progress[id]; id != r.id && pr.peerCommit < r.stepDownIndex && pr.canBumpCommit(r.raftLog.committed) {
			r.sendAppend(id)
		}
	}
}

// maybeAutoLeave proposes leaving a joint configuration once the change that
// entered it is applied, if that change asked for it.
func (r *raft) maybeAutoLeave() {
	if r.state != StateLeader || !r.trk.isJoint() || !r.trk.autoLeave {
		return
	}
	if r.pendingConfIndex > r.raftLog.applied {
		return
	}
	e := Entry{Type: EntryConfChange, Data: ConfChange{}.Marshal()}
	if !r.appendEntry(e) {
		r.logger.Debug("could not propose leaving the joint configuration yet")
		return
	}
	r.pendingConfIndex = r.raftLog.lastIndex()
	r.logger.Info("proposed leaving the joint configuration", zap.Uint64("index", r.pendingConfIndex))
	r.bcastAppend()
}

// hasUnappliedConfChanges reports whether committed configuration changes
// wait to be applied. A node with such changes must not campaign: the
// configuration it would count votes in is about to change.
func (r *raft) hasUnappliedConfChanges() bool {
	l := r.raftLog
	if l.applied >= l.committed {
		return false
	}
	lo, hi := l.applied+1, l.committed+1
	for lo < hi {
		ents, err := l.slice(lo, hi, r.maxMsgSize)
		if err != nil || len(ents) == 0 {
			r.logger.Error("cannot scan for unapplied configuration changes", zap.Error(err))
			return true
		}
		for i := range ents {
			if ents[i].Type == EntryConfChange {
				return true
			}
		}
		lo = ents[len(ents)-1].Index + 1
	}
	return false
}

// restoreAppliedConfChanges applies the configuration changes in the log
// after the snapshot up to applied. A node restarted with Config.Applied
// does not hand those entries out again, so the host cannot pass them to
// ApplyConfChange; without this the node would start with the older
// configuration of its snapshot. Changes at or below the snapshot's index
// (start) are part of the snapshot's configuration already.
func (r *raft) restoreAppliedConfChanges(start, applied uint64) error {
	for lo := max(start+1, r.raftLog.firstIndex()); lo <= applied; {
		ents, err := r.raftLog.slice(lo, applied+1, r.maxMsgSize)
		if err != nil {
			return fmt.Errorf("raft: reading entries [%d, %d] to restore the configuration: %w", lo, applied, err)
		}
		if len(ents) == 0 {
			return fmt.Errorf("raft: no entries in [%d, %d] to restore the configuration", lo, applied)
		}
		for i := range ents {
			if ents[i].Type != EntryConfChange {
				continue
			}
			var cc ConfChange
			if cc.Unmarshal(ents[i].Data) != nil {
				continue // no host could have applied it either
			}
			// A change refused when it was applied is refused again.
			if cs, err := nextConfState(r.trk.confState(), cc); err == nil {
				r.trk.applyConfState(cs, r.raftLog.lastIndex()+1)
			}
		}
		lo = ents[len(ents)-1].Index + 1
	}
	return nil
}

// onlyRecordsIncarnations reports whether cc changes nothing but recorded
// storage incarnations.
func onlyRecordsIncarnations(cc ConfChange) bool {
	for _, c := range cc.Changes {
		if c.Type != ConfChangeRecordIncarnation {
			return false
		}
	}
	return len(cc.Changes) > 0
}

// tellRemovedNodeTheCommit answers an append acknowledgement from a node
// that a configuration change removed (never from another stranger). A
// member removed by a change that the others
// committed without it learns of its removal only from a commit index
// covering the change; once the leader has applied the change it no longer
// tracks the node and would never send it one, so the node would run on,
// campaigning, as a member of nothing. The acknowledgement of an append of
// this term says that the node's log matches the leader's up to m.Index, so
// a heartbeat committing up to there is safe, as for any follower.
func (r *raft) tellRemovedNodeTheCommit(m Message) {
	if r.state != StateLeader || m.Type != MsgAppResp || m.Reject || m.Term != r.Term || !r.removedMembers[m.From] ||
		mutated(mutationSilentToRemoved) {
		return
	}
	// m.Commit is the node's commit index: tell it only something new.
	if commit := min(m.Index, r.raftLog.committed); commit > m.Commit {
		r.send(Message{To: m.From, Type: MsgHeartbeat, Commit: commit})
	}
}
