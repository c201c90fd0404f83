package raftnode

import (
	"slices"

	"go.uber.org/zap"

	"github.com/keelraft/raft"
)

// isMember reports whether id belongs to cs, as a voter or a learner, in
// either half of a joint configuration.
func isMember(cs raft.ConfState, id uint64) bool {
	return slices.Contains(cs.Voters, id) || slices.Contains(cs.Learners, id) ||
		slices.Contains(cs.VotersOutgoing, id) || slices.Contains(cs.LearnersNext, id)
}

// noteMembership records the membership cs the applier reached at index. A
// node that belonged to a configuration it applied and is left out of a
// later one was removed: from then on its calls return ErrRemoved, it
// calls OnRemoved, and with StopWhenRemoved it stops once it no longer
// leads (a leader that removed itself first hands office over).
func (a *nodeApplier) noteMembership(cs raft.ConfState, index uint64) {
	if isMember(cs, a.n.id) {
		a.member = true
		a.n.removed.Store(false) // added back
		return
	}
	if !a.member || a.n.removed.Load() {
		return
	}
	n := a.n
	n.removed.Store(true)
	n.logger.Info("this node was removed from the cluster", zap.Uint64("index", index))
	n.notifier.removed()
}

// removedErr returns ErrRemoved once this node was removed, nil before.
func (n *Node) removedErr() error {
	if n.removed.Load() {
		return ErrRemoved
	}
	return nil
}

// maybeStopRemoved stops a removed node when Config.StopWhenRemoved asks
// it to, once it no longer leads. It runs on the loop. It reports whether
// the node stops.
func (n *Node) maybeStopRemoved(state raft.StateType) bool {
	if !n.cfg.StopWhenRemoved || !n.removed.Load() || state == raft.StateLeader {
		return false
	}
	n.halt(ErrRemoved)
	return true
}
