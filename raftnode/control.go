package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keelraft/raft"
)

// AddVoter adds node id as a voter (or promotes it, if it is a learner)
// and returns the membership once this node applied the change. Like
// Propose, it runs on the leader only and its errors say whether the change
// may still apply. While the change cannot be appended yet (an earlier
// change is not applied, the leader is new, its uncommitted tail is full)
// it tries again every tick until ctx ends, and then returns that error
// (ErrPendingConfChange or ErrProposalDropped); an error wrapping
// ErrInvalidConfChange says that the current membership does not allow it,
// or that addr is not a valid address (raft.MaxAddressSize).
//
// addr is where the other members reach id; the configuration records it
// (raft.ConfState.Addresses), and every node's transport, this one's and
// those of later members included, is given it when the change applies
// there. Adding a member again with another address moves it; an empty
// addr keeps the address recorded, if any (a host that leaves addresses
// out tells its transports itself).
func (n *Node) AddVoter(ctx context.Context, id uint64, addr string) (raft.ConfState, error) {
	return n.changeMembership(ctx, raft.ConfChangeSingle{Type: raft.ConfChangeAddNode, NodeID: id, Address: addr})
}

// AddLearner adds node id at addr as a learner (or demotes a voter), as
// AddVoter. A learner receives the log but neither votes nor counts for a
// quorum; add a new node as a learner first, then Promote it once it
// caught up.
func (n *Node) AddLearner(ctx context.Context, id uint64, addr string) (raft.ConfState, error) {
	return n.changeMembership(ctx, raft.ConfChangeSingle{Type: raft.ConfChangeAddLearnerNode, NodeID: id, Address: addr})
}

// Promote makes learner id a voter, as AddVoter; its recorded address
// stays.
func (n *Node) Promote(ctx context.Context, id uint64) (raft.ConfState, error) {
	return n.changeMembership(ctx, raft.ConfChangeSingle{Type: raft.ConfChangeAddNode, NodeID: id})
}

// Remove removes node id, voter or learner, as AddVoter. Its address
// leaves the configuration, and every node's transport forgets it an
// election timeout later, once it no longer votes in any half of a joint
// configuration either. Removing the leader itself is allowed: it steps
// down once a remaining voter holds the change, and tells that voter to
// campaign at once.
func (n *Node) Remove(ctx context.Context, id uint64) (raft.ConfState, error) {
	return n.changeMembership(ctx, raft.ConfChangeSingle{Type: raft.ConfChangeRemoveNode, NodeID: id})
}

func (n *Node) changeMembership(ctx context.Context, c raft.ConfChangeSingle) (raft.ConfState, error) {
	cc := raft.ConfChange{Changes: []raft.ConfChangeSingle{c}}
	var res []any
	for {
		var err error
		res, err = n.propose(ctx, []raft.Entry{{Type: raft.EntryConfChange, Data: cc.Marshal()}})
		if err == nil {
			break
		}
		if !errors.Is(err, raft.ErrPendingConfChange) && !errors.Is(err, raft.ErrProposalDropped) {
			return raft.ConfState{}, err
		}
		// The leader's own changes (recording the members' storage
		// incarnations, leaving a joint configuration) hold the single
		// slot briefly, and a new leader takes none before it commits an
		// entry of its term: nothing was appended, so try again shortly.
		t := time.NewTimer(n.cfg.TickInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return raft.ConfState{}, err
		case <-n.stopc:
			t.Stop()
			return raft.ConfState{}, n.stopErr()
		}
	}
	cs, _ := res[0].(raft.ConfState)
	return cs, nil
}

// TransferLeadership asks the leader (this node or, forwarded, the one it
// knows) to hand leadership to voter id, and waits until this node learns
// that id leads. It returns raft.ErrInvalidTransfer for a target that is
// not a voter, raft.ErrNotLeader if no leader is known, and ctx's error if
// the transfer did not complete in time. Called on the leader, it returns
// an error wrapping ErrTransferAbandoned as soon as the leader abandons the
// transfer, after an election timeout without the target taking over (it
// is down, cut off, or too far behind to catch up in time).
func (n *Node) TransferLeadership(ctx context.Context, id uint64) error {
	if err := n.removedErr(); err != nil {
		return err
	}
	var terr error
	if err := n.do(ctx, func() {
		if n.rn.BasicStatus().Lead == id {
			return
		}
		terr = n.rn.TransferLeader(id)
	}); err != nil {
		return err
	}
	if terr != nil {
		return terr
	}
	// On the leader, look every tick for an abandoned transfer.
	poll := time.NewTicker(n.cfg.TickInterval)
	defer poll.Stop()
	for {
		lead, ch := n.watch.leaderAndChan()
		if lead == id {
			return nil
		}
		select {
		case <-ch:
		case <-poll.C:
			if err := n.transferAbandoned(ctx, id); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return n.stopErr()
		}
	}
}

// transferAbandoned returns an error wrapping ErrTransferAbandoned if this
// node still leads but no longer transfers leadership to id.
func (n *Node) transferAbandoned(ctx context.Context, id uint64) error {
	var st raft.BasicStatus
	if err := n.do(ctx, func() { st = n.rn.BasicStatus() }); err != nil {
		return err
	}
	if st.RaftState != raft.StateLeader || st.LeadTransferee == id || st.Lead == id {
		return nil
	}
	return fmt.Errorf("%w: node %d did not take over within an election timeout (it may be down, cut off, or too far behind)",
		ErrTransferAbandoned, id)
}

// Status returns the node's protocol state, with per-peer progress on the
// leader.
func (n *Node) Status(ctx context.Context) (raft.Status, error) {
	var st raft.Status
	err := n.do(ctx, func() { st = n.rn.Status() })
	return st, err
}

// LeaderID returns the leader this node knows of (None if none) and its
// term.
func (n *Node) LeaderID() (leader, term uint64) {
	n.watch.mu.Lock()
	defer n.watch.mu.Unlock()
	return n.watch.leader, n.watch.term
}
