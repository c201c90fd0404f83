package raft

import (
	"bytes"
	"fmt"

	"go.uber.org/zap"
)

// transferContext marks the vote requests of an election started by a
// leadership transfer; voters honour them even within a leader lease.
var transferContext = []byte("keel-transfer")

// isTransferVote reports whether m is a vote request of a leadership transfer.
func isTransferVote(m Message) bool {
	return m.Type == MsgVote && bytes.Equal(m.Context, transferContext)
}

// checkTransferTarget returns an error if leadership cannot go to target.
func (r *raft) checkTransferTarget(target uint64) error {
	pr, ok := r.trk.progress[target]
	switch {
	case target == None:
		return fmt.Errorf("%w: transfer target is 0", ErrInvalidTransfer)
	case target == r.id:
		return fmt.Errorf("%w: node %d is already the leader", ErrInvalidTransfer, target)
	case !ok:
		return fmt.Errorf("%w: node %d is not a member", ErrInvalidTransfer, target)
	case pr.IsLearner:
		return fmt.Errorf("%w: node %d is a learner", ErrInvalidTransfer, target)
	case pr.Recovering:
		return fmt.Errorf("%w: node %d is recovering from a storage fault", ErrInvalidTransfer, target)
	}
	return nil
}

// handleTransferLeader starts moving leadership to the node m.Index names:
// bring it up to date, then tell it to campaign at once. Proposals are
// refused meanwhile, and the transfer is abandoned after an election timeout.
func (r *raft) handleTransferLeader(m Message) error {
	target := m.Index
	if err := r.checkTransferTarget(target); err != nil {
		r.logger.Info("refused leadership transfer", zap.Error(err))
		return err
	}
	if r.leadTransferee == target {
		return nil // already under way
	}
	if r.leadTransferee != None {
		r.logger.Info("abandoned leadership transfer for a new one",
			zap.Uint64("previous", r.leadTransferee), zap.Uint64("target", target))
	}
	r.logger.Info("starting leadership transfer", zap.Uint64("term", r.Term), zap.Uint64("target", target))
	r.leadTransferee = target
	// The transfer must complete within one election timeout.
	r.electionElapsed = 0
	r.maybeSendTimeoutNow(target)
	return nil
}

// maybeSendTimeoutNow tells the transfer target to campaign once it holds the
// whole log; otherwise it sends the missing entries.
func (r *raft) maybeSendTimeoutNow(target uint64) {
	pr := r.trk.progress[target]
	if pr.Match == r.raftLog.lastIndex() {
		r.logger.Info("sending timeout-now to the transfer target", zap.Uint64("target", target))
		r.send(Message{To: target, Type: MsgTimeoutNow})
		r.readOnly.revokeLease()
		if !r.trk.isVoter(r.id) {
			// A leader that removed itself gets no vote request from the
			// target's election to make it step down: do it now rather
			// than lead a stale term.
			r.becomeFollower(r.Term, None)
		}
		return
	}
	r.sendAppend(target)
}

// abortLeaderTransfer gives up a transfer that did not finish in time.
func (r *raft) abortLeaderTransfer() {
	if r.leadTransferee == None {
		return
	}
	r.logger.Info("abandoned leadership transfer: target did not take over within an election timeout",
		zap.Uint64("target", r.leadTransferee))
	r.leadTransferee = None
}

// handleTimeoutNow campaigns at once at the leader's request, skipping the
// pre-vote and overriding the voters' leader lease.
func (r *raft) handleTimeoutNow(m Message) {
	if m.From != r.lead {
		r.logger.Warn("ignored timeout-now from a node that is not the leader",
			zap.Uint64("from", m.From), zap.Uint64("leader", r.lead))
		return
	}
	if !r.promotable() {
		r.logger.Warn("ignored timeout-now: this node cannot campaign")
		return
	}
	if !mutated(mutationTransferIgnoresConfChanges) && !r.electionAllowed("ignored timeout-now") {
		return
	}
	r.logger.Info("campaigning at the leader's request (leadership transfer)", zap.Uint64("term", r.Term))
	r.campaignTransfer()
}
