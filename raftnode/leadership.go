package raftnode

import (
	"context"

	"github.com/keelraft/raft"
)

// WaitLeader waits until this node knows of a leader, and returns it with
// its term. It returns ctx's error if none is known in time, ErrRemoved
// once this node was removed, or the stop error.
func (n *Node) WaitLeader(ctx context.Context) (leader, term uint64, err error) {
	for {
		if err := n.removedErr(); err != nil {
			return raft.None, 0, err
		}
		select {
		case <-n.stopc:
			return raft.None, 0, n.stopErr()
		default:
		}
		n.watch.mu.Lock()
		leader, term, ch := n.watch.leader, n.watch.term, n.watch.chanLocked()
		n.watch.mu.Unlock()
		if leader != raft.None {
			return leader, term, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return raft.None, 0, ctx.Err()
		case <-n.stopc:
			return raft.None, 0, n.stopErr()
		}
	}
}

// VerifyLeader confirms that this node still leads: a quorum of voters
// acknowledged it after the call (with raft.ReadOnlyLeaseBased, its lease
// vouches for it instead). It returns a *NotLeaderError if this node does
// not lead, or lost office before the confirmation, and ctx's error if no
// quorum answered in time.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if err := n.removedErr(); err != nil {
		return err
	}
	term, err := n.leaderTerm(ctx)
	if err != nil {
		return err
	}
	if _, err := n.readIndex(ctx); err != nil {
		return err
	}
	// A confirmation that came after this node lost office came from
	// another leader: it must still lead, in the same term.
	if again, err := n.leaderTerm(ctx); err != nil || again != term {
		if err == nil {
			err = n.notLeader()
		}
		return err
	}
	return nil
}

// leaderTerm returns the term this node leads in, or a *NotLeaderError.
func (n *Node) leaderTerm(ctx context.Context) (uint64, error) {
	var (
		st  raft.BasicStatus
		err error
	)
	if derr := n.do(ctx, func() { st = n.rn.BasicStatus() }); derr != nil {
		return 0, derr
	}
	if st.RaftState != raft.StateLeader {
		err = &NotLeaderError{Leader: st.Lead}
	}
	return st.Term, err
}

// notLeader returns a *NotLeaderError naming the leader this node knows.
func (n *Node) notLeader() error {
	leader, _ := n.LeaderID()
	if leader == n.id {
		leader = raft.None
	}
	return &NotLeaderError{Leader: leader}
}
